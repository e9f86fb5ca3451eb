"""Build small run folders of committed shards for the model tests, with the pipeline's output schema.

Products come in categories; each has a generated image (a shape per category, a colour per product on white),
a title with its entities, an enriched title and image variants (ok, filtered and failed ones), as
`moon run` writes them, and catalogue labels as pass-through columns (gender, base_colour, article_type: the
same combination recurs every 48 products; gender is not in the title). Written through augment.core.manifest, so
`manifest.data_files` lists them.
"""
from __future__ import annotations

import io
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

from augment.core import manifest, schema

CATEGORIES = ["Apparel > Topwear > Shirts", "Footwear > Shoes > Sneakers", "Accessories > Bags > Backpacks",
              "Apparel > Bottomwear > Jeans"]
COLOURS = {"red": (200, 30, 30), "blue": (30, 60, 200), "green": (30, 160, 60), "black": (20, 20, 20),
           "yellow": (230, 200, 20), "purple": (120, 40, 160)}
BRANDS = ["Acme", "Borealis", "Corvid", "Delta", "Evergreen"]


def product_image(category: int, colour: tuple[int, int, int], size: int = 48, angle: int = 0) -> bytes:
    image = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    box = (8, 8, size - 8, size - 8)
    if category == 0:
        draw.rectangle(box, fill=colour)
    elif category == 1:
        draw.ellipse(box, fill=colour)
    elif category == 2:
        draw.polygon([(size // 2, 6), (size - 6, size - 6), (6, size - 6)], fill=colour)
    else:
        draw.rectangle((size // 2 - 6, 4, size // 2 + 6, size - 4), fill=colour)
    if angle:
        image = image.rotate(angle, fillcolor=(255, 255, 255))
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


GENDERS = ["Men", "Women"]


def product_rows(count: int, seed: int = 0, labels: bool = True) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        cat = i % len(CATEGORIES)
        colour_name = list(COLOURS)[(i // len(CATEGORIES)) % len(COLOURS)]
        brand = BRANDS[rng.randrange(len(BRANDS))]
        leaf = CATEGORIES[cat].split(" > ")[-1]
        style = f"Style{i:03d}"
        title = f"{brand} {style} {colour_name.title()} {leaf}"
        entities = []
        for label, text in (("BRAND", brand), ("COLOR", colour_name.title()), ("CATEGORY", leaf)):
            start = title.index(text)
            entities.append({"label": label, "text": text, "start": start, "end": start + len(text), "id": None})
        colour = COLOURS[colour_name]
        variants = [
            _variant("subject", product_image(cat, colour), "ok", 0.9),
            _variant("angle", product_image(cat, colour, angle=15), "ok", 0.8),
            _variant("background", product_image(cat, (128, 128, 128)), "filtered", 0.1),
            _variant("detail", None, "failed:timeout", None),
        ]
        rows.append(
            {
                "product_id": f"p{i:04d}",
                "title": title,
                "image": product_image(cat, colour),
                "image_uri": None,
                "description": None,
                "category_path": CATEGORIES[cat],
                "catalog_brand": brand,
                "entities": entities,
                "brand": [brand],
                "category": [leaf],
                "material": [],
                "color": [colour_name.title()],
                "enriched_title": f"{title} by {brand}, a {colour_name} {leaf.lower()[:-1]}",
                "enrichment": {"backend": "template", "model": None, "prompt_id": "enrich_title.v1",
                               "status": "ok", "attempts": 1},
                "background_prompts": [],
                "variants": variants,
                "lineage": {"run_id": "test", "source_uri": "generated", "source_row": i, "shard_id": "s",
                            "config_hash": "h", "code_version": "test"},
            }
        )
        if labels:
            rows[-1].update(gender=GENDERS[(i // 24) % 2], base_colour=colour_name.title(), article_type=leaf)
    return rows


def _variant(kind: str, image: bytes | None, status: str, score: float | None) -> dict:
    return {"kind": kind, "image": image, "uri": None, "format": "jpeg" if image else None, "width": 48,
            "height": 48, "prompt_id": None, "prompt": None, "model": "classic", "seed": 1, "score": score,
            "status": status}


def write_run(run_dir: Path, rows: list[dict], shard_size: int = 40) -> Path:
    """Commit rows as shards of `shard_size` into run_dir (data/ + _manifest.jsonl)."""
    run_dir = Path(run_dir)
    (run_dir / manifest.DATA_DIR).mkdir(parents=True, exist_ok=True)
    known = set(schema.output_schema().names)
    extra = pa.schema([pa.field(name, pa.string()) for name in rows[0] if name not in known])
    out_schema = schema.output_schema(extra)
    for start in range(0, len(rows), shard_size):
        part = rows[start : start + shard_size]
        shard_id = f"shard{start:05d}"
        rel = f"{manifest.DATA_DIR}/{shard_id}.parquet"
        pq.write_table(pa.Table.from_pylist(part, schema=out_schema), run_dir / rel)
        manifest.commit(str(run_dir), manifest.ShardRecord(
            shard_id=shard_id, source_uri="generated", row_start=start, row_stop=start + len(part),
            rows_in=len(part), rows_out=len(part), rows_quarantined=0, quarantine_reasons={}, data_file=rel,
            quarantine_file=None, checksum="-", bytes=(run_dir / rel).stat().st_size, config_hash="h",
            code_version="test", run_id="test", schema_version=schema.SCHEMA_VERSION, timings={},
        ))
    return run_dir
