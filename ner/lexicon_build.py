"""Build lexicon files from a catalogue's label columns (the Myntra catalogue labels, MIT, for the bundled ones),
or from the values of gold files whose licence allows it.

    python -m ner.lexicon_build --catalog catalog_labels.csv.gz --holdout-gold myntra_dev.jsonl --out ner/data/en
    python -m ner.lexicon_build --gold oamine_train.jsonl --gold extractgpt_ae110k_train.jsonl --out ner/data/en

writes `brands_catalog.jsonl` (brandName), `categories_catalog.jsonl` (articleType), `colors_catalog.jsonl`
(baseColour) and `materials_catalog.jsonl` (attr_Fabric, attr_Material). Only label VALUES are kept, each once;
no title is copied. Values that are placeholders ("Other", "test", "NA") or too generic to be an entity of that
label are dropped (see `_SKIP`). Any catalogue with these columns works, so users can build their own.
`--holdout-gold`: a gold file made of catalogue products (ids `<source>-<catalogue id>`); the catalogue rows of
its held-out part (`ner.split`) are left out, so that figures on that part stay honest.

With `--gold`, the BRAND and MATERIAL values of the TUNE part (`ner.split`) of each gold file go to
`brands_gold.jsonl` and `materials_gold.jsonl`; the held-out part is never read.

`--ids-from LEXICON` (repeatable): a value that one of these lexicons lists in any spelling (`ner.lexicon.phrase_key`:
"Track Suit" for "tracksuit", "Jewellery Set" for "jewelry set") takes that lexicon's id, so that one product word,
brand or material has one canonical id whichever lexicon matched it. The bundled files are built with
`--ids-from` on the curated lexicons (`en/brands/*.jsonl`, `en/categories/*.jsonl`, `en/colors.jsonl`,
`en/materials.jsonl`).
"""
from __future__ import annotations

import argparse
import csv
import glob
import gzip
import html
import json
from collections import Counter
from pathlib import Path

from ner.lexicon import canonical_id, phrase_key, read_lexicon
from ner.split import is_heldout

# column -> (label, output file)
COLUMNS = {
    "brandName": ("BRAND", "brands_catalog.jsonl"),
    "articleType": ("CATEGORY", "categories_catalog.jsonl"),
    "baseColour": ("COLOR", "colors_catalog.jsonl"),
    "attr_Fabric": ("MATERIAL", "materials_catalog.jsonl"),
    "attr_Material": ("MATERIAL", "materials_catalog.jsonl"),
}
# What catalogues write where a field is empty: no entity of any label.
_PLACEHOLDERS = {"na", "n/a", "n.a.", "none", "null", "nil", "-", "--", "test", "other", "others", "unknown"}
# Values that are no entity of their label: placeholders and catch-all buckets of the catalogue.
_SKIP = {
    "BRAND": _PLACEHOLDERS | {"generic", "unbranded"},
    "CATEGORY": _PLACEHOLDERS | {"free gifts", "ipad", "compact", "trunk", "toner", "foundation and primer"},
    "COLOR": _PLACEHOLDERS | {"multi", "skin", "nude", "metallic", "steel"},
    "MATERIAL": _PLACEHOLDERS | {"blended", "synthetic", "fabric", "textile"},
}


GOLD_FILES = {"BRAND": "brands_gold.jsonl", "MATERIAL": "materials_gold.jsonl"}


