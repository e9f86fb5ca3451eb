"""Does the filter catch broken variants and keep genuine ones? Precision and recall on real product photos.

    python bench/filter_damage.py --images ../shared/data/myntra --out bench/results/raw/filter-damage.json
    python bench/filter_damage.py --sample            # the bundled sample (augment/sample), no data needed

For each product photo: the `classic` image_variants backend makes its variants (the default options, one
background from a few fixed prompts); each genuine variant is scored by the heuristic `filter` stage as it is,
and again after each damage of testkit/damage.py that applies to its kind (erase, mark, blank,
recolour), re-encoded as JPEG as a generator's output would be. A damaged variant should come out `filtered`, a
genuine one `ok`. Printed per kind and damage: how many were filtered; overall recall (damaged ones filtered),
precision (filtered ones that were damaged) and the share of genuine variants filtered. The filter's ramps
were set on every 12th Myntra product (positions 0, 12, 24, ...); `--subset 1/4` measures on positions 1, 5,
9, ... (none of those), `--subset K/N` on positions K mod N.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from augment.core.schema import VARIANT_KINDS  # noqa: E402
from augment.imaging.codec import decode_rgb, encode  # noqa: E402
from augment.stages.base import RunContext  # noqa: E402
from augment.stages.filter.heuristic import HeuristicFilterOptions, HeuristicFilterStage  # noqa: E402
from augment.stages.image_variants.classic import ClassicOptions, ClassicVariantsStage  # noqa: E402
from testkit.damage import DAMAGES, applies, damage  # noqa: E402

PROMPTS = ["soft grey studio backdrop", "pastel pink seamless paper", "light oak wooden floor against a cream wall",
           "white marble countertop in daylight"]
SAMPLE = Path(__file__).resolve().parent.parent / "augment" / "sample" / "myntra_sample.parquet"


def products_from_folder(folder: Path) -> list[tuple[str, bytes, list[str]]]:
    """(product id, image bytes, brands) of a Myntra-layout folder (products.csv + images/)."""
    with open(folder / "products.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if (folder / r["image"]).exists()]
    return [(r["id"], (folder / r["image"]).read_bytes(), [r["brandName"]] if r.get("brandName") else [])
            for r in rows]


def products_from_sample(path: Path = SAMPLE) -> list[tuple[str, bytes, list[str]]]:
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["product_id", "image", "brand"]).to_pylist()
    return [(r["product_id"], r["image"], [r["brand"]] if r["brand"] else []) for r in table]


def measure(products, threshold: float | None = None, size: int = 512) -> list[dict]:
    """One row per scored variant: product, kind, damage ("none" for the genuine one), score, status."""
    maker = ClassicVariantsStage(ClassicOptions(size=size), RunContext())
    maker.setup()
    options = HeuristicFilterOptions() if threshold is None else HeuristicFilterOptions(threshold=threshold)
    scorer = HeuristicFilterStage(options, RunContext())
    scorer.setup()
    rows = []
    for pid, image, brands in products:
        made = maker.product_variants(pid, image, brands, PROMPTS)
        cases, variants = [], []
        for v in made:
            if v["status"] != "ok":
                rows.append({"product_id": pid, "kind": v["kind"], "damage": "none", "score": None,
                             "status": v["status"]})
                continue
            rgb = decode_rgb(v["image"])
            cases.append((v["kind"], "none"))
            variants.append(v)
            for name in DAMAGES:
                if applies(name, v["kind"]):
                    seed = int.from_bytes(f"{pid}:{v['kind']}:{name}".encode()[-8:], "big") % 2**32
                    broken = encode(damage(rgb, v["kind"], name, seed), "jpeg", 90)
                    cases.append((v["kind"], name))
                    variants.append({**v, "image": broken})
        for (kind, name), scored in zip(cases, scorer.score_product(pid, variants, image)):
            rows.append({"product_id": pid, "kind": kind, "damage": name, "score": scored["score"],
                         "status": scored["status"]})
    return rows


def summarise(rows: list[dict]) -> dict:
    """Counts per kind and damage, and overall precision, recall and genuine-filtered share."""
    scored = [r for r in rows if r["score"] is not None]
    table: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for r in scored:
        cell = table[r["kind"]][r["damage"]]
        cell[0] += r["status"] == "filtered"
        cell[1] += 1
    damaged = [r for r in scored if r["damage"] != "none"]
    genuine = [r for r in scored if r["damage"] == "none"]
    tp = sum(r["status"] == "filtered" for r in damaged)
    fp = sum(r["status"] == "filtered" for r in genuine)
    per_damage = {}
    for name in DAMAGES:
        part = [r for r in damaged if r["damage"] == name]
        per_damage[name] = sum(r["status"] == "filtered" for r in part) / max(1, len(part))
    return {
        "products": len({r["product_id"] for r in rows}),
        "genuine": len(genuine), "damaged": len(damaged),
        "recall": tp / max(1, len(damaged)), "precision": tp / max(1, tp + fp),
        "genuine_filtered": fp / max(1, len(genuine)),
        "recall_per_damage": per_damage,
        "not_made": sum(r["score"] is None for r in rows),
        "table": {kind: {name: {"filtered": c[0], "of": c[1]} for name, c in cells.items()}
                  for kind, cells in table.items()},
    }


def format_summary(summary: dict) -> str:
    lines = [f"{summary['products']} products: {summary['genuine']} genuine variants, {summary['damaged']} damaged "
             f"({summary['not_made']} variants not made, e.g. failed:no_detail)",
             f"{'kind':<11}" + "".join(f"{d:>14}" for d in ("none",) + DAMAGES)]
    for kind in VARIANT_KINDS:
        cells = summary["table"].get(kind, {})
        row = f"{kind:<11}"
        for name in ("none",) + DAMAGES:
            c = cells.get(name)
            row += f"{(str(c['filtered']) + '/' + str(c['of'])) if c else '-':>14}"
        lines.append(row)
    lines.append(f"recall {summary['recall']:.3f}  precision {summary['precision']:.3f}  "
                 f"genuine filtered {summary['genuine_filtered']:.3f}  per damage: " + ", ".join(
                     f"{k} {v:.3f}" for k, v in summary["recall_per_damage"].items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", type=Path, help="a folder with products.csv and images/ (Myntra layout)")
    source.add_argument("--sample", action="store_true", help="the bundled sample (augment/sample)")
    parser.add_argument("--limit", type=int, help="first N products only")
    parser.add_argument("--subset", help="K/N: only the products at positions K mod N (e.g. 1/4)")
    parser.add_argument("--threshold", type=float, help="filter threshold (default: the stage's default)")
    parser.add_argument("--out", help="JSON file: the summary and every variant the filter got wrong")
    args = parser.parse_args(argv)
    products = products_from_sample() if args.sample else products_from_folder(args.images)
    if args.subset:
        k, n = (int(x) for x in args.subset.split("/"))
        products = [p for i, p in enumerate(products) if i % n == k]
    products = products[: args.limit]
    started = time.time()
    rows = measure(products, args.threshold)
    summary = summarise(rows)
    summary["seconds"] = round(time.time() - started, 1)
    summary["threshold"] = args.threshold if args.threshold is not None else HeuristicFilterOptions().threshold
    print(format_summary(summary))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        command = "python bench/filter_damage.py " + " ".join(argv if argv is not None else sys.argv[1:])
        wrong = [r for r in rows if r["score"] is not None and (r["damage"] == "none") == (r["status"] == "filtered")]
        Path(args.out).write_text(json.dumps({"command": command, "summary": summary, "wrong": wrong}, indent=1))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    raise SystemExit(main())
