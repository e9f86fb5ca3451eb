"""A run folder built directly from augment.core.schema: shards with every variant kind and status, quarantine files,
manifest records with known timings and commit times, `_run.json`. The report tests read it; the figures a report
must show follow from the arguments, so tests can state them exactly."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw, ImageOps

from augment.core import manifest
from augment.core import schema as S

BRANDS = ("Nike", "Roadster", "Puma", "Fabindia", "Wildcraft")
COLOURS = ("Red", "Navy Blue", "Green", "Black", "Mustard")
MATERIALS = ("Cotton", "Denim", "Leather", "Linen", "Wool")
CATEGORIES = ("Shirt", "Jeans", "Backpack", "Kurta", "Jacket")
RGB = {"Red": (200, 40, 40), "Navy Blue": (30, 40, 110), "Green": (40, 150, 70), "Black": (30, 30, 30), "Mustard": (210, 160, 30)}
BACKDROPS = ((226, 236, 248), (246, 232, 220), (222, 240, 228))
STARTED_AT = 1_700_000_000.0
SECONDS_PER_SHARD = 5.0
STAGE_SECONDS_PER_ROW = {"validate": 0.002, "ner": 0.004, "enrich_title": 0.05, "background_prompts": 0.01,
                         "image_variants": 0.4, "filter": 0.02}
RUN_ID = "run-synthetic"


def photo(colour: tuple[int, int, int], width: int = 120, height: int = 160) -> Image.Image:
    """A garment-like shape with a white logo patch on a light grey studio background."""
    image = Image.new("RGB", (width, height), (236, 236, 236))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle([width * 0.2, height * 0.12, width * 0.8, height * 0.92], radius=8, fill=colour)
    draw.rectangle([width * 0.42, height * 0.3, width * 0.58, height * 0.4], fill=(250, 250, 250))
    draw.line([width * 0.44, height * 0.35, width * 0.56, height * 0.35], fill=(10, 10, 10), width=2)
    return image


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=88)
    return buffer.getvalue()


def variant_images(base: Image.Image, index: int) -> dict[str, Image.Image]:
    w, h = base.size
    subject = ImageOps.pad(base, (160, 160), color=(255, 255, 255))
    backdrop = Image.new("RGB", (160, 160), BACKDROPS[index % len(BACKDROPS)])
    backdrop.paste(base.resize((90, 120)), (35, 30))
    angle = base.transform((w, h), Image.Transform.AFFINE, (1, 0.25, -20, 0, 1, 0), fillcolor=(255, 255, 255))
    logo = base.crop((int(w * 0.35), int(h * 0.25), int(w * 0.65), int(h * 0.45))).resize((120, 80))
    detail = base.crop((int(w * 0.3), int(h * 0.5), int(w * 0.7), int(h * 0.8))).resize((120, 90))
    return {"subject": subject, "background": backdrop, "angle": angle, "logo": logo, "detail": detail}


def product_row(i: int, shard_id: str, source: str, images_dir: Path | None = None) -> dict:
    """Product i; with `images_dir`, variant images are files there, referenced by `uri` instead of inline."""
    brand, colour = BRANDS[i % 5], COLOURS[(i // 5) % 5]
    material, category = MATERIALS[(i // 2) % 5], CATEGORIES[i % 5]
    title = f"{brand} Men {colour} {material} {category}"
    entities, position = [], 0
    for label, text in (("BRAND", brand), ("COLOR", colour), ("MATERIAL", material), ("CATEGORY", category)):
        start = title.index(text, position)
        entities.append({"label": label, "text": text, "start": start, "end": start + len(text), "id": text.lower()})
        position = start + len(text)
    base = photo(RGB[colour])
    variants = []
    for kind, image in variant_images(base, i).items():
        data, uri = jpeg(image), None
        if images_dir is not None:
            uri = str(images_dir / f"P{i:04d}-{kind}.jpg")
            Path(uri).write_bytes(data)
            data = None
        variants.append({
            "kind": kind, "image": data, "uri": uri, "format": "jpeg", "width": image.width, "height": image.height,
            "prompt_id": f"{kind}.v1", "prompt": "a sunlit wooden table" if kind == "background" else None,
            "model": "synthetic", "seed": 1000 + i, "score": round(0.3 + 0.07 * ((i + len(kind)) % 10), 2),
            "status": variant_status(i, kind),
        })
    return {
        "product_id": f"P{i:04d}", "title": title, "image": jpeg(base), "image_uri": None, "description": None,
        "category_path": f"Apparel > {category}", "catalog_brand": brand,
        "entities": entities, "brand": [brand], "category": [category], "material": [material], "color": [colour],
        "enriched_title": f"{title} | Brand: {brand} | Material: {material.lower()}",
        "enrichment": {"backend": "template", "model": None, "prompt_id": "enrich_title_template.v1",
                       "status": "ok" if i % 4 else "fallback:guard_dropped_entity", "attempts": 1},
        "background_prompts": ["a sunlit wooden table", "a white studio backdrop"],
        "variants": variants,
        "lineage": lineage(shard_id, source, i),
    }


def variant_status(i: int, kind: str) -> str:
    """Product i's status for `kind`: every 3rd background filtered, every 5th angle failed, every 4th detail filtered."""
    if kind == "background" and i % 3 == 0:
        return "filtered"
    if kind == "angle" and i % 5 == 0:
        return "failed:generation_error"
    if kind == "detail" and i % 4 == 0:
        return "filtered"
    return "ok"


