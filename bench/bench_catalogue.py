"""Catalogue embeddings: products per second with the images decoded ahead of the model in threads, against one.

    python3 bench/bench_catalogue.py --out /tmp/catalogue.json                # the bundled sample's photos, x30
    python3 bench/bench_catalogue.py --repeat 3 --config base --device cuda   # a GPU, the base model

The bundled sample goes through the pipeline's in-process runner (CPU backends) once; its committed shards are
then read `--repeat` times over (2,400 products at 30: the sample's real photos, of their own sizes) by
`model.catalogue.prepared_batches`, the reader of `moon eval --candidates catalogue`:
- prepare: products and candidate views only (shard reading, image decoding, resizing), at each thread count;
- embed: the same followed by the model's three candidate embeddings (`write_catalogue_embeddings`'s loop,
  untrained weights of `--config`), with one thread and with `model.catalogue.DECODE_THREADS`.
Each figure is the best of `--tries`; ratios are against one thread in the same process. Nothing is asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def sample_run(folder: Path) -> list[str]:
    """The committed shards of the bundled sample run through every stage of the default profile."""
    from augment import config as C
    from augment import plan as P
    from augment import runner
    from augment.core import manifest

    config = C.load()
    sample = Path(__file__).resolve().parents[1] / "augment" / "sample" / "myntra_sample.parquet"
    runner.execute(P.plan_run(str(sample), str(folder), config), config, use_ray=False, progress=False)
    return manifest.committed_data_files(str(folder))


def timed(work, tries: int) -> float:
    best = float("inf")
    for _ in range(tries):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30, help="times the sample's shards are read over")
    parser.add_argument("--threads", default="1,2,4", help="thread counts of the prepare figures")
    parser.add_argument("--config", default="tiny", help="model config of the embed figures")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--tries", type=int, default=2)
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()

    import torch

    from model import catalogue
    from model.checkpoint import build_model
    from model.config import load_config
    from model.evaluate import encode_candidates
    from model.tokenizer import build_tokenizer

    cfg = load_config(args.config)
    with tempfile.TemporaryDirectory() as tmp:
        files = sample_run(Path(tmp) / "run") * args.repeat
        products = sum(len(r) for r, _ in catalogue.prepared_batches(files, cfg, args.batch_size, 1))
        print(f"{products} products ({len(files)} shard reads), batches of {args.batch_size}, "
              f"{os.cpu_count()} CPUs", flush=True)

        def prepare(threads: int):
            return lambda: sum(len(r) for r, _ in catalogue.prepared_batches(files, cfg, args.batch_size, threads))

        figures: dict = {"products": products, "cpus": os.cpu_count(), "machine": platform.processor() or
                         platform.machine(), "config": args.config, "device": args.device, "prepare": {}, "embed": {}}
        counts = [int(t) for t in args.threads.split(",")]
        base = None
        for threads in counts:
            seconds = timed(prepare(threads), args.tries)
            base = base or seconds
            figures["prepare"][threads] = {"products_per_s": round(products / seconds, 1),
                                           "speedup": round(base / seconds, 2)}
            print(f"prepare  {threads} threads: {products / seconds:8.1f} products/s  x{base / seconds:.2f}",
                  flush=True)

        model, built = build_model(cfg, seed=0)
        model = model.to(args.device).eval()
        tokenizer = build_tokenizer(built.text)

        def embed(threads: int):
            @torch.no_grad()
            def work():
                for records, pixels in catalogue.prepared_batches(files, built, args.batch_size, threads):
                    if records:
                        views = encode_candidates(model, tokenizer, [r["title"] for r in records], pixels)
                        views["c_mm"].float().cpu()
            return work

        one = timed(embed(1), args.tries)
        ahead = timed(embed(catalogue.DECODE_THREADS), args.tries)
        figures["embed"] = {"1": round(products / one, 1), str(catalogue.DECODE_THREADS): round(products / ahead, 1),
                            "speedup": round(one / ahead, 2)}
        print(f"embed    1 thread : {products / one:8.1f} products/s\n"
              f"embed    {catalogue.DECODE_THREADS} threads: {products / ahead:8.1f} products/s  x{one / ahead:.2f}")
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")
        print(f"figures: {args.out}")


if __name__ == "__main__":
    main()
