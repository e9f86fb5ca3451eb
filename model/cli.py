"""`moon train` and `moon eval`: the bi-encoder's command line.

Only argument declarations live at module level; torch, Ray and pyarrow are imported inside the handlers, so
that `moon --help` and the Airflow image (no torch) load this module freely.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def add_commands(subparsers) -> None:
    train = subparsers.add_parser(
        "train", help="train the MoE bi-encoder on a run's shards (Ray Train)",
        description="Train the MOON2.0 bi-encoder on the committed shards of a run folder with Ray Train; "
        "one checkpoint per epoch (epoch-NNNN: model.safetensors, config.json) under --output.",
    )
    train.add_argument("--data", required=True, help="run folder (local or s3://) written by `moon run`")
    train.add_argument("--config", default="tiny", help="named config (tiny, base, paper) or a JSON/YAML file")
    train.add_argument("--output", required=True, help="checkpoint directory (local or shared filesystem)")
    train.add_argument("--epochs", type=int, help="override train.epochs")
    train.add_argument("--batch-size", type=int, help="override train.batch_size (triplets per worker)")
    train.add_argument("--workers", type=int, help="override train.num_workers")
    train.add_argument("--gpu", action="store_true", help="train on GPUs (train.use_gpu)")
    train.add_argument("--seed", type=int, help="override train.seed")
    train.add_argument("--query-mode", choices=("joint", "ratio"), help="override data.query_mode")
    train.add_argument("--no-wstar", action="store_true", help="ablation: no W* (equal objective weights)")
    train.add_argument("--no-dsf", action="store_true", help="ablation: no Dynamic Sample Filtering")
    train.add_argument("--no-coaug", action="store_true", help="ablation: raw titles and images only")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override any config key, e.g. --set moe.layers=0 (repeatable)")
    train.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --output")
    train.add_argument("--ray-address", help="Ray cluster address (default: start a local Ray)")
    train.set_defaults(func=run_train)

    evaluate = subparsers.add_parser(
        "eval", help="retrieval recall (R@1/5/10) of checkpoints and baselines on held-out products",
        description="Evaluate on the held-out products of a run folder: t->mm, i->mm, mm->mm, t->i, i->t. "
        "Several models can be compared on the same queries; the first one's data settings define them.",
    )
    evaluate.add_argument("--data", required=True, help="run folder (local or s3://)")
    evaluate.add_argument("--checkpoint", action="append", default=[],
                          help="checkpoint directory or training output directory (repeatable)")
    evaluate.add_argument("--untrained", metavar="CONFIG", help="also evaluate this config with random weights")
    evaluate.add_argument("--bow", action="store_true", help="also evaluate the bag-of-words text baseline")
    evaluate.add_argument("--config", help="config for the query protocol when no checkpoint is given")
    evaluate.add_argument("--query-text", choices=("entities", "keywords"), help="override data.query_text")
    evaluate.add_argument("--limit", type=int, help="evaluate on the first N held-out products (by product id)")
    evaluate.add_argument("--out", help="JSON results file (default: eval.json in the first checkpoint)")
    evaluate.set_defaults(func=run_eval)


def train_config(args: argparse.Namespace):
    from model.config import load_config, parse_override

    overrides = dict(parse_override(item) for item in args.set)
    for flag, key in (("epochs", "train.epochs"), ("batch_size", "train.batch_size"),
                      ("workers", "train.num_workers"), ("seed", "train.seed"), ("query_mode", "data.query_mode")):
        if getattr(args, flag) is not None:
            overrides[key] = getattr(args, flag)
    if args.gpu:
        overrides["train.use_gpu"] = True
    if args.no_wstar:
        overrides["moe.use_wstar"] = False
    if args.no_dsf:
        overrides["loss.dsf"] = False
    if args.no_coaug:
        overrides["data.coaug"] = False
    return load_config(args.config, overrides)


def run_train(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from model.train import train

    cfg = train_config(args)
    result = train(args.data, cfg, args.output, resume=args.resume, ray_address=args.ray_address)
    print(json.dumps({"checkpoint": result["checkpoint"], "epochs": result["epochs"],
                      "metrics": _floats(result["metrics"])}, indent=2, sort_keys=True))
    return 0


def run_eval(args: argparse.Namespace) -> int:
    import dataclasses

    from model.checkpoint import build_model, load_model, resolve_checkpoint
    from model.config import load_config
    from model.evaluate import evaluate_bag_of_words, evaluate_model, format_table, held_out_records

    if not (args.checkpoint or args.untrained or args.bow):
        print("moon eval: give --checkpoint, --untrained CONFIG or --bow", file=sys.stderr)
        return 2
    models = [(str(resolve_checkpoint(c)), *load_model(c)) for c in args.checkpoint]
    protocol_cfg = models[0][2] if models else load_config(args.config or args.untrained or "tiny")
    data = protocol_cfg.data
    if args.query_text:
        data = dataclasses.replace(data, query_text=args.query_text)
    records = held_out_records(args.data, data.eval_fraction, args.limit)
    if len(records) < 10:
        print(f"moon eval: only {len(records)} held-out products; recall@10 would be meaningless", file=sys.stderr)
        return 2

    results: dict[str, dict] = {}
    if args.bow:
        results["bag-of-words"] = evaluate_bag_of_words(dataclasses.replace(protocol_cfg, data=data), records)
    if args.untrained:
        model, cfg = build_model(load_config(args.untrained))
        results[f"untrained:{cfg.name}"] = evaluate_model(model, dataclasses.replace(cfg, data=data), records)
    for path, model, cfg in models:
        results[_label(path, results)] = evaluate_model(model, dataclasses.replace(cfg, data=data), records)

    print(f"{len(records)} held-out products, query text: {data.query_text}")
    print(format_table(results))
    out = Path(args.out) if args.out else (Path(models[0][0]) / "eval.json" if models else Path("eval.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "data": args.data, "held_out_products": len(records), "query_text": data.query_text,
        "eval_fraction": data.eval_fraction, "results": results,
    }, indent=2, sort_keys=True))
    print(f"written {out}")
    return 0


def _label(path: str, taken: dict) -> str:
    parts = Path(path).parts
    label = "/".join(parts[-2:])
    return label if label not in taken else path


def _floats(metrics: dict) -> dict:
    return {k: v for k, v in (metrics or {}).items() if isinstance(v, (int, float))}
