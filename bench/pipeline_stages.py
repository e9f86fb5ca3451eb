"""Per-stage throughput of the pipeline, in one process, written as bench result JSON for `moon plan`.

Runs a catalogue (default: the bundled sample, repeated --copies times under new product ids) through the
configured stages in this process (no Ray: one CPU core, or one GPU for stages whose config asks for GPUs), after
a warm-up run that loads every model. Each stage's figure is its own summed batch time from the shard manifest, so
setup and model loading are excluded. One file per stage is written to --out (default bench/results/).

    python3 bench/pipeline_stages.py --copies 8                       # CPU stages of the local profile
    python3 bench/pipeline_stages.py --profile gpu --copies 4         # on a CUDA machine, model stages on GPU 0

Needs the project's core dependencies (pyarrow, spaCy, Pillow, ...) and whatever the configured backends need.
"""
from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from augment.ops import benchjson  # noqa: E402
from augment.core import manifest, storage  # noqa: E402
from augment import config as C  # noqa: E402
from augment import plan as P, runner  # noqa: E402

SAMPLE = ROOT / "augment" / "sample" / "myntra_sample.parquet"
IMAGE_STAGES = ("image_variants", "filter")  # their cost grows with the images per product: rates are per image


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", default=str(SAMPLE), help="Parquet catalogue (default: the bundled sample)")
    parser.add_argument("--copies", type=int, default=4, help="repeat the input this many times (new product ids)")
    parser.add_argument("--config", help="run config YAML")
    parser.add_argument("--profile", help="named profile (local, gpu)")
    parser.add_argument("--stages", help="comma-separated stages to measure (default: all enabled)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"), help="folder for the result files")
    parser.add_argument("--notes", default="", help="free text stored with every result (e.g. the machine's load)")
    args = parser.parse_args()

    config = C.load(args.config, args.profile, check_stages=False)
    if args.stages:
        wanted = {s.strip() for s in args.stages.split(",")} | {"validate"}
        for name, stage in config.stages.items():
            stage.enabled = name in wanted
    C.validate_stages(config)
    config.run.progress = False
    with tempfile.TemporaryDirectory(prefix="moon-bench-") as scratch:
        catalogue = repeated(args.input, args.copies, Path(scratch) / "catalogue.parquet")
        rows = pq.read_metadata(catalogue).num_rows
        # 1. warm-up: load every model once (spaCy, MLLM, diffusion), so the timed run measures steady state
        started = time.perf_counter()
        warm = P.plan_run(str(catalogue), str(Path(scratch) / "warm"), config, limit=min(rows, 8))
        runner.execute(warm, config, use_ray=False)
        setup_seconds = time.perf_counter() - started
        # 2. the timed run; CPU time against wall time shows whether other processes slowed it down
        run_dir = str(Path(scratch) / "run")
        plan = P.plan_run(str(catalogue), run_dir, config)
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        result = runner.execute(plan, config, use_ray=False)
        busy = (time.process_time() - cpu_before) / (time.perf_counter() - wall_before)
        totals = manifest.totals(result.records)
        sizes = output_sizes(run_dir)
    command = "python3 bench/pipeline_stages.py " + shlex.join(sys.argv[1:])
    for name, stage in config.enabled_stages():
        seconds = totals["timings"].get(name)
        if not seconds:
            print(f"{name}: no timing recorded, skipped", file=sys.stderr)
            continue
        kind = "gpu" if stage.resources.num_gpus > 0 else "cpu"
        hardware = benchjson.detect_hardware(kind)
        output = {}
        if name == "validate":
            output = {"bytes_per_product": round(sizes["row_bytes"], 1),
                      "source_image_bytes_per_product": round(sizes["source_image_bytes"], 1)}
        elif name == "image_variants" and sizes["images"]:
            output = {"bytes_per_image": round(sizes["image_bytes"] / sizes["images"], 1)}
        # validate sees every row; later stages see the rows validate let through; image stages count images
        unit = "image" if name in IMAGE_STAGES else "product"
        items = int(sizes["variants"]) if unit == "image" else totals["rows_in"] if name == "validate" else totals["rows_out"]
        path = Path(args.out) / f"{name}-{stage.backend}-{slug(hardware)}.json"
        benchjson.write_result(
            path, stage=name, backend=stage.backend, config=dict(stage.options), hardware=hardware, items=items, unit=unit,
            seconds=round(seconds, 4), setup_seconds=round(setup_seconds, 2), output=output, command=command,
            notes="; ".join(x for x in (
                f"one process, {rows} products ({args.copies} copies of {Path(args.input).name})",
                f"process CPU time / wall time {busy:.2f}, load average {os.getloadavg()[0]:.1f} at the end", args.notes) if x))
        print(f"{name:<20} {items / seconds:10.1f} {unit}s/s on 1 {kind} ({hardware.name}) -> {path}")
    return 0


def repeated(source: str, copies: int, target: Path) -> Path:
    """The catalogue `copies` times, product ids suffixed so that none is a duplicate."""
    table = pq.read_table(source)
    parts = [table.set_column(table.schema.get_field_index("product_id"), "product_id",
                              pc.binary_join_element_wise(table.column("product_id").cast(pa.string()), f"c{i}", "-"))
             for i in range(copies)]
    pq.write_table(pa.concat_tables(parts), target)
    return target


def output_sizes(run_dir: str) -> dict[str, float]:
    """Bytes per written product without the generated images, and of its source image; the inline generated
    images' total size and count; the number of variants (generated images, inline or not)."""
    total, rows, image_bytes, images, variants, source_bytes = 0, 0, 0, 0, 0, 0
    for uri in manifest.data_files(run_dir):
        total += storage.size(uri)
        table = pq.read_table(uri, columns=["variants", "image"])
        source_bytes += pc.sum(pc.binary_length(table.column("image"))).as_py() or 0
        rows += table.num_rows
        flat = pc.list_flatten(table.column("variants"))
        variants += len(flat)
        if len(flat):
            lengths = pc.binary_length(pc.struct_field(flat, "image")).to_pylist()
            images += sum(1 for x in lengths if x)
            image_bytes += sum(x for x in lengths if x)
    return {"row_bytes": (total - image_bytes) / rows if rows else 0.0, "image_bytes": float(image_bytes),
            "source_image_bytes": source_bytes / rows if rows else 0.0,
            "images": float(images), "variants": float(variants)}


def slug(hardware: benchjson.Hardware) -> str:
    name = hardware.family if hardware.kind == "gpu" else "cpu-" + hardware.name
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:48]


if __name__ == "__main__":
    sys.exit(main())
