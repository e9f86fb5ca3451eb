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

from augment.core.util import positive_int

# The named configs (model.config.named_configs, not imported here: it loads pyarrow), for the help text.
NAMED_CONFIGS = ", ".join(sorted(p.stem for p in (Path(__file__).parent / "configs").glob("*.json")))

log = logging.getLogger(__name__)


def add_commands(subparsers) -> None:
    train = subparsers.add_parser(
        "train", help="train the MoE bi-encoder on a run's shards (Ray Train)",
        description="Train the MOON2.0 bi-encoder on the committed shards of a run folder with Ray Train; "
        "under --output: the last train.keep_last epoch checkpoints (epoch-NNNN: model.safetensors, config.json, "
        "train_state.pt), best/ (the weights that scored best on held-out products by train.best_metric) and "
        "metrics.jsonl. Prints one line per epoch (a progress bar on a terminal); -v shows every step and Ray's "
        "own messages.",
    )
    train.add_argument("--data", required=True, help="run folder (local or s3://) written by `moon run`")
    train.add_argument("--config", default="tiny", help=f"named config ({NAMED_CONFIGS}) or a JSON/YAML file")
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
    train.add_argument("--no-coaug", action="store_true", help="ablation: raw titles and images only (what the tiny config trains on already)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override any config key, e.g. --set moe.layers=0 (repeatable)")
    train.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --output")
    train.add_argument("--ray-address", help="Ray cluster address (default: start a local Ray)")
    train.set_defaults(func=run_train)

    evaluate = subparsers.add_parser(
        "eval", help="retrieval recall (R@1/5/10) of checkpoints and baselines on held-out products",
        description="Evaluate on the held-out products of a run folder (or all of them, --split all): t->mm, "
        "i->mm, mm->mm, t->i, i->t. Several models can be compared on the same queries; the data settings of "
        "--config, else of the first checkpoint, with --set applied, define them.",
    )
    evaluate.add_argument("--data", required=True, help="run folder (local or s3://)")
    evaluate.add_argument("--split", choices=("held-out", "all", "train"), default="held-out",
                          help="products to evaluate: the held-out split (data.eval_fraction, default), every "
                          "product of the run folder (a model trained on another catalogue), or the training split")
    evaluate.add_argument("--checkpoint", action="append", default=[],
                          help="checkpoint directory or training output directory (repeatable)")
    evaluate.add_argument("--untrained", metavar="CONFIG", help="also evaluate this config with random weights")
    evaluate.add_argument("--bow", action="store_true", help="also evaluate the TF-IDF bag-of-words baseline")
    evaluate.add_argument("--bow-trained", action="store_true",
                          help="also train (on the training split, titles only) and evaluate the word-embedding "
                          "bag-of-words baseline")
    evaluate.add_argument("--bow-epochs", type=positive_int, default=30, help="epochs of the trained bag-of-words baseline")
    evaluate.add_argument("--bow-data", metavar="RUN",
                          help="run folder the trained bag-of-words baseline learns from: its training split, "
                          "less any evaluated product (default: --data)")
    evaluate.add_argument("--config", help="config of the query protocol and baselines (default: the first "
                          "checkpoint's, else tiny)")
    evaluate.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                          help="override a key of that config, e.g. --set data.eval_fraction=0.3 (repeatable)")
    evaluate.add_argument("--queries", choices=("attributes", "title"),
                          help="override data.eval_queries: shopper-intent queries from labels, or title queries")
    evaluate.add_argument("--query-attributes", help="override data.query_attributes (comma-separated columns)")
    evaluate.add_argument("--query-text", choices=("entities", "keywords"),
                          help="override data.query_text (title queries)")
    evaluate.add_argument("--limit", type=positive_int,
                          help="evaluate on the first N products of the split (by product id)")
    evaluate.add_argument("--out", help="JSON results file (default: eval.json in the first checkpoint)")
    evaluate.add_argument("--candidates", choices=("held-out", "catalogue"), default="held-out",
                          help="catalogue: also rank every product of the run (embeddings stored as Parquet "
                          "beside each checkpoint), not only the held-out ones")
    evaluate.add_argument("--search", choices=("exact", "ivf-flat", "ivf-sq8", "hnsw"), default="exact",
                          help="catalogue search: exact in chunks (default) or a faiss index")
    evaluate.add_argument("--gallery", action="store_true",
                          help="write retrieval galleries (HTML: ranks 1, 10 and 50 of sample queries per direction, "
                          "the first two checkpoints side by side) beside the JSON results")
    evaluate.add_argument("--gallery-queries", type=positive_int, default=12,
                          help="queries per direction in the gallery (default 12)")
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
    import functools
    import os

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from augment.core.raylog import quiet_ray
    from model.progress import ProgressPrinter
    from model.train import train

    cfg = train_config(args)
    verbose = getattr(args, "verbose", False)
    with quiet_ray(verbose, resume="the epochs checkpointed so far are kept: run the same command with --resume "
                                   "to go on from the last one") as console:
        try:
            result = train(args.data, cfg, args.output, resume=args.resume, ray_address=args.ray_address,
                           verbose=verbose, progress=functools.partial(ProgressPrinter, console.terminal if console
                                                                       else sys.stderr))
        finally:
            _shutdown_ray()  # inside the filter: Ray's exit messages are filtered too
    print(json.dumps({"checkpoint": result["checkpoint"], "best": result["best"], "epochs": result["epochs"],
                      "metrics": _floats(result["metrics"]), "skipped": result["skipped"]}, indent=2, sort_keys=True))
    return 0


