"""`moon ner extract` and `moon ner eval`: the NER pipeline on JSONL files, for batch use and evaluation.

Only argument definitions live at import time; spaCy and the pipeline are loaded inside the handlers, so that
`moon --help` stays instant.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time

from augment.core.util import json_loads, positive_int


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
    common.add_argument("--batch-size", type=positive_int, default=1024, help="titles per call (default 1024)")

    extract = commands.add_parser(
        "extract", parents=[common], help="entities of each title of a JSONL file",
        description='Input lines carry "id" and "title" (an optional "brand" is used as the row\'s brand hint); '
                    'output lines are {"id", "entities": [{"label", "text", "start", "end", "id"}, ...]}, one per '
                    'non-blank input line and in its order; a line that cannot be read (not UTF-8, not JSON, no id, '
                    'no title) gets {"id", "entities": [], "line", "error"}.')
    extract.add_argument("--input", required=True, help="JSONL titles ('-' for stdin)")
    extract.add_argument("--output", required=True, help="JSONL predictions ('-' for stdout)")
    extract.add_argument("--strict", action="store_true",
                         help="exit with status 1 when an input line could not be read (its output line carries an "
                              "'error' field either way)")
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
    evaluate.add_argument("--errors", default=None, metavar="FILE",
                          help="write one JSONL line per row and label where prediction and gold differ ({file, "
                               "id, title, label, kind, gold, predicted}; kinds: missed, spurious, partial, "
                               "boundary, wrong) and print how many rows of each kind")
    evaluate.set_defaults(func=_eval)


def _extract(args) -> int:
    import ner

    if args.input != "-" and _input_problem(args.input):
        return _error(f"input {args.input} {_input_problem(args.input)}")
    if _output_problem(args.output):
        return _error(f"output {args.output} {_output_problem(args.output)}")
    try:
        extractor = ner.load(args.lang, lexicon_files=args.lexicon, config=args.config)
    except (OSError, ValueError) as exc:
        return _error(str(exc))
    counts = {"rows": 0, "errors": 0}
    first_errors: list[str] = []
    started = last_report = time.monotonic()
    try:
        with _open_input(args.input) as source, _publishing(args.output) as sink:
            for chunk in _chunks(_read_titles(source), args.batch_size):
                readable = [r for r in chunk if r["error"] is None]
                found = iter(extractor.extract([r["title"] for r in readable],
                                               brand_hints=[r["brand"] for r in readable]))
                for row in chunk:
                    if row["error"] is None:
                        record = {"id": row["id"], "entities": next(found)}
                    else:
                        record = {"id": row["id"], "entities": [], "line": row["line"], "error": row["error"]}
                        counts["errors"] += 1
                        if len(first_errors) < 3:
                            first_errors.append(f"line {row['line']}: {row['error']}")
                    sink.write(json.dumps(record, ensure_ascii=False) + "\n")
                counts["rows"] += len(chunk)
                if time.monotonic() - last_report >= 10:  # progress on long inputs
                    last_report = time.monotonic()
                    print(f"{counts['rows']:,} titles ({counts['rows'] / (last_report - started):,.0f}/s)",
                          file=sys.stderr)
    except OSError as exc:
        return _error(str(exc))
    print(f"{counts['rows']} titles -> {args.output}", file=sys.stderr)
    if counts["errors"]:
        print(f"warning: {counts['errors']} input lines could not be read; their output lines carry an 'error' "
              f"field and no entities ({'; '.join(first_errors)})", file=sys.stderr)
        return 1 if args.strict else 0
    return 0


def _eval(args) -> int:
    from pathlib import Path

    from ner.evaluate import count_kinds, format_kinds, format_table, has_labels, mismatches, read_gold, score
    from ner.split import select

    if args.predictions and len(args.gold) != 1:
        return _error("--predictions needs exactly one --gold")
    if args.errors and _output_problem(args.errors):
        return _error(f"errors file {args.errors} {_output_problem(args.errors)}")
    for kind, path in [("gold file", p) for p in args.gold] + [("predictions file", args.predictions)]:
        if path and _input_problem(path):
            return _error(f"{kind} {path} {_input_problem(path)}")
    extractor = None
    results = {}
    errors: dict[str, list[dict]] = {}
    try:
        for gold_path in args.gold:
            rows = read_gold(gold_path)
            if not has_labels(rows):
                return _error(f"no gold labels in {gold_path}: no line gives BRAND, CATEGORY, MATERIAL or COLOR values")
            rows = select(rows, args.part)
            if args.predictions:
                predictions = _read_predictions(args.predictions, rows, gold_path)
            else:
                if extractor is None:
                    import ner

                    extractor = ner.load(args.lang, lexicon_files=args.lexicon, config=args.config)
                predictions = extractor.extract([r["title"] for r in rows])
            name = Path(gold_path).name + ("" if args.part == "all" else f" [{args.part}]")
            results[name] = score(rows, predictions)
            if args.errors:
                errors[name] = [{"file": name, **record} for record in mismatches(rows, predictions)]
                results[name]["errors"] = count_kinds(errors[name])
        if args.errors:
            with _publishing(args.errors) as sink:
                for records in errors.values():
                    sink.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    except (OSError, ValueError) as exc:
        return _error(str(exc))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print("\n\n".join(format_table(name, result) + ("\n" + format_kinds(result["errors"]) if args.errors else "")
                           for name, result in results.items()))
    if args.errors:
        print(f"{sum(map(len, errors.values()))} mismatches -> {args.errors}", file=sys.stderr)
    return 0


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _input_problem(path: str) -> str | None:
    """Why `path` cannot be read as an input file ('does not exist', 'is a directory'), or None."""
    if os.path.isfile(path):
        return None
    return "is a directory" if os.path.isdir(path) else "does not exist"


def _output_problem(path: str) -> str | None:
    """Why a local output file cannot be written at `path` ('is a directory', ...), or None. Checked before the
    work: the file is written under a temporary name and renamed at the end, so a late error would name the
    temporary file."""
    if path == "-" or "://" in path:
        return None
    if os.path.isdir(path):
        return "is a directory"
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):  # missing folders are created
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        return f"cannot be written: {parent} is not a directory"
    if not os.access(parent, os.W_OK):
        return f"cannot be written: no permission to write in {parent}"
    return None


@contextlib.contextmanager
def _open_input(path: str):
    """The input's lines as bytes ('-': stdin), decoded line by line by `_read_titles`."""
    if path == "-":
        yield sys.stdin.buffer
    else:
        with open(path, "rb") as fh:
            yield fh


