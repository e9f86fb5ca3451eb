"""Build lexicon files from a catalogue's label columns (the Myntra catalogue labels, MIT, for the bundled ones).

    python -m ner.lexicon_build --catalog catalog_labels.csv.gz --out ner/data/en

writes `brands_catalog.jsonl` (brandName), `categories_catalog.jsonl` (articleType), `colors_catalog.jsonl`
(baseColour) and `materials_catalog.jsonl` (attr_Fabric, attr_Material). Only label VALUES are kept, each once;
no title is copied. Values that are placeholders ("Other", "test", "NA") or too generic to be an entity of that
label are dropped (see `_SKIP`). Any catalogue with these columns works, so users can build their own.
"""
from __future__ import annotations

import argparse
import csv
import gzip
import json
from collections import Counter
from pathlib import Path

from ner.lexicon import canonical_id

# column -> (label, output file)
COLUMNS = {
    "brandName": ("BRAND", "brands_catalog.jsonl"),
    "articleType": ("CATEGORY", "categories_catalog.jsonl"),
    "baseColour": ("COLOR", "colors_catalog.jsonl"),
    "attr_Fabric": ("MATERIAL", "materials_catalog.jsonl"),
    "attr_Material": ("MATERIAL", "materials_catalog.jsonl"),
}
# Values that are no entity of their label: placeholders and catch-all buckets of the catalogue.
_SKIP = {
    "BRAND": {"test", "na", "n/a", "none", "other", "others", "generic", "unbranded"},
    "CATEGORY": {"free gifts", "ipad", "compact", "trunk", "toner", "foundation and primer"},
    "COLOR": {"multi", "skin", "nude", "metallic", "steel"},
    "MATERIAL": {"other", "blended", "synthetic", "fabric", "textile"},
}


def read_catalog(path: Path) -> list[dict[str, str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalog", required=True, type=Path, help="CSV (optionally .gz) with label columns")
    parser.add_argument("--out", required=True, type=Path, help="folder for the JSONL lexicons")
    parser.add_argument("--min-count", type=int, default=1, help="drop values seen fewer times")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for file, patterns in lexicon_values(read_catalog(args.catalog), args.min_count).items():
        with open(args.out / file, "w", encoding="utf-8") as fh:
            for item in sorted(patterns, key=lambda p: (p["label"], p["pattern"].casefold())):
                fh.write(json.dumps(item, ensure_ascii=False) + "\n")
        print(f"{args.out / file}: {len(patterns)} patterns")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