def _shutdown_ray() -> None:
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


SPLITS = {"held-out": True, "train": False, "all": None}  # --split -> split_records(held_out=...)


def eval_config(args: argparse.Namespace, checkpoint_cfg=None):
    """The protocol config: --config, else the first checkpoint's, else tiny; --set and the flags applied."""
    from model.config import load_config, with_overrides

    overrides = eval_overrides(args)
    if args.config or checkpoint_cfg is None:
        return load_config(args.config or args.untrained or "tiny", overrides)
    return with_overrides(checkpoint_cfg, overrides)


def eval_overrides(args: argparse.Namespace) -> dict:
    """--set and the protocol flags as dotted-key overrides."""
    from model.config import parse_override

    overrides = dict(parse_override(item) for item in args.set)
    if args.query_text:
        overrides["data.query_text"] = args.query_text
    if args.queries:
        overrides["data.eval_queries"] = args.queries
    if args.query_attributes:
        overrides["data.query_attributes"] = [a.strip() for a in args.query_attributes.split(",") if a.strip()]
    return overrides


def _trained_on_held_out(models: list, eval_fraction: float) -> str | None:
    """Why the held-out products at `eval_fraction` would hold products a checkpoint trained on, or None. The
    held-out split of a larger fraction holds every product of a smaller one and more (is_held_out): a
    checkpoint trained with a smaller data.eval_fraction trained on the difference."""
    for path, _, cfg in models:
        if eval_fraction > cfg.data.eval_fraction:
            return (f"data.eval_fraction {eval_fraction:g} would score {path} on products it trained on: it held "
                    f"out {cfg.data.eval_fraction:g} of its data and trained on the rest; evaluate at "
                    f"{cfg.data.eval_fraction:g} or less, or with --split all on a run it never saw")
    return None


def run_eval(args: argparse.Namespace) -> int:
    import dataclasses

    from model.checkpoint import build_model, load_model, resolve_checkpoint
    from model.config import load_config
    from model.evaluate import ProtocolError, evaluate_model, format_table, split_records, text_queries

    if not (args.checkpoint or args.untrained or args.bow or args.bow_trained):
        print("moon eval: give --checkpoint, --untrained CONFIG, --bow or --bow-trained", file=sys.stderr)
        return 2
    if args.bow_data and not args.bow_trained:
        print("moon eval: --bow-data names the training data of --bow-trained; add --bow-trained", file=sys.stderr)
        return 2
    if args.search != "exact" and args.candidates != "catalogue":
        print(f"moon eval: --search {args.search} searches the catalogue's embeddings; add --candidates catalogue "
              "(the held-out products are ranked exactly)", file=sys.stderr)
        return 2
    if args.out and (Path(args.out).is_dir() or Path(args.out).parent.is_file()):
        print(f"moon eval: --out {args.out} must be a file path (the results JSON), not a folder or inside a file",
              file=sys.stderr)
        return 2
    models = [(str(resolve_checkpoint(c)), *load_model(c)) for c in args.checkpoint]
    protocol_cfg = eval_config(args, models[0][2] if models else None)
    data = protocol_cfg.data
    records = split_records(args.data, data.eval_fraction, SPLITS[args.split], args.limit, data.query_attributes)
    data = dataclasses.replace(data, query_attributes=records.attributes)  # the label columns the shards have
    protocol_cfg = dataclasses.replace(protocol_cfg, data=data)
    split = {"held-out": "held-out", "all": "", "train": "training"}[args.split]
    leak = _trained_on_held_out(models, data.eval_fraction) if args.split == "held-out" else None
    if leak:
        print(f"moon eval: {leak}", file=sys.stderr)
        return 2
    if len(records) < 10:
        print(f"moon eval: {_too_few(args, records, split)}", file=sys.stderr)
        return 2

    text_queries(records, data)  # fail early, before any model runs, when the protocol cannot be built

    results: dict[str, dict] = {}
    baseline = _baselines(args, protocol_cfg, records, results)
    if args.untrained:  # with --set: `--untrained tiny --set moe.layers=0` is another model
        model, cfg = build_model(load_config(args.untrained, eval_overrides(args)))
        results[f"untrained:{cfg.name}"] = evaluate_model(model, dataclasses.replace(cfg, data=data), records)
    for path, model, cfg in models:
        results[_label(path, results)] = evaluate_model(model, dataclasses.replace(cfg, data=data), records)
    if args.candidates == "catalogue" and not models:
        print("moon eval: --candidates catalogue ranks checkpoints' embeddings of the whole catalogue; give "
              "--checkpoint (the baselines rank the evaluated products only)", file=sys.stderr)
    if args.candidates == "catalogue" and models:
        from model.catalogue import evaluate_catalogue_models

        evaluate_catalogue_models(args.data, models, data, records, results, args.search)

    protocol = (f"attribute queries ({', '.join(data.query_attributes)})" if data.eval_queries == "attributes"
                else f"title queries ({data.query_text})")
    print(f"{len(records)} {split + ' ' if split else ''}products of {args.data}; text queries: {protocol}")
    if baseline:
        print(f"trained bag-of-words baseline: {baseline['products']} training products of {baseline['data']}")
    print(format_table(results))
    out = Path(args.out) if args.out else (Path(models[0][0]) / "eval.json" if models else Path("eval.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "data": args.data, "split": args.split, "products": len(records), "held_out_products": len(records),
        "eval_queries": data.eval_queries, "query_attributes": list(data.query_attributes),
        "query_text": data.query_text, "eval_fraction": data.eval_fraction, "results": results,
        **({"bow_trained": baseline} if baseline else {}),
    }, indent=2, sort_keys=True))
    print(f"written {out}")
    _gallery_and_run_record(args, models, data, records, results, out)
    return 0