@contextlib.contextmanager
def _publishing(path: str):
    """A text sink for `path` ('-': stdout). A file appears complete or not at all (`augment.core.storage.publishing`)."""
    if path == "-":
        yield sys.stdout
        return
    from augment.core import storage

    with storage.publishing(path) as tmp, open(tmp, "w", encoding="utf-8") as sink:
        yield sink


def _read_titles(source):
    """One record per non-blank input line: {line, id, title, brand, error}; `error` names why a line could not
    be read (it then gets an output line of its own, never disappears)."""
    from ner.evaluate import id_problem

    for number, raw in enumerate(source, 1):
        if not raw.strip():
            continue
        record = {"line": number, "id": None, "title": "", "brand": None, "error": None}
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            record["error"] = f"not UTF-8 (at byte offset {exc.start})"
            yield record
            continue
        try:
            row = json_loads(line)
        except json.JSONDecodeError as exc:
            record["error"] = f"not JSON ({exc.msg})"
            yield record
            continue
        if not isinstance(row, dict):
            record["error"] = "not a JSON object with 'id' and 'title'"
            yield record
            continue
        record["id"] = row.get("id")
        title, brand = row.get("title"), row.get("brand")
        if record["id"] is None:
            record["error"] = "no 'id'"  # its entities could not be joined back to the product
        elif id_problem(record["id"]):
            record["id"], record["error"] = None, id_problem(record["id"])  # `ner eval` could not join it either
        elif isinstance(title, str):
            record["title"] = title
        else:
            record["error"] = "no 'title' string" if title is None else f"'title' is a {type(title).__name__}"
        record["brand"] = brand if isinstance(brand, str) else None
        yield record


def _read_predictions(path: str, rows: list[dict], gold_path: str = "the gold file") -> list[list[dict]]:
    """The entities of each gold row from a predictions JSONL file ({"id", "entities"} lines, as `ner extract`
    writes them), joined by id; ValueError naming the file and line of a malformed one, or of an id that two
    predictions or two gold rows share (the join would score one row's entities against another's). Lines
    without an id (the error records of `ner extract`) are skipped."""
    from collections import Counter

    from ner.evaluate import read_jsonl

    repeated = [key for key, n in Counter(r["id"] for r in rows if r.get("id") is not None).items() if n > 1]
    if repeated:
        raise ValueError(f"{gold_path}: {len(repeated)} ids are on more than one row (e.g. {repeated[0]!r}): "
                         "--predictions joins predictions to gold rows by id; without it rows are scored one by one")
    by_id, lines = {}, {}
    for number, item in read_jsonl(path):
        problem = _prediction_problem(item)
        if problem:
            raise ValueError(f"{path}:{number}: {problem}")
        if item.get("id") is not None:
            if item["id"] in lines:
                raise ValueError(f"{path}:{number}: the id {item['id']!r} is on line {lines[item['id']]} too; "
                                 "predictions join gold rows by id")
            lines[item["id"]] = number
            by_id[item["id"]] = item.get("entities") or []
    missing = sum(1 for r in rows if r.get("id") not in by_id)
    if missing:
        print(f"warning: {missing} of {len(rows)} gold rows have no line in {path}; they count as predicting no "
              f"entities", file=sys.stderr)
    return [by_id.get(r.get("id"), []) for r in rows]


def _prediction_problem(item: object) -> str | None:
    """Why one predictions line cannot be scored, or None: the id must be a string or number (or missing), each
    entity an object with "label" and "text" strings."""
    from ner.evaluate import id_problem

    if not isinstance(item, dict) or not isinstance(item.get("entities", []), list):
        return 'expected {"id", "entities": [...]}'
    if item.get("id") is not None and id_problem(item["id"]):
        return id_problem(item["id"])
    for number, entity in enumerate(item.get("entities") or [], 1):
        if not isinstance(entity, dict):
            return f'entity {number} is not an object with "label" and "text"'
        for key in ("label", "text"):
            if key not in entity:
                return f'entity {number} has no "{key}"'
            if not isinstance(entity[key], str):
                return f'entity {number}: "{key}" must be a string, not {json.dumps(entity[key])[:40]}'
    return None


def _chunks(items, size: int):
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
