"""How far can a gold file's labels be fitted at all? Three extractors scored on the file's held-out part.

    python bench/ner_ceiling.py GOLD.jsonl [GOLD.jsonl ...] [--epochs 25] [--out result.json]

For each gold file, on its held-out 30 % (`ner.split`), micro F1 over BRAND + CATEGORY + MATERIAL and per label:
  (a) rules: the bundled English pipeline, as `moon ner eval --part heldout` scores it;
  (b) rules + own lexicon: the same pipeline with one more lexicon holding every BRAND, CATEGORY and MATERIAL value
      of the file's own tune part (written to a temporary folder, never into the package): what knowing the
      file's whole vocabulary adds;
  (c) trained NER: a statistical spaCy NER (`spacy.blank("en")` + `ner`, its default tok2vec, no pretrained
      vectors) trained from scratch on the file's own tune part. Gold values become spans where they occur in the
      title (case-insensitively, longest first, no overlaps, widened to whole tokens); rows without a label's key
      count as having none of it. Held-out F1 is measured after every epoch and the best epoch is reported, so
      (c) is an optimistic figure: it chooses its epoch on the very rows it is scored on;
  (d) best of (a) and (c) per label: each label's entities from whichever of the two scores it higher (again
      chosen on the held-out rows).
(b) and (c) learn from the files they are scored on, which the package must not do for the research-use files;
they exist to show how much of a file's labelling a rule pipeline, or a model fitted to that file, can reproduce on
titles it has not seen. Takes one to four minutes per file on one core (set OMP_NUM_THREADS=1).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ner.evaluate import MICRO_LABELS, read_gold, score  # noqa: E402
from ner.extractor import EntityExtractor  # noqa: E402
from ner.lexicon_build import gold_patterns, write_patterns  # noqa: E402
from ner.pipeline import build_pipeline  # noqa: E402
from ner.split import select  # noqa: E402


def gold_spans(doc, labels: dict) -> list[tuple[int, int, str]]:
    """(start_char, end_char, label) of the gold values of `labels` where they occur in `doc`'s text: every
    occurrence, case-insensitively, longest values first, widened to whole tokens, none overlapping another."""
    low = doc.text.lower()
    found = []
    for label in MICRO_LABELS:
        for value in labels.get(label) or []:
            value = value.strip().lower()
            if value:
                found += [(m.start(), m.end(), label) for m in re.finditer(re.escape(value), low)]
    found.sort(key=lambda s: (s[0] - s[1], s[0]))
    taken: list[tuple[int, int, str]] = []
    for start, end, label in found:
        span = doc.char_span(start, end, label=label, alignment_mode="expand")
        if span is None:
            continue
        if all(span.end_char <= s or span.start_char >= e for s, e, _ in taken):
            taken.append((span.start_char, span.end_char, label))
    return sorted(taken)


def _ents(docs) -> list[list[dict]]:
    return [[{"label": e.label_, "text": e.text, "start": e.start_char, "end": e.end_char} for e in doc.ents]
            for doc in docs]


def summary(result: dict) -> dict:
    labels = {label: round(counts["f1"], 4) for label, counts in result["labels"].items()
              if label in MICRO_LABELS and counts["tp"] + counts["fp"] + counts["fn"]}
    return {"micro_f1": round(result["micro"]["f1"], 4), "f1": labels}


# the lexicon of (b): one file per label, so that a value listed under two labels stays under both
OWN_LEXICONS = {"BRAND": "own_brands.jsonl", "CATEGORY": "own_categories.jsonl", "MATERIAL": "own_materials.jsonl"}


def rules_figures(tune: list[dict], heldout: list[dict], extractor) -> tuple[dict, dict, list]:
    """(a) with `extractor` (the bundled pipeline) and (b) on the held-out rows, and the predictions of (a)."""
    titles = [row["title"] for row in heldout]
    predictions = extractor.extract(titles)
    plain = score(heldout, predictions)
    lexicons = gold_patterns(tune, OWN_LEXICONS)
    with tempfile.TemporaryDirectory() as tmp:
        paths = [Path(tmp) / file for file in lexicons]
        for path, patterns in zip(paths, lexicons.values()):
            write_patterns(path, patterns)
        own = score(heldout, EntityExtractor(build_pipeline("en", lexicon_files=paths)).extract(titles))
    return summary(plain), {**summary(own), "lexicon_phrases": sum(map(len, lexicons.values()))}, predictions


def trained_figures(tune: list[dict], heldout: list[dict], epochs: int, seed: int, log=print) -> dict:
    """(c): a spaCy NER trained on `tune`, scored on `heldout` after every epoch; the best epoch (with its
    predictions under "predictions") and the last."""
    import spacy
    from spacy.training import Example
    from spacy.util import fix_random_seed, minibatch

    fix_random_seed(seed)
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("ner")
    for label in MICRO_LABELS:
        ner.add_label(label)
    examples = []
    for row in tune:
        doc = nlp.make_doc(row["title"])
        examples.append(Example.from_dict(doc, {"entities": gold_spans(doc, row["labels"])}))
    optimizer = nlp.initialize(lambda: examples)
    titles = [row["title"] for row in heldout]
    rng = random.Random(seed)
    best, per_epoch = None, []
    for epoch in range(1, epochs + 1):
        rng.shuffle(examples)
        losses: dict = {}
        for batch in minibatch(examples, size=16):
            nlp.update(batch, sgd=optimizer, losses=losses, drop=0.2)
        predictions = _ents(nlp.pipe(titles))
        figures = summary(score(heldout, predictions))
        per_epoch.append(figures["micro_f1"])
        log(f"    epoch {epoch:2d}  loss {losses.get('ner', 0.0):8.1f}  held-out micro F1 {figures['micro_f1']:.3f}")
        if best is None or figures["micro_f1"] > best["micro_f1"]:
            best, best_predictions = {**figures, "epoch": epoch}, predictions
    return {"best": best, "predictions": best_predictions, "last_micro_f1": per_epoch[-1], "per_epoch_micro_f1": per_epoch,
            "train_rows": len(examples)}


def ceiling(path: str, epochs: int, seed: int, extractor: EntityExtractor, log=print) -> dict:
    """The four figures of one gold file; `extractor`: the bundled pipeline's, built once for all files."""
    rows = read_gold(path)
    tune, heldout = select(rows, "tune"), select(rows, "heldout")
    if not tune or not heldout:
        raise ValueError(f"{path}: needs rows in both the tune and the held-out part")
    log(f"{Path(path).name}: {len(tune)} tune rows, {len(heldout)} held-out rows")
    started = time.perf_counter()
    rules, own, rule_predictions = rules_figures(tune, heldout, extractor)
    log(f"  (a) rules {rules['micro_f1']:.3f}   (b) rules + own lexicon {own['micro_f1']:.3f}")
    trained = trained_figures(tune, heldout, epochs, seed, log)
    log(f"  (c) trained NER, best epoch {trained['best']['epoch']}: {trained['best']['micro_f1']:.3f}")
    best = best_per_label(heldout, rules, rule_predictions, trained["best"], trained.pop("predictions"))
    log(f"  (d) best of (a) and (c) per label: {best['micro_f1']:.3f}")
    return {"file": Path(path).name, "tune_rows": len(tune), "heldout_rows": len(heldout), "rules": rules,
            "rules_own_lexicon": own, "trained_ner": trained, "best_per_label": best,
            "seconds": round(time.perf_counter() - started, 1)}


