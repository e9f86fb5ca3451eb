"""`moon sweep`: retrieval recall over alpha, beta and tau, trained with several seeds (model/sweep.py).

Only argument declarations at module level; torch and Ray are imported by the handler.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from augment.core.util import positive_int


def add_commands(subparsers) -> None:
    sweep = subparsers.add_parser(
        "sweep", help="sensitivity of recall to alpha, beta and tau: train and evaluate each setting over seeds",
        description="Train the bi-encoder for each setting of the load-balancing weight alpha, the sparsity "
        "weight beta and the temperature tau, with every seed, one run after the other, and evaluate each on the "
        "held-out products. Prints R@1 / R@10 per setting and seed; one line per run in OUTPUT/sweep.jsonl "
        "(rerun the same command to resume an interrupted sweep) and the table in OUTPUT/sweep.json.",
    )
    sweep.add_argument("--data", required=True, help="run folder (local or s3://) written by `moon run`")
    sweep.add_argument("--output", required=True, help="directory for the runs' checkpoints and the results")
    sweep.add_argument("--config", default="tiny", help="named config or JSON/YAML file every run starts from")
    sweep.add_argument("--mode", choices=("oat", "grid"), default="oat",
                       help="oat: one factor at a time around the config (default); grid: every combination")
    sweep.add_argument("--alpha", type=_floats, help="alpha values (default 0.1,1,10)")
    sweep.add_argument("--beta", type=_floats, help="beta values (default 0.1,1,10)")
    sweep.add_argument("--tau", type=_floats, help="tau values (default 0.05,0.1,0.2)")
    sweep.add_argument("--seeds", type=_ints, default=[0, 1], help="training seeds (default 0,1)")
    sweep.add_argument("--epochs", type=positive_int, help="override train.epochs for every run")
    sweep.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override any config key for every run (repeatable)")
    sweep.add_argument("--ray-address", help="Ray cluster address (default: start a local Ray)")
    sweep.add_argument("--dry-run", action="store_true", help="list the runs and stop")
    sweep.set_defaults(func=run_sweep_command)


def _floats(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive numbers, got {text!r}")
    return list(dict.fromkeys(values))  # a value given twice is one setting, trained once


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one seed")
    return list(dict.fromkeys(values))  # a seed given twice is one run


def run_sweep_command(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from model.checkpoint import local_folder
    from model.config import ConfigError, load_config, parse_override
    from model.sweep import format_summary, run_name, run_sweep, settings, summarise

    try:
        overrides = dict(parse_override(item) for item in args.set)
        if args.epochs:
            overrides["train.epochs"] = args.epochs
        cfg = load_config(args.config, overrides)
        values = {k: getattr(args, k) for k in ("alpha", "beta", "tau") if getattr(args, k)}
        chosen = settings(cfg, args.mode, values)
        local_folder(args.output, "--output")
    except ConfigError as exc:
        print(f"moon sweep: {exc}", file=sys.stderr)
        return 2
    runs = [run_name(s, seed) for s in chosen for seed in args.seeds]
    print(f"{len(chosen)} settings x {len(args.seeds)} seeds = {len(runs)} runs of {cfg.train.epochs} epochs "
          f"({cfg.name}) -> {args.output}")
    if args.dry_run:
        print("\n".join(runs))
        return 0
    from augment.core.raylog import quiet_ray
    from model.cli import _shutdown_ray

    with quiet_ray(getattr(args, "verbose", False),  # Ray's console noise, filtered as `moon train` does
                   resume="the finished runs are kept: run the same command again to go on"):
        try:
            rows = run_sweep(args.data, args.config, overrides, args.output, args.seeds, chosen, args.ray_address)
        finally:
            _shutdown_ray()
    summary = summarise(rows)
    print(format_summary(summary))
    out = Path(args.output) / "sweep.json"
    out.write_text(json.dumps({"data": args.data, "config": cfg.name, "epochs": cfg.train.epochs,
                               "mode": args.mode, "seeds": args.seeds, "summary": summary}, indent=2))
    print(f"written {out}")
    return 0
