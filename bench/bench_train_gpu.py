"""Training throughput and model FLOPs utilisation of the MoE bi-encoder on one GPU, with synthetic batches.

    python3 bench/bench_train_gpu.py --out result.json                 # `base` config, bf16, on cuda:0
    python3 bench/bench_train_gpu.py --size tiny --steps 3 --out r.json  # a CPU smoke run

One step is the real training step (model/step.py): the ViT on the query image and the candidate's images (raw
+ 2 variants by default, as co-augmented training concatenates them), the language encoder on six views (t, i,
mm queries; mm, i, t candidates), MoonLoss with W*, DSF and the router losses, backward, AdamW. Batches are synthetic (random pixels and token ids of realistic lengths), so no data loading
is measured. Figures:
- samples/s: triplets per second over the timed steps (after warm-up), and tokens/s through the language encoder;
- FLOPs per step: counted by torch.utils.flop_counter over one forward+backward (matmuls, convolutions and
  attention as executed, so MoE routing is counted as it happened); the optimizer step is not counted;
- MFU: FLOPs per step x steps/s / peak dense bf16 (or tf32) FLOP/s of the device (table below; --peak-tflops
  overrides it).
Needs only torch and pyarrow (the `model` package is imported from this checkout, its config with the shard schema's
names); no Ray or transformers.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from model.batch import TrainBatch  # noqa: E402
from model.config import load_config  # noqa: E402
from model.losses import MoonLoss  # noqa: E402
from model.model import MoonModel, count_parameters  # noqa: E402
from model.step import make_optimizer, train_step  # noqa: E402

# Dense peak throughput in TFLOP/s by device-name fragment: (bf16, tf32). Vendor datasheets, without sparsity.
PEAK_TFLOPS = {
    "H200": (989.4, 494.7),
    "H100 NVL": (835.0, 417.5),
    "H100 PCIe": (756.0, 378.0),
    "H100": (989.4, 494.7),  # SXM
    "A100": (312.0, 156.0),
    "L40S": (362.1, 181.0),
}


def synthetic_batch(cfg, batch: int, query_tokens: int, title_tokens: int, candidate_images: int, device) -> TrainBatch:
    g = torch.Generator().manual_seed(0)
    size, vocab = cfg.vision.image_size, cfg.text.vocab_size

    def text(length: int):
        ids = torch.randint(2, vocab, (batch, length), generator=g)
        return ids, torch.ones(batch, length, dtype=torch.bool)

    everyone = torch.arange(batch)
    # A co-augmented candidate: the raw image and its variants in one sequence (data.candidate_views: concat).
    candidate = torch.randn(batch, candidate_images, 3, size, size, generator=g)
    return TrainBatch(
        images={"query": torch.randn(batch, 3, size, size, generator=g), "candidate": candidate},
        image_masks={"candidate": torch.ones(batch, candidate_images, dtype=torch.bool)},
        texts={"query": text(query_tokens), "candidate": text(title_tokens)},
        views={"c_mm": ("candidate", "candidate"), "c_i": ("candidate", None), "c_t": (None, "candidate"),
               "t->mm": (None, "query"), "i->mm": ("query", None), "mm->mm": ("query", "query")},
        query_index={"t->mm": everyone, "i->mm": everyone, "mm->mm": everyone},
        partner=everyone ^ 1,  # pairs (0, 1), (2, 3), ...
        product_ids=[str(i) for i in range(batch)],
    ).to(device)


def count_flops(model, loss_fn, batch, cfg) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    from model.losses import total_loss
    from model.step import compute_losses

    counter = FlopCounterMode(display=False)
    with counter, torch.autocast(batch.partner.device.type, torch.bfloat16, enabled=cfg.train.precision == "bf16"):
        loss = total_loss(compute_losses(model, loss_fn, batch, 0, 100))
        loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def peak_flops(device, precision: str, override: float | None) -> tuple[float | None, str]:
    if override:
        return override * 1e12, "--peak-tflops"
    if device.type != "cuda":
        return None, "unknown (not a CUDA device)"
    name = torch.cuda.get_device_name(device)
    for fragment, (bf16, tf32) in PEAK_TFLOPS.items():
        if fragment in name:
            return (bf16 if precision == "bf16" else tf32) * 1e12, f"{fragment} datasheet"
    return None, f"unknown device {name!r}: pass --peak-tflops"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="base", help="named config or JSON file (default: base)")
    parser.add_argument("--size", choices=("tiny",), help="shortcut for --config tiny (CPU smoke test)")
    parser.add_argument("--batch-size", type=int, help="triplets per step (default: the config's)")
    parser.add_argument("--query-tokens", type=int, default=8, help="tokens of a text query")
    parser.add_argument("--title-tokens", type=int, default=32, help="tokens of a candidate's titles")
    parser.add_argument("--candidate-images", type=int, default=3, help="images per candidate (raw + variants)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--precision", choices=("bf16", "fp32"), help="default: the config's")
    parser.add_argument("--peak-tflops", type=float, help="device peak for MFU, in TFLOP/s")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", required=True, help="JSON result file")
    args = parser.parse_args()

    overrides = {}
    if args.batch_size:
        overrides["train.batch_size"] = args.batch_size
    if args.precision:
        overrides["train.precision"] = args.precision
    cfg = load_config("tiny" if args.size == "tiny" else args.config, overrides)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    title_tokens = min(args.title_tokens, cfg.text.context_length)

    torch.manual_seed(0)
    model = MoonModel(cfg).to(device).train()
    optimizer = make_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    loss_fn = MoonLoss(cfg.loss, cfg.moe)
    batch = synthetic_batch(cfg, cfg.train.batch_size, args.query_tokens, title_tokens, args.candidate_images, device)
    flops = count_flops(model, loss_fn, batch, cfg)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    total_steps = args.warmup + args.steps
    for step in range(args.warmup):
        train_step(model, loss_fn, batch, optimizer, scheduler, step, total_steps, cfg)
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for step in range(args.warmup, total_steps):
        start = time.perf_counter()
        metrics = train_step(model, loss_fn, batch, optimizer, scheduler, step, total_steps, cfg)
        sync()
        times.append(time.perf_counter() - start)

    step_time = statistics.median(times)
    b = cfg.train.batch_size
    visual_tokens = 1 + (cfg.vision.pool_grid or cfg.vision.image_size // cfg.vision.patch_size) ** 2
    cand_visual = args.candidate_images * visual_tokens
    # language-encoder tokens per triplet: q_t, q_i, q_mm, c_mm, c_i, c_t
    lm_tokens = args.query_tokens + visual_tokens + (visual_tokens + args.query_tokens) \
        + (cand_visual + title_tokens) + cand_visual + title_tokens
    peak, peak_source = peak_flops(device, cfg.train.precision, args.peak_tflops)
    achieved = flops / step_time
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "config": cfg.name,
        "parameters": count_parameters(cfg),
        "precision": cfg.train.precision,
        "batch_triplets": b,
        "images_per_step": (1 + args.candidate_images) * b,
        "candidate_images": args.candidate_images,
        "language_tokens_per_step": lm_tokens * b,
        "timed_steps": len(times),
        "step_seconds_median": step_time,
        "step_seconds_mean": statistics.mean(times),
        "samples_per_second": b / step_time,
        "language_tokens_per_second": lm_tokens * b / step_time,
        "flops_per_step": flops,
        "achieved_tflops": achieved / 1e12,
        "peak_tflops": peak / 1e12 if peak else None,
        "peak_source": peak_source,
        "mfu": achieved / peak if peak else None,
        "max_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
        "last_loss": metrics["loss"],
    }
    Path(args.out).write_text(json.dumps(result, indent=2, sort_keys=True))
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