def best_per_label(rows: list[dict], first: dict, first_predictions: list, second: dict,
                   second_predictions: list) -> dict:
    """(d): per label, the entities of whichever extractor has the higher F1 on it (ties: `first`)."""
    take_second = {label for label in MICRO_LABELS
                   if second["f1"].get(label, 0.0) > first["f1"].get(label, 0.0)}
    merged = [[e for e in a if e["label"] not in take_second] + [e for e in b if e["label"] in take_second]
              for a, b in zip(first_predictions, second_predictions)]
    return {**summary(score(rows, merged)), "from_trained": sorted(take_second)}


def format_table(results: list[dict]) -> str:
    def cell(fig: dict) -> str:
        per = " ".join(f"{label[0]} {fig['f1'][label]:.3f}" for label in MICRO_LABELS if label in fig["f1"])
        return f"{fig['micro_f1']:.3f} ({per})"
    columns = [("(a) rules", lambda r: r["rules"]), ("(b) rules + own lexicon", lambda r: r["rules_own_lexicon"]),
               ("(c) trained NER, best epoch", lambda r: r["trained_ner"]["best"]),
               ("(d) best of (a), (c) per label", lambda r: r["best_per_label"])]
    lines = []
    for res in results:
        lines.append(f"{res['file']} ({res['heldout_rows']} held-out rows): micro F1 (per label)")
        lines += [f"  {name:32s} {cell(get(res))}" for name, get in columns]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("gold", nargs="+", help="gold JSONL files (ner eval format)")
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    if os.environ.get("OMP_NUM_THREADS") is None:
        print("note: OMP_NUM_THREADS is not set; set it to 1 for stable timings", file=sys.stderr)
    extractor = EntityExtractor(build_pipeline("en"))
    results = []
    for path in args.gold:
        try:
            results.append(ceiling(path, args.epochs, args.seed, extractor))
        except (OSError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    print(format_table(results))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"epochs": args.epochs, "seed": args.seed, "files": results}, indent=2)
                                  + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