def read_catalog(path: Path, holdout_gold: Path | None = None) -> list[dict[str, str]]:
    """Catalogue rows, without those whose product is in the held-out part of `holdout_gold`."""
    held: set[str] = set()
    if holdout_gold:
        with open(holdout_gold, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    row_id = str(json.loads(line).get("id"))
                    if is_heldout(row_id):
                        held.add(row_id.rsplit("-", 1)[-1])
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as fh:
        return [row for row in csv.DictReader(fh) if row.get("id") not in held]


def gold_values(paths: list[Path], files: dict[str, str] = GOLD_FILES) -> dict[str, list[dict]]:
    """Patterns per output file from the values of the tune part of gold files (`files`: label -> output file)."""
    def rows():
        for path in paths:
            with open(path, encoding="utf-8") as fh:
                yield from (json.loads(line) for line in fh if line.strip())
    return gold_patterns(rows(), files)


def gold_patterns(rows, files: dict[str, str] = GOLD_FILES) -> dict[str, list[dict]]:
    """Patterns per output file from the values of gold rows (held-out rows skipped), most frequent first, one per
    distinct value and file (case-insensitive)."""
    counts: dict[str, Counter] = {}
    for row in rows:
        if is_heldout(row.get("id")):
            continue
        for label, file in files.items():
            for value in (row.get("labels") or {}).get(label) or ():
                value = " ".join(html.unescape(str(value)).split())
                if len(value) >= 2 and any(c.isalpha() for c in value):
                    counts.setdefault(file, Counter())[(label, value)] += 1
    out: dict[str, list[dict]] = {}
    for file, counter in counts.items():
        seen: set[str] = set()
        patterns = []
        for (label, value), _ in counter.most_common():
            if value.casefold() not in seen:
                seen.add(value.casefold())
                patterns.append({"label": label, "pattern": value, "id": canonical_id(value)})
        out[file] = patterns
    return out


def write_patterns(path: Path, patterns: list[dict]) -> None:
    """A JSONL lexicon of `patterns`, sorted by label and phrase."""
    with open(path, "w", encoding="utf-8") as fh:
        for item in sorted(patterns, key=lambda p: (p["label"], p["pattern"].casefold())):
            fh.write(json.dumps(item, ensure_ascii=False) + "\n")


def lexicon_values(rows: list[dict[str, str]], min_count: int = 1) -> dict[str, list[dict]]:
    """Patterns per output file, most frequent value first; one pattern per distinct value (case-insensitive)."""
    counts: dict[str, Counter] = {}
    for row in rows:
        for column, (label, file) in COLUMNS.items():
            value = " ".join((row.get(column) or "").split())
            if value and value.casefold() not in _SKIP[label]:
                counts.setdefault(file, Counter())[(label, value)] += 1
    out: dict[str, list[dict]] = {}
    for file, counter in counts.items():
        seen: set[tuple[str, str]] = set()
        patterns = []
        for (label, value), n in counter.most_common():
            key = (label, value.casefold())
            if n < min_count or key in seen:
                continue
            seen.add(key)
            patterns.append({"label": label, "pattern": value, "id": canonical_id(value)})
        out[file] = patterns
    return out


def known_ids(specs: list[str]) -> dict[tuple[str, str], str]:
    """(label, `phrase_key`) -> id of the string patterns of lexicons; the first lexicon to list a phrase wins."""
    ids: dict[tuple[str, str], str] = {}
    paths = []
    for spec in specs:
        # a quoted glob ("ner/data/en/brands/*.jsonl") stands for its files, in name order; one that matches
        # nothing stays as given, so that reading it names the missing file
        matches = sorted(glob.glob(spec)) if glob.has_magic(spec) else []
        paths.extend(matches or [spec])
    for spec in paths:
        for item in read_lexicon(spec):
            if isinstance(item["pattern"], str) and item.get("id"):
                ids.setdefault((item["label"], phrase_key(item["pattern"])), item["id"])
    return ids


def reuse_ids(patterns: list[dict], ids: dict[tuple[str, str], str]) -> list[dict]:
    """The patterns with the id a known lexicon gives their phrase, where it gives one."""
    return [{**p, "id": ids.get((p["label"], phrase_key(p["pattern"])), p["id"])} for p in patterns]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalog", type=Path, help="CSV (optionally .gz) with label columns")
    parser.add_argument("--holdout-gold", type=Path, default=None,
                        help="gold file of catalogue products whose held-out rows are left out")
    parser.add_argument("--gold", type=Path, action="append", default=[],
                        help="gold JSONL whose tune-part BRAND / MATERIAL values become lexicons; repeatable")
    parser.add_argument("--out", required=True, type=Path, help="folder for the JSONL lexicons")
    parser.add_argument("--min-count", type=int, default=1, help="drop catalogue values seen fewer times")
    parser.add_argument("--ids-from", action="append", default=[], metavar="LEXICON",
                        help="lexicon (or quoted glob of lexicons) whose ids the values it lists in any spelling "
                             "take; repeatable")
    args = parser.parse_args(argv)
    if not args.catalog and not args.gold:
        parser.error("give --catalog and/or --gold")
    args.out.mkdir(parents=True, exist_ok=True)
    files: dict[str, list[dict]] = {}
    if args.catalog:
        files.update(lexicon_values(read_catalog(args.catalog, args.holdout_gold), args.min_count))
    if args.gold:
        files.update(gold_values(args.gold))
    ids = known_ids(args.ids_from)
    for file, patterns in files.items():
        patterns = reuse_ids(patterns, ids)
        write_patterns(args.out / file, patterns)
        print(f"{args.out / file}: {len(patterns)} patterns")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
