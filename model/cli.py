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

from augment.util import positive_int

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
    train.add_argument("--epochs", type=positive_int, help="override train.epochs")
    train.add_argument("--batch-size", type=positive_int, help="override train.batch_size (triplets per worker)")
    train.add_argument("--workers", type=positive_int, help="override train.num_workers")
    train.add_argument("--gpu", action="store_true", help="train on GPUs (train.use_gpu)")
    train.add_argument("--seed", type=int, help="override train.seed")
    train.add_argument("--query-mode", choices=("joint", "ratio"), help="override data.query_mode")
    train.add_argument("--train-queries", choices=("title", "attributes", "both"),
                       help="override data.train_queries: text queries from titles, from labels, or both")
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
    evaluate.add_argument("--bow", action="store_true", help="also evaluate the TF-IDF bag-of-words baseline")
    evaluate.add_argument("--bow-trained", action="store_true",
                          help="also train (on the training split, titles only) and evaluate the word-embedding "
                          "bag-of-words baseline")
    evaluate.add_argument("--bow-epochs", type=positive_int, default=30, help="epochs of the trained bag-of-words baseline")
    evaluate.add_argument("--config", help="config for the query protocol when no checkpoint is given")
    evaluate.add_argument("--queries", choices=("attributes", "title"),
                          help="override data.eval_queries: shopper-intent queries from labels, or title queries")
    evaluate.add_argument("--query-attributes", help="override data.query_attributes (comma-separated columns)")
    evaluate.add_argument("--query-text", choices=("entities", "keywords"),
                          help="override data.query_text (title queries)")
    evaluate.add_argument("--limit", type=positive_int, help="evaluate on the first N held-out products (by product id)")
    evaluate.add_argument("--out", help="JSON results file (default: eval.json in the first checkpoint)")
    evaluate.set_defaults(func=run_eval)


def train_config(args: argparse.Namespace):
    from model.config import load_config, parse_override

    overrides = dict(parse_override(item) for item in args.set)
    for flag, key in (("epochs", "train.epochs"), ("batch_size", "train.batch_size"),
                      ("workers", "train.num_workers"), ("seed", "train.seed"), ("query_mode", "data.query_mode"),
                      ("train_queries", "data.train_queries")):
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
    from model.evaluate import ProtocolError, evaluate_model, format_table, held_out_records, text_queries

    if not (args.checkpoint or args.untrained or args.bow or args.bow_trained):
        print("moon eval: give --checkpoint, --untrained CONFIG, --bow or --bow-trained", file=sys.stderr)
        return 2
    models = [(str(resolve_checkpoint(c)), *load_model(c)) for c in args.checkpoint]
    protocol_cfg = models[0][2] if models else load_config(args.config or args.untrained or "tiny")
    data = protocol_cfg.data
    for flag, key in (("query_text", "query_text"), ("queries", "eval_queries")):
        if getattr(args, flag):
            data = dataclasses.replace(data, **{key: getattr(args, flag)})
    if args.query_attributes:
        data = dataclasses.replace(data, query_attributes=tuple(
            a.strip() for a in args.query_attributes.split(",") if a.strip()))
    protocol_cfg = dataclasses.replace(protocol_cfg, data=data).validate()
    records = held_out_records(args.data, data.eval_fraction, args.limit, data.query_attributes)
    if len(records) < 10:
        print(f"moon eval: only {len(records)} held-out products; recall@10 would be meaningless", file=sys.stderr)
        return 2

    try:
        text_queries(records, data)  # fail early, before any model runs, when the protocol cannot be built
    except ProtocolError as exc:
        print(f"moon eval: {exc}", file=sys.stderr)
        return 2

    results: dict[str, dict] = {}
    _baselines(args, protocol_cfg, records, results)
    if args.untrained:
        model, cfg = build_model(load_config(args.untrained))
        results[f"untrained:{cfg.name}"] = evaluate_model(model, dataclasses.replace(cfg, data=data), records)
    for path, model, cfg in models:
        results[_label(path, results)] = evaluate_model(model, dataclasses.replace(cfg, data=data), records)

    protocol = (f"attribute queries ({', '.join(data.query_attributes)})" if data.eval_queries == "attributes"
                else f"title queries ({data.query_text})")
    print(f"{len(records)} held-out products; text queries: {protocol}")
    print(format_table(results))
    out = Path(args.out) if args.out else (Path(models[0][0]) / "eval.json" if models else Path("eval.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "data": args.data, "held_out_products": len(records), "eval_queries": data.eval_queries,
        "query_attributes": list(data.query_attributes), "query_text": data.query_text,
        "eval_fraction": data.eval_fraction, "results": results,
    }, indent=2, sort_keys=True))
    print(f"written {out}")
    return 0


def _baselines(args, cfg, records, results: dict) -> None:
    """The TF-IDF and trained word-embedding baselines requested, on the protocol's queries."""
    from model.evaluate import evaluate_bag_of_words, split_records

    if args.bow:
        results["bag-of-words (TF-IDF)"] = evaluate_bag_of_words(cfg, records)
    if args.bow_trained:
        from model.bow import evaluate_word_mean, train_word_mean

        training = split_records(args.data, cfg.data.eval_fraction, held_out=False,
                                 attributes=cfg.data.query_attributes)
        model, tokenizer = train_word_mean(training, cfg, epochs=args.bow_epochs, seed=cfg.train.seed)
        label = f"bag-of-words, trained ({cfg.data.train_queries})"
        results[label] = evaluate_word_mean(model, tokenizer, cfg, records)


def _label(path: str, taken: dict) -> str:
    parts = Path(path).parts
    label = "/".join(parts[-2:])
    return label if label not in taken else path


def _floats(metrics: dict) -> dict:
    return {k: v for k, v in (metrics or {}).items() if isinstance(v, (int, float))}
