"""Seconds to load the GPU stages' models the way a worker loads them, from a local model directory.

    python3 bench/bench_model_load.py --out /tmp/model_load.json                  # on a CUDA machine
    python3 bench/bench_model_load.py --tiny --out /tmp/model_load_tiny.json      # CPU smoke test

What a GPU worker pays once per model before its first batch (the stages' `setup()`): reading the safetensors
files and moving the weights to the device. Each architecture is built from config with random weights and the
published shapes (testkit/diffusers_models.py), saved as a local pipeline directory, then loaded exactly as the
stage loads it (`diffusers_pipelines.load`, or `CLIPModel.from_pretrained(...).to(device)` for the filter):
- warm: the files are in the page cache (a worker that reads a model a neighbour just read, or a second load);
- cold: the files' cached pages are dropped first (posix_fadvise DONTNEED, no root needed), so they come
  from the disk: a fresh node with the model on its local disk or a mounted cache.
Also timed: importing torch and diffusers in a fresh interpreter, part of every job's start.

Needs torch, transformers, diffusers and safetensors; nothing else of the project (no pyarrow, Ray or OpenCV).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testkit import diffusers_models  # noqa: E402
from augment.stages.image_variants import diffusers_pipelines as pipelines  # noqa: E402


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def drop_cache(path: Path) -> None:
    """Evict the page-cache pages of every file under `path` (they are clean after fsync)."""
    for f in path.rglob("*"):
        if f.is_file():
            fd = os.open(f, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def free(device: str) -> None:
    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def time_loads(load, path: Path, device: str) -> dict:
    out = {}
    for kind in ("cold", "warm"):
        if kind == "cold":
            drop_cache(path)
        start = time.perf_counter()
        model = load()
        sync(device)
        out[f"{kind}_s"] = round(time.perf_counter() - start, 2)
        del model
        free(device)
        print(f"  {kind} load {out[f'{kind}_s']} s", flush=True)
    return out


def bench_pipeline(arch: str, size: str, device: str, dtype: str, root: Path) -> dict:
    import torch

    path = root / arch
    start = time.perf_counter()
    pipe = diffusers_models.build(arch, size, device, dtype)
    params = sum(p.numel() for m in pipe.components.values() if isinstance(m, torch.nn.Module) for p in m.parameters())
    pipe.save_pretrained(path)
    del pipe
    free(device)
    print(f"{arch}: {params / 1e9:.2f}B parameters built and saved in {time.perf_counter() - start:.0f} s "
          f"({folder_bytes(path) / 1e9:.1f} GB)", flush=True)
    name = diffusers_models.PIPELINE_CLASS[arch]
    row = {"model": arch, "loader": f"diffusers_pipelines.load({name})", "parameters": params,
           "bytes": folder_bytes(path), "dtype": dtype}
    row |= time_loads(lambda: pipelines.load(name, str(path), dtype, device, "none"), path, device)
    shutil.rmtree(path, ignore_errors=True)
    return row


def bench_clip(size: str, device: str, root: Path) -> dict:
    import torch
    from transformers import CLIPModel

    path = root / "clip"
    diffusers_models.save_clip(path, size)
    print(f"clip ({size}) saved ({folder_bytes(path) / 1e9:.2f} GB)", flush=True)

    def load():
        return CLIPModel.from_pretrained(path, dtype=torch.float32, use_safetensors=True,
                                         local_files_only=True).to(device).eval()

    row = {"model": "clip-vit-large-patch14" if size == "full" else "clip-tiny", "loader": "CLIPModel.from_pretrained",
           "bytes": folder_bytes(path), "dtype": "float32"}
    row |= time_loads(load, path, device)
    shutil.rmtree(path, ignore_errors=True)
    return row


def import_seconds() -> float:
    """`import torch, diffusers, transformers` in a fresh interpreter (a job's driver and each new worker)."""
    code = "import time; t = time.perf_counter(); import torch, diffusers, transformers; print(time.perf_counter() - t)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return round(float(done.stdout.strip().splitlines()[-1]), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", default=["flux-kontext"], choices=diffusers_models.ARCHITECTURES)
    parser.add_argument("--tiny", action="store_true", help="tiny architectures on the CPU: a smoke test")
    parser.add_argument("--dir", type=Path, help="where to save the model directories (default: a temp dir)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import diffusers
    import torch
    import transformers

    diffusers.utils.logging.set_verbosity_error()
    transformers.utils.logging.set_verbosity_error()
    device = "cpu" if args.tiny else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("no CUDA device: run on a GPU machine, or use --tiny")
    size, dtype = ("tiny", "float32") if args.tiny else ("full", "bfloat16")
    meta = {"device": torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or "cpu",
            "torch": torch.__version__, "diffusers": diffusers.__version__, "transformers": transformers.__version__,
            "import_s": import_seconds()}
    print(f"device {meta['device']}; import torch+diffusers+transformers {meta['import_s']} s", flush=True)
    results = []
    root = Path(tempfile.mkdtemp(prefix="model-load-", dir=args.dir))

    def write() -> None:
        if args.out:
            args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=2))

    try:
        for arch in args.arch:
            results.append(bench_pipeline(arch, size, device, dtype, root))
            write()
        results.append(bench_clip(size, device, root))
        write()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for r in results:
        print(f"{r['model']}: {r['bytes'] / 1e9:.2f} GB, cold {r['cold_s']} s ({r['bytes'] / 1e9 / r['cold_s']:.2f} GB/s), "
              f"warm {r['warm_s']} s")


if __name__ == "__main__":
    main()
