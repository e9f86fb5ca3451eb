"""Rebuild the bundled sample from a checkout of the Myntra "Fashion Product Images" data.

    python augment/sample/build.py --source ../shared/data/myntra --count 80

Picks products round-robin over article types (sorted, so the choice is deterministic), keeps the catalogue
fields, and stores each image inline as JPEG bytes. Not used at run time; the Parquet file it writes ships with
the package.
"""
from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def build(source: Path, count: int, out: Path) -> int:
    with open(source / "products.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if (source / r["image"]).exists()]
    by_type: dict[str, list[dict]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: int(r["id"])):
        by_type[row["articleType"]].append(row)
    picked: list[dict] = []
    depth = 0
    while len(picked) < count:
        added = False
        for article_type in sorted(by_type):
            if depth < len(by_type[article_type]) and len(picked) < count:
                picked.append(by_type[article_type][depth])
                added = True
        if not added:
            break
        depth += 1
    picked.sort(key=lambda r: int(r["id"]))
    table = pa.table(
        {
            "product_id": [r["id"] for r in picked],
            "title": [r["productDisplayName"] for r in picked],
            "image": [(source / r["image"]).read_bytes() for r in picked],
            "brand": [r["brandName"] or None for r in picked],
            "category_path": [
                " > ".join(x for x in (r["masterCategory"], r["subCategory"], r["articleType"]) if x) for r in picked
            ],
            "gender": [r["gender"] or None for r in picked],
            "base_colour": [r["baseColour"] or None for r in picked],
            "season": [r["season"] or None for r in picked],
            "usage": [r["usage"] or None for r in picked],
            "article_type": [r["articleType"] or None for r in picked],  # the third label of shopper queries
        }
    )
    pq.write_table(table, out, compression="zstd")
    return table.num_rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True)
    parser.add_argument("--count", type=int, default=80)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "myntra_sample.parquet")
    args = parser.parse_args()
    print(f"wrote {build(args.source, args.count, args.out)} products to {args.out}")