def lineage(shard_id: str, source: str, row: int) -> dict:
    return {"run_id": RUN_ID, "source_uri": source, "source_row": row, "shard_id": shard_id,
            "config_hash": "cafe0123cafe0123", "code_version": "test"}


def quarantine_row(i: int, reason: str, shard_id: str, source: str) -> dict:
    return {"product_id": f"Q{i:04d}" if i % 2 else None, "title": f"Broken product {i}" if i % 2 else None,
            "image": None, "image_uri": None, "description": None, "category_path": None, "catalog_brand": None,
            "stage": "validate", "reason": reason, "detail": f"row {i} failed with {reason}",
            "raw": json.dumps({"id": i, "name": "x" * 300}), "lineage": lineage(shard_id, source, i)}


def build_run(run_dir: str | Path, products: int = 30, shard_size: int = 10, quarantine: dict[str, int] | None = None,
              variants_as_files: bool = False) -> dict:
    """Write the run folder; returns the totals it was built with."""
    run_dir = str(run_dir)
    images_dir = Path(run_dir, "images") if variants_as_files else None
    if images_dir is not None:
        images_dir.mkdir(parents=True, exist_ok=True)
    quarantine = dict(quarantine or {})
    source = "/catalogue/products.parquet"
    Path(run_dir, "data").mkdir(parents=True, exist_ok=True)
    Path(run_dir, "quarantine").mkdir(exist_ok=True)
    Path(run_dir, manifest.RUN_FILE).write_text(json.dumps(
        {"run_id": RUN_ID, "config_hash": "cafe0123cafe0123", "code_version": "test", "created_at": STARTED_AT,
         "schema_version": S.SCHEMA_VERSION}))
    bad = [reason for reason, count in sorted(quarantine.items()) for _ in range(count)]
    shards = max(1, -(-products // shard_size))
    for k in range(shards):
        shard_id = f"shard{k:03d}"
        rows = [product_row(i, shard_id, source, images_dir) for i in range(k * shard_size, min(products, (k + 1) * shard_size))]
        rejected = [quarantine_row(10_000 + j, reason, shard_id, source) for j, reason in enumerate(bad) if j % shards == k]
        data_file = quarantine_file = None
        size = 0
        if rows:
            data_file = f"data/{shard_id}.parquet"
            pq.write_table(pa.Table.from_pylist(rows, schema=S.output_schema()), Path(run_dir, data_file))
            size += Path(run_dir, data_file).stat().st_size
        if rejected:
            quarantine_file = f"quarantine/{shard_id}.parquet"
            pq.write_table(pa.Table.from_pylist(rejected, schema=S.quarantine_schema()), Path(run_dir, quarantine_file))
            size += Path(run_dir, quarantine_file).stat().st_size
        statuses: dict[str, int] = {}
        for row in rows:
            for v in row["variants"]:
                bucket = v["status"].split(":", 1)[0]
                statuses[bucket] = statuses.get(bucket, 0) + 1
                statuses[f"{v['kind']}:{bucket}"] = statuses.get(f"{v['kind']}:{bucket}", 0) + 1
        enrichment: dict[str, int] = {}  # as augment.writer._enrichment_status counts them
        for row in rows:
            prefix = row["enrichment"]["status"].split(":", 1)[0]
            enrichment[prefix] = enrichment.get(prefix, 0) + 1
        reasons: dict[str, int] = {}
        for row in rejected:
            reasons[row["reason"]] = reasons.get(row["reason"], 0) + 1
        manifest.commit(run_dir, manifest.ShardRecord(
            shard_id=shard_id, source_uri=source, row_start=k * shard_size, row_stop=k * shard_size + len(rows) + len(rejected),
            rows_in=len(rows) + len(rejected), rows_out=len(rows), rows_quarantined=len(rejected),
            quarantine_reasons=reasons, data_file=data_file, quarantine_file=quarantine_file, checksum="0" * 64,
            bytes=size, config_hash="cafe0123cafe0123", code_version="test", run_id=RUN_ID,
            schema_version=S.SCHEMA_VERSION,
            timings={stage: per_row * len(rows) for stage, per_row in STAGE_SECONDS_PER_ROW.items()},
            committed_at=STARTED_AT + SECONDS_PER_SHARD * (k + 1), variant_status=statuses,
            enrichment_status=enrichment,
        ))
    return {"rows_in": products + len(bad), "rows_out": products, "rows_quarantined": len(bad), "shards": shards,
            "elapsed": SECONDS_PER_SHARD * shards}