def _too_few(args, records, split: str) -> str:
    """Why fewer than 10 products are evaluated, in one line: --limit, products skipped for want of a usable
    image, or a split that small."""
    count, skipped = len(records), records.skipped
    meaningless = "recall@10 would be meaningless"
    if args.limit is not None and count == args.limit:
        return f"--limit {args.limit} evaluates {count} products: {meaningless}; raise --limit to 10 or more"
    what = f"only {count} {split or 'evaluated'} products in {args.data}"
    if count + skipped.products >= 10:  # the split is large enough: the images are why
        return f"{what} have a usable image ({skipped.describe(examples=False)}); {meaningless}"
    hint = "; --split all evaluates every product" if args.split != "all" else ""
    return what + (f" ({skipped.describe(examples=False)})" if skipped.products else "") + f"; {meaningless}{hint}"


def _gallery_and_run_record(args, models, data, records, results, out: Path) -> None:
    """The retrieval gallery beside the results (--gallery), and the run folder's record of this evaluation
    (the run report links the latest one)."""
    from model.evaluations import record_evaluation

    gallery = None
    if args.gallery and not models:
        print("moon eval: --gallery shows checkpoints' rankings; give --checkpoint", file=sys.stderr)
    if args.gallery and models:
        from model.gallery import write_gallery

        gallery = write_gallery(out, models[:2], data, records, args.gallery_queries)
        print(f"written {gallery}")
    record_evaluation(args.data, out, [path for path, _, _ in models], results, gallery, split=args.split,
                      products=len(records))


def _baselines(args, cfg, records, results: dict) -> dict | None:
    """The TF-IDF and trained word-embedding baselines requested, on the protocol's queries. Returns where the
    trained baseline learnt from: {"data": run folder, "products": count}."""
    from model.evaluate import ProtocolError, evaluate_bag_of_words, split_records

    if args.bow:
        results["bag-of-words (TF-IDF)"] = evaluate_bag_of_words(cfg, records)
    if not args.bow_trained:
        return None
    from model.bow import evaluate_word_mean, train_word_mean

    source = args.bow_data or args.data
    evaluated = {r["product_id"] for r in records}
    training = [r for r in split_records(source, cfg.data.eval_fraction, held_out=False,
                                         attributes=cfg.data.query_attributes)
                if r["product_id"] not in evaluated]
    if len(training) < 2:
        why = ("every product of it is evaluated (--split all): name another run folder with --bow-data RUN"
               if args.split == "all" and source == args.data
               else f"its training split (data.eval_fraction {cfg.data.eval_fraction}) less the evaluated products "
                    "is empty")
        raise ProtocolError(
            f"the trained bag-of-words baseline has {len(training)} training products in {source}: {why}")
    model, tokenizer = train_word_mean(training, cfg, epochs=args.bow_epochs, seed=cfg.train.seed)
    results[f"bag-of-words, trained ({cfg.data.train_queries})"] = evaluate_word_mean(model, tokenizer, cfg, records)
    return {"data": source, "products": len(training)}


def _label(path: str, taken: dict) -> str:
    parts = Path(path).parts
    label = "/".join(parts[-2:])
    return label if label not in taken else path


def _floats(metrics: dict) -> dict:
    return {k: v for k, v in (metrics or {}).items() if isinstance(v, (int, float))}
