"""Train the brand scorer (`ner.brand_model`) from gold titles and catalogue titles; write its weights as JSON.

    python -m ner.train --gold oamine_train.jsonl --gold extractgpt_ae110k_train.jsonl \\
        --catalog catalog_labels.csv.gz --catalog-gold myntra_dev.jsonl \\
        --exclude-lexicon en/brands_gold.jsonl --out ner/data/en/brand_scorer.json

- `--gold`: gold JSONL files ({id, title, labels: {BRAND: [...]}}); only their TUNE part is read (`ner.split`:
  rows with sha1(id) % 10 >= 3), so the held-out 30 % stay unseen. Use files whose licence allows it.
- `--catalog`: a catalogue CSV with `productDisplayName` and `brandName` (the Myntra catalogue labels): titles
  whose brand occurs in them are silver examples (`--catalog-size` of them, a fixed sample). `--catalog-gold`:
  a gold file made of catalogue products (ids `<source>-<catalogue id>`); catalogue rows held out there are
  skipped.
For each title the pipeline's own candidates are built (`ner.brand_candidates`, with the bundled lexicons); the
gold candidate is the one whose text equals a gold brand (folded as the scorer folds them), `none` when the
gold list is empty; titles whose gold brand is no candidate are left out. Takes seconds on one core.
"""
from __future__ import annotations

import argparse
import csv
import gzip
import json
import random
import sys
from pathlib import Path

from ner.brand_candidates import candidates
from ner.brand_model import train
from ner.components import groups
from ner.evaluate import read_gold
from ner.split import is_heldout, select
from ner.text import clean_title, fold


def _examples(nlp, titles_and_brands, stats: dict):
    ruler = nlp.get_pipe("moon_lexicon_ruler")
    rules = nlp.get_pipe("moon_brand_rules")
    for title, brands in titles_and_brands:
        doc = ruler(nlp.make_doc(clean_title(title).text))
        lexicon = groups.get(doc, groups.LEXICON)
        known = [c for c in lexicon if c[2] == rules.label]
        view = rules.view(doc, lexicon, known)
        cands = candidates(view, rules.stop_words)
        wanted = {fold(b) for b in brands} - {""}
        if not wanted:
            gold = 0
        else:
            gold = next((i for i, c in enumerate(cands) if i and fold(view.span_text(c.start, c.end)) in wanted),
                        None)
        if gold is None:
            stats["unreachable"] = stats.get("unreachable", 0) + 1
            continue
        stats["examples"] = stats.get("examples", 0) + 1
        yield view, cands, gold


def gold_titles(path: str):
    for row in select(read_gold(path), "tune"):
        brands = row.get("labels", {}).get("BRAND")
        if brands is not None:
            yield row["title"], brands


def catalog_titles(path: str, size: int, holdout_gold: str | None, seed: int = 0):
    held = set()
    if holdout_gold:
        held = {str(r["id"]).rsplit("-", 1)[-1] for r in read_gold(holdout_gold) if is_heldout(r["id"])}
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("id") not in held]
    pairs = []
    for row in rows:
        title, brand = row.get("productDisplayName") or "", (row.get("brandName") or "").strip()
        if brand and fold(brand) and f" {fold(brand)} " in f" {fold(title)} ":
            pairs.append((title, [brand]))
    random.Random(seed).shuffle(pairs)
    return pairs[:size]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gold", action="append", default=[], help="gold JSONL (tune part is used); repeatable")
    parser.add_argument("--catalog", default=None, help="catalogue CSV(.gz) with productDisplayName, brandName")
    parser.add_argument("--catalog-size", type=int, default=1500, help="catalogue titles to use (default 1500)")
    parser.add_argument("--catalog-gold", default=None, help="gold file of catalogue products: skip its held-out")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lang", default="en")
    parser.add_argument("--exclude-lexicon", action="append", default=[], metavar="FILE",
                        help="a bundled lexicon to leave out while training (e.g. en/brands_gold.jsonl, made from "
                             "the same gold titles: with it every training brand would be a lexicon brand, and the "
                             "scorer would not learn to find unknown ones); repeatable")
    parser.add_argument("--out", required=True, help="weights JSON to write")
    args = parser.parse_args(argv)

    from ner.pipeline import build_pipeline

    overrides = None
    if args.exclude_lexicon:
        from ner.pipeline import config_path
        import spacy

        cfg = spacy.util.load_config(config_path(args.lang), interpolate=False)
        lexicons = [f for f in cfg["components"]["moon_lexicon_ruler"]["lexicons"] if f not in args.exclude_lexicon]
        overrides = {"components.moon_lexicon_ruler.lexicons": lexicons}
    nlp = build_pipeline(args.lang, overrides=overrides)
    stats: dict = {}
    examples = []
    sources = {}
    for path in args.gold:
        before = len(examples)
        examples.extend(_examples(nlp, gold_titles(path), stats))
        sources[Path(path).name] = len(examples) - before
    if args.catalog:
        before = len(examples)
        examples.extend(_examples(nlp, catalog_titles(args.catalog, args.catalog_size, args.catalog_gold), stats))
        sources[Path(args.catalog).name] = len(examples) - before
    if not examples:
        print("no training examples", file=sys.stderr)
        return 2
    rules = nlp.get_pipe("moon_brand_rules")
    weights = train(examples, rules.words, epochs=args.epochs)
    payload = {"model": "ner.brand_model averaged perceptron", "trained_on": sources,
               "unreachable": stats.get("unreachable", 0), "weights": dict(sorted(weights.items()))}
    Path(args.out).write_text(json.dumps(payload, indent=0, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{len(examples)} examples {sources}, {stats.get('unreachable', 0)} unreachable; "
          f"{len(weights)} weights -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
