"""`moon ner extract` and `moon ner eval`: the NER pipeline on JSONL files, for batch use and evaluation.

Only argument definitions live at import time; spaCy and the pipeline are loaded inside the handlers, so that
`moon --help` stays instant.
"""
from __future__ import annotations

import argparse
import json
import sys


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser("ner", help="product-title entities (brand, category, material, color)",
                                   description="Rule-based product-title NER on JSONL files.")
    commands = parser.add_subparsers(dest="ner_command", metavar="NER_COMMAND")
    parser.set_defaults(func=lambda args: parser.print_help() or 2)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--lang", default="en", help="pipeline configuration: ner/configs/<lang>.cfg (default en)")
    common.add_argument("--lexicon", action="append", default=[], metavar="FILE",
                        help="extra lexicon: a JSONL pattern file, or LABEL=path for a plain list; repeatable")
    common.add_argument("--config", default=None, help="a pipeline config file instead of the bundled one")
    common.add_argument("--batch-size", type=int, default=1024, help="titles per call (default 1024)")

    extract = commands.add_parser(
        "extract", parents=[common], help="entities of each title of a JSONL file",
        description='Input lines carry "id" and "title" (an optional "brand" is used as the row\'s brand hint); '
                    'output lines are {"id", "entities": [{"label", "text", "start", "end", "id"}, ...]}.')
    extract.add_argument("--input", required=True, help="JSONL titles ('-' for stdin)")
    extract.add_argument("--output", required=True, help="JSONL predictions ('-' for stdout)")
    extract.set_defaults(func=_extract)

    evaluate = commands.add_parser(
        "eval", parents=[common], help="precision / recall / F1 against gold labels",
        description="Per-label precision, recall and F1, and the micro F1 over BRAND+CATEGORY+MATERIAL, of the "
                    "pipeline's predictions on gold JSONL files ({id, title, labels: {LABEL: [values]}}).")
    evaluate.add_argument("--gold", required=True, action="append", help="gold JSONL file; repeatable")
    evaluate.add_argument("--json", action="store_true", help="print the scores as JSON instead of tables")
    evaluate.add_argument("--part", choices=("all", "tune", "heldout"), default="all",
                          help="score all rows, or only the tune (70 %%) or held-out (30 %%) part of each file, "
                               "split by a hash of the row id (see ner/split.py)")
    evaluate.add_argument("--predictions", default=None,
                          help="score this predictions JSONL (from `ner extract`) instead of running the pipeline; "
                               "only with a single --gold")
    evaluate.set_defaults(func=_eval)


def _extract(args) -> int:
    import ner

    extractor = ner.load(args.lang, lexicon_files=args.lexicon, config=args.config)
    source = sys.stdin if args.input == "-" else open(args.input, encoding="utf-8")
    sink = sys.stdout if args.output == "-" else open(args.output, "w", encoding="utf-8")
    count = 0
    try:
        for chunk in _chunks(_read_titles(source, args.input), args.batch_size):
            entities = extractor.extract([r["title"] for r in chunk], brand_hints=[r.get("brand") for r in chunk])
            for row, ents in zip(chunk, entities):
                sink.write(json.dumps({"id": row.get("id"), "entities": ents}, ensure_ascii=False) + "\n")
            count += len(chunk)
    finally:
        if source is not sys.stdin:
            source.close()
        if sink is not sys.stdout:
            sink.close()
    print(f"{count} titles -> {args.output}", file=sys.stderr)
    return 0


def _eval(args) -> int:
    from pathlib import Path

    from ner.evaluate import format_table, read_gold, score
    from ner.split import select

    if args.predictions and len(args.gold) != 1:
        print("--predictions needs exactly one --gold", file=sys.stderr)
        return 2
    extractor = None
    results = {}
    for gold_path in args.gold:
        rows = select(read_gold(gold_path), args.part)
        if args.predictions:
            predictions = _read_predictions(args.predictions, rows)
        else:
            if extractor is None:
                import ner

                extractor = ner.load(args.lang, lexicon_files=args.lexicon, config=args.config)
            predictions = extractor.extract([r["title"] for r in rows])
        name = Path(gold_path).name + ("" if args.part == "all" else f" [{args.part}]")
        results[name] = score(rows, predictions)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print("\n\n".join(format_table(name, result) for name, result in results.items()))
    return 0


def _read_titles(source, name: str):
    for number, line in enumerate(source, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SystemExit(f"{name}:{number}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise SystemExit(f"{name}:{number}: expected an object with 'id' and 'title'")
        title = row.get("title")
        brand = row.get("brand")
        yield {"id": row.get("id"), "title": title if isinstance(title, str) else "",
               "brand": brand if isinstance(brand, str) else None}


def _read_predictions(path: str, rows: list[dict]) -> list[list[dict]]:
    by_id = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                item = json.loads(line)
                by_id[item.get("id")] = item.get("entities") or []
    return [by_id.get(r.get("id"), []) for r in rows]


def _chunks(items, size: int):
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
