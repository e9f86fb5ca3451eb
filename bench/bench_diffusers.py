"""Images per second and GPU-seconds per product of the diffusers image-editing backend, on random weights.

    python3 bench/bench_diffusers.py --out /tmp/bench_diffusers.json
    python3 bench/bench_diffusers.py --arch flux-kontext --resolutions 512 --steps 4 8 28 --batch 6
    python3 bench/bench_diffusers.py --tiny --out /tmp/tiny.json          # CPU smoke test

A product's variant set is six edits (subject, two backgrounds, angle, logo, detail), so GPU-seconds per product
= 6 x seconds per image at the measured batch size. Architectures are built from config with random weights and
the published shapes (testkit/diffusers_models.py), so FLOPs equal the real
checkpoints'; the pipelines are called exactly as the stage calls them (pipelines.edit: per-item generators,
fixed prompt padding, the stage's resolution handling).

Time is bounded: per (architecture, resolution) one warm-up call and two calibration calls (2 and 4 steps) give
the fixed cost (text encoders, VAE) and the cost per step; each step count is then timed for real when its
predicted call time fits --cap-s, else reported from the calibration (`"measured": false`). Results are written
to --out after every configuration, so a run cut short keeps what it measured.

Needs torch, transformers, diffusers and Pillow; nothing else from the project's dependencies (no pyarrow, Ray,
OpenCV or spaCy are imported).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testkit import diffusers_models  # noqa: E402
from augment.stages.image_variants import diffusers_pipelines as pipelines  # noqa: E402

EDITS_PER_PRODUCT = 6  # subject + 2 backgrounds + angle + logo + detail
CLASSIC_BYTES_PER_IMAGE_512 = 19262.5  # bench/results/image_variants-classic-*.json: mean JPEG q90 bytes at 512 px
INSTRUCTION = (
    "Edit the product image based on the product description and the given image, retaining only the product "
    "mentioned in the description and making it the primary focus."
)


def product_image(side: int):
    """A plain synthetic product photo (a blue block on white) as a PIL image."""
    import numpy as np
    from PIL import Image

    img = np.full((side, side, 3), 255, np.uint8)
    img[side // 5 : 4 * side // 5, side // 4 : 3 * side // 4] = (40, 80, 200)
    img[side // 3 : side // 3 + side // 16, side // 3 : 2 * side // 3] = (250, 250, 250)
    return Image.fromarray(img)


def timed_call(pipe, arch: str, batch: int, resolution: int, steps: int, args) -> float:
    import torch

    settings = pipelines.CallSettings(resolution, steps, args.guidance, 1.5, args.max_sequence_length)
    images = [product_image(resolution)] * batch
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    pipelines.edit(pipe, diffusers_models.PIPELINE_CLASS[arch], images, [INSTRUCTION] * batch, list(range(batch)), settings)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def bench_arch(arch: str, args, results: list, write) -> None:
    import torch

    t0 = time.perf_counter()
    pipe = diffusers_models.build(arch, "tiny" if args.tiny else "full", args.device, args.dtype)
    pipe.set_progress_bar_config(disable=True)
    build_s = time.perf_counter() - t0
    params = sum(p.numel() for m in pipe.components.values() if isinstance(m, torch.nn.Module) for p in m.parameters())
    print(f"{arch}: built {params / 1e9:.2f}B parameters on {args.device} in {build_s:.1f}s", flush=True)
    for resolution in args.resolutions:
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        timed_call(pipe, arch, args.batch, resolution, 1, args)  # warm-up: kernels, allocator, caches
        t2 = timed_call(pipe, arch, args.batch, resolution, 2, args)
        t4 = timed_call(pipe, arch, args.batch, resolution, 4, args)
        per_step = max(1e-6, (t4 - t2) / 2)
        fixed = max(0.0, t2 - 2 * per_step)
        for steps in args.steps:
            predicted = fixed + steps * per_step
            measured = predicted <= args.cap_s
            if measured:
                times, spent = [], 0.0
                while not times or spent + times[-1] <= args.cap_s:
                    times.append(timed_call(pipe, arch, args.batch, resolution, steps, args))
                    spent += times[-1]
                    if len(times) >= args.max_reps:
                        break
                call_s = min(times)
            else:
                call_s = predicted
            s_per_image = call_s / args.batch
            row = {
                "arch": arch,
                "pipeline": diffusers_models.PIPELINE_CLASS[arch],
                "size": "tiny" if args.tiny else "full",
                "parameters": params,
                "resolution": resolution,
                "steps": steps,
                "batch": args.batch,
                "dtype": args.dtype,
                "max_sequence_length": args.max_sequence_length if arch == "flux-kontext" else None,
                "measured": measured,
                "call_s": call_s,
                "images_per_s": 1.0 / s_per_image,
                "gpu_s_per_product": EDITS_PER_PRODUCT * s_per_image,
                "fixed_s_per_call": fixed,
                "step_s_per_call": per_step,
                "peak_memory_gb": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None,
            }
            results.append(row)
            write()
            print(
                f"  {resolution}px {steps:3d} steps batch {args.batch}: {row['images_per_s']:.2f} images/s, "
                f"{row['gpu_s_per_product']:.2f} GPU-s/product{'' if measured else ' (from calibration)'}",
                flush=True,
            )
    del pipe
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", default=list(diffusers_models.ARCHITECTURES), choices=diffusers_models.ARCHITECTURES)
    parser.add_argument("--resolutions", nargs="+", type=int, default=[512, 1024])
    parser.add_argument("--steps", nargs="+", type=int, default=[4, 8, 28])
    parser.add_argument("--batch", type=int, default=EDITS_PER_PRODUCT, help="images per pipeline call")
    parser.add_argument("--cap-s", type=float, default=20.0, help="time cap for the timed calls of one configuration")
    parser.add_argument("--max-reps", type=int, default=3)
    parser.add_argument("--guidance", type=float, default=2.5)
    parser.add_argument("--max-sequence-length", type=int, default=512, help="FLUX T5 tokens (the stage default)")
    parser.add_argument("--dtype", default=None, help="default bfloat16 on CUDA, float32 with --tiny")
    parser.add_argument("--device", default=None, help="default cuda, cpu with --tiny")
    parser.add_argument("--tiny", action="store_true", help="tiny architectures on the CPU: a smoke test of this script")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--results-dir", type=Path,
                        help="also write one moon.bench/1 file per measured configuration here (read by `moon plan`)")
    parser.add_argument("--from-raw", type=Path, help="only convert an earlier --out file into --results-dir files")
    args = parser.parse_args()
    if args.from_raw:
        raw = json.loads(args.from_raw.read_text())
        for path in write_bench_results(raw["meta"], raw["results"], args.results_dir or Path("bench/results"),
                                        f"python3 bench/bench_diffusers.py (recorded in {args.from_raw.name})"):
            print(path)
        return

    import diffusers
    import torch
    import transformers

    # Prompt-truncation and loading chatter would bury the figures.
    diffusers.utils.logging.set_verbosity_error()
    transformers.utils.logging.set_verbosity_error()
    args.device = args.device or ("cpu" if args.tiny else "cuda")
    args.dtype = args.dtype or ("float32" if args.tiny else "bfloat16")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("no CUDA device: run on a GPU machine, or use --tiny for a CPU smoke test")
    if args.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
    results: list[dict] = []
    meta = {
        "device": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else platform.processor() or "cpu",
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "edits_per_product": EDITS_PER_PRODUCT,
    }

    def write() -> None:
        if args.out:
            args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=2))

    print(f"device: {meta['device']}, torch {meta['torch']}, diffusers {meta['diffusers']}", flush=True)
    for arch in args.arch:
        bench_arch(arch, args, results, write)
    write()
    best = [r for r in results if r["resolution"] == 512 and r["gpu_s_per_product"] < 2.0]
    print("under 2 GPU-s/product at 512 px:", ", ".join(f"{r['arch']} {r['steps']} steps" for r in best) or "none")
    if args.results_dir and not args.tiny:
        write_bench_results(meta, results, args.results_dir, "python3 " + " ".join(sys.argv))


def write_bench_results(meta: dict, rows: list[dict], folder: Path, command: str) -> list[Path]:
    """One `moon plan` figure per measured (architecture, resolution, steps): images of the variant set per GPU."""
    from augment.ops import benchjson

    paths = []
    for row in rows:
        if not row["measured"]:
            continue
        config = {"pipeline": row["pipeline"], "resolution": row["resolution"], "steps": row["steps"],
                  "max_batch": row["batch"], "dtype": row["dtype"]}
        if row.get("max_sequence_length"):
            config["max_sequence_length"] = row["max_sequence_length"]
        name = (f"image_variants-diffusers-{row['arch']}-{row['resolution']}px-{row['steps']}steps"
                + (f"-t5-{row['max_sequence_length']}" if row.get("max_sequence_length") else "")
                + f"-{benchjson.gpu_family(meta['device'])}.json")
        benchjson.write_result(
            folder / name, "image_variants", "diffusers", config,
            benchjson.Hardware(kind="gpu", name=meta["device"], count=1),
            items=row["batch"], seconds=row["call_s"], unit="image", command=command,
            # Random weights make noise, which does not compress like a photo: the size of an encoded image is
            # taken from the classic backend's 512 px JPEG (q90) variants of real product photos.
            output={"bytes_per_image": CLASSIC_BYTES_PER_IMAGE_512 * (row["resolution"] / 512) ** 2},
            notes=f"random weights with the published shapes ({row['parameters'] / 1e9:.2f}B parameters); "
                  f"one pipeline call of {row['batch']} edits; peak memory {row['peak_memory_gb']:.1f} GiB; "
                  f"torch {meta['torch']}, diffusers {meta['diffusers']}",
        )
        paths.append(folder / name)
    return paths


if __name__ == "__main__":
    main()
