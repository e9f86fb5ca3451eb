"""Does co-augmentation make the bi-encoder better on products it has not seen? Cross-validated ablation.

    python bench/coaug_ablation.py --data runs/myntra --settings raw all-concat --seeds 0 1 --folds 3 --out coaug.json
    python bench/coaug_ablation.py --out bench/results/raw/coaug-ablation.json --summary-only   # the recorded tables

For every setting (a named set of config overrides, below, or `--setting NAME:key=value,key=value`), seed and
fold: the products of the run folder are split into `--folds` folds by a hash of product_id
(`model.data.fold_of`); the model trains on the other folds with the setting's data recipe and is evaluated on
the held-out fold exactly as `moon eval` evaluates (model.evaluate.evaluate_model: shopper-intent text queries,
re-framed raw photos as image queries, raw candidates). Training runs in this process with the code `moon train`
runs on each worker (model.data.collate, model.step.train_step, the same optimizer, schedule, pools of
`data.negative_pool` products and same-category pairs), without Ray, so that a screen of many trainings fits
on a small machine.

Printed per setting and direction: R@1 and R@10, mean and standard deviation over seeds x folds, and the paired
difference to the `raw` setting (same seed and fold: the split and the initial weights are shared, so the
difference has less spread than either figure). Every finished training is appended to the JSON file at once;
rerunning the same command skips what the file already holds, so a long ablation can be stopped and resumed.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from model.checkpoint import build_model  # noqa: E402
from model.config import MoonConfig, load_config, parse_override  # noqa: E402
from model.data import fold_of  # noqa: E402
from model.evaluate import DIRECTIONS, evaluate_model, split_records  # noqa: E402
from model.losses import MoonLoss  # noqa: E402
from model.step import lr_factor, make_optimizer, train_step  # noqa: E402
from model.tokenizer import build_tokenizer  # noqa: E402
from model.train import _cycle, epoch_batches  # noqa: E402

log = logging.getLogger("coaug_ablation")

KINDS = ("subject", "background", "angle", "logo", "detail")
NO_TITLE = {"data.coaug": True, "data.enriched_titles": False}
# Named settings: overrides on top of the config (and --set). Kind settings use the sample layout (one image).
SETTINGS: dict[str, dict[str, Any]] = {
    "default": {},  # the config as it is
    "raw": {"data.coaug": False},
    "all-concat": {"data.coaug": True, "data.candidate_views": "concat", "data.enriched_titles": True,
                   "data.variant_kinds": list(KINDS)},
    "all-sample": {"data.coaug": True, "data.candidate_views": "sample", "data.enriched_titles": True,
                   "data.variant_kinds": list(KINDS)},
    "title": {"data.coaug": True, "data.candidate_views": "sample", "data.enriched_titles": True,
              "data.variant_kinds": []},
    **{kind: {**NO_TITLE, "data.candidate_views": "sample", "data.variant_kinds": [kind]} for kind in KINDS},
    # Variants in the image-only candidate (the intra-product objective) only, c_mm keeping the raw image.
    "intra": {"data.coaug": True, "data.candidate_views": "sample", "data.enriched_titles": False,
              "data.variant_kinds": list(KINDS), "data.variant_target": "image"},
    # Variants as image queries only (30 %), candidates raw.
    "query-variants": {"data.coaug": True, "data.candidate_views": "sample", "data.original_view_prob": 1.0,
                       "data.enriched_titles": False, "data.variant_kinds": ["subject", "background", "angle"],
                       "data.query_variant_prob": 0.3},
    **{f"max-variants-{n}": {"data.coaug": True, "data.candidate_views": "concat", "data.enriched_titles": True,
                             "data.variant_kinds": list(KINDS), "data.max_variants": n} for n in (1, 4)},
}
METRICS = ("R@1", "R@5", "R@10", "nDCG@10")
DEFAULT_SETTINGS = ["raw", "all-concat"]


# ---------------------------------------------------------------------------------------------------------
# Training and evaluating one (setting, seed, fold)
# ---------------------------------------------------------------------------------------------------------
def load_records(run: str, cfg: MoonConfig) -> list[dict[str, Any]]:
    """Every product record of the run's committed shards, sorted by product id."""
    return split_records(run, cfg.data.eval_fraction, held_out=None, attributes=cfg.data.query_attributes)


def pools(records: list[dict[str, Any]], size: int, seed: int) -> Iterator[list[dict[str, Any]]]:
    """The training products in shuffled pools of `size` (moon train reads them from a shuffled Ray dataset)."""
    order = list(records)
    random.Random(seed).shuffle(order)
    for start in range(0, len(order), size):
        yield order[start : start + size]


def train_in_process(records: list[dict[str, Any]], cfg: MoonConfig, progress: str = "") -> torch.nn.Module:
    """Train on `records` as one `moon train` worker does; returns the model after the last epoch."""
    seed = cfg.train.seed
    model, cfg = build_model(cfg, seed=seed)
    per_step = 2 * (cfg.train.batch_size // 2)
    steps_per_epoch = len(records) // per_step
    if steps_per_epoch < 1:
        raise ValueError(f"{len(records)} training products, fewer than one step's {per_step}")
    total_steps = steps_per_epoch * cfg.train.epochs
    optimizer = make_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total_steps, cfg.train.warmup))
    loss_fn = MoonLoss(cfg.loss, cfg.moe)
    tokenizer = build_tokenizer(cfg.text)
    pool = max(cfg.data.negative_pool, cfg.train.batch_size)
    step = 0
    for epoch in range(cfg.train.epochs):
        model.train()
        rng = random.Random(f"{seed}:{epoch}:0")
        started, losses = time.time(), []
        batches = _cycle(lambda: epoch_batches(pools(records, pool, seed + epoch), cfg, tokenizer, rng))
        for _ in range(steps_per_epoch):
            metrics = train_step(model, loss_fn, next(batches), optimizer, scheduler, step, total_steps, cfg)
            losses.append(metrics["loss"])
            step += 1
        log.info("%s epoch %d/%d: loss %.4f, %.1fs", progress, epoch + 1, cfg.train.epochs,
                 sum(losses) / len(losses), time.time() - started)
    return model


def run_one(records: list[dict[str, Any]], cfg: MoonConfig, folds: int, fold: int, progress: str = "") -> dict:
    """Train on every fold but `fold`, evaluate on `fold`: {direction: metrics}, sizes and seconds."""
    train = [r for r in records if fold_of(r["product_id"], folds) != fold]
    held_out = [r for r in records if fold_of(r["product_id"], folds) == fold]
    started = time.time()
    model = train_in_process(train, cfg, progress)
    trained = time.time()
    results = evaluate_model(model, cfg, held_out)
    return {"results": results, "train_products": len(train), "held_out_products": len(held_out),
            "train_seconds": round(trained - started, 1), "eval_seconds": round(time.time() - trained, 1)}


# ---------------------------------------------------------------------------------------------------------
# Settings, the results file, the table
# ---------------------------------------------------------------------------------------------------------
def parse_setting(text: str) -> tuple[str, dict[str, Any]]:
    """`NAME:key=value,key=value` -> (NAME, overrides); `NAME+BASE:...` starts from the named setting BASE; a
    bare known NAME -> its SETTINGS entry. Values are
    JSON where they parse (lists: `data.variant_kinds=["subject","angle"]`); commas inside brackets are kept."""
    if ":" not in text:
        if text not in SETTINGS:
            raise SystemExit(f"unknown setting {text!r}: known {', '.join(SETTINGS)}, or NAME:key=value,...")
        return text, dict(SETTINGS[text])
    name, spec = text.split(":", 1)
    base = {}
    if "+" in name:
        name, base_name = name.split("+", 1)
        if base_name not in SETTINGS:
            raise SystemExit(f"unknown base setting {base_name!r}: known {', '.join(SETTINGS)}")
        base = dict(SETTINGS[base_name])
    parts, depth, current = [], 0, ""
    for char in spec:
        depth += char in "[{"
        depth -= char in "]}"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if current:
        parts.append(current)
    return name, {**base, **dict(parse_override(p) for p in parts)}


def run_key(setting: str, seed: int, fold: int) -> str:
    return f"{setting}|seed={seed}|fold={fold}"


def same_config(stored: dict[str, Any], current: dict[str, Any]) -> bool:
    """Whether a recorded run's config is the current one; keys the record lacks (config fields added since)
    are not compared."""
    for key, value in stored.items():
        if isinstance(value, dict) and isinstance(current.get(key), dict):
            if not same_config(value, current[key]):
                return False
        elif current.get(key, value) != value:
            return False
    return True


def load_results(path: Path) -> dict[str, Any]:
    if path.exists():
        return json.loads(path.read_text())
    return {"runs": {}}


def summarise(runs: dict[str, Any], settings: list[str], baseline: str = "raw") -> str:
    """Per setting and direction: R@1 / R@10 mean +- sd over seeds x folds, and the paired difference to
    `baseline` (mean +- sd of the per-(seed, fold) differences), percent."""
    by_setting: dict[str, dict[tuple[int, int], dict]] = {}
    for run in runs.values():
        by_setting.setdefault(run["setting"], {})[(run["seed"], run["fold"])] = run["results"]
    lines = []
    header = f"{'setting':<22} {'n':>2} " + " ".join(f"{d:>27}" for d in DIRECTIONS)
    lines += ["R@1 / R@10, mean +- sd over seeds x folds (percent)", header]
    for setting in settings:
        cells = by_setting.get(setting, {})
        if not cells:
            continue
        row = f"{setting:<22} {len(cells):>2} "
        for direction in DIRECTIONS:
            parts = []
            for metric in ("R@1", "R@10"):
                values = [100 * r[direction][metric] for r in cells.values()]
                parts.append(f"{statistics.mean(values):5.1f}±{_sd(values):4.1f}")
            row += f"{' / '.join(parts):>27} "
        lines.append(row)
    base = by_setting.get(baseline, {})
    if base:
        lines += ["", f"paired difference to {baseline}: R@1 / R@10, mean +- sd (percentage points)", header]
        for setting in settings:
            cells = by_setting.get(setting, {})
            common = sorted(set(cells) & set(base))
            if setting == baseline or not common:
                continue
            row = f"{setting:<22} {len(common):>2} "
            for direction in DIRECTIONS:
                parts = []
                for metric in ("R@1", "R@10"):
                    diffs = [100 * (cells[k][direction][metric] - base[k][direction][metric]) for k in common]
                    parts.append(f"{statistics.mean(diffs):+5.1f}±{_sd(diffs):4.1f}")
                row += f"{' / '.join(parts):>27} "
            lines.append(row)
    return "\n".join(lines)


def _sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="run folder written by `moon run` (with label columns); not needed with "
                                       "--summary-only")
    parser.add_argument("--config", default="tiny", help="named config or file (default tiny)")
    parser.add_argument("--settings", nargs="+", default=DEFAULT_SETTINGS,
                        help=f"named settings ({', '.join(SETTINGS)}) or NAME:key=value,... "
                        "(NAME+BASE:... starts from the named setting BASE)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--folds", type=int, default=3, help="folds by product-id hash (each held out once)")
    parser.add_argument("--only-folds", nargs="+", type=int, help="run these folds only (a screen)")
    parser.add_argument("--epochs", type=int, help="override train.epochs")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override applied to every setting (before the setting's own)")
    parser.add_argument("--out", required=True, help="results JSON (appended to; finished runs are skipped)")
    parser.add_argument("--summary-only", action="store_true",
                        help="print the table of --out (the recorded settings, or those --settings names) and exit")
    args = parser.parse_args(argv)
    if not args.data and not args.summary_only:
        parser.error("--data is required (the run folder to train and evaluate on)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))

    out = Path(args.out)
    state = load_results(out)
    if args.summary_only:  # --settings names recorded settings here (all of them by default)
        recorded = sorted({r["setting"] for r in state["runs"].values()})
        names = [s.split(":")[0].split("+")[0] for s in args.settings] if args.settings != DEFAULT_SETTINGS \
            else recorded
        print(summarise(state["runs"], names, "raw" if "raw" in recorded else names[0]))
        return 0
    settings = [parse_setting(s) for s in args.settings]
    names = [name for name, _ in settings]
    baseline = "raw" if "raw" in names or any(r["setting"] == "raw" for r in state["runs"].values()) else names[0]
    if args.folds < 2:
        raise SystemExit("--folds must be at least 2")
    common = dict(parse_override(item) for item in args.set)
    if args.epochs:
        common["train.epochs"] = args.epochs
    base_cfg = load_config(args.config, common)
    records = load_records(args.data, base_cfg)
    log.info("%d products in %s", len(records), args.data)
    folds = args.only_folds or list(range(args.folds))
    for name, overrides in settings:
        for seed in args.seeds:
            for fold in folds:
                key = run_key(name, seed, fold)
                cfg = load_config(args.config, {**common, **overrides, "train.seed": seed})
                if key in state["runs"]:
                    if not same_config(state["runs"][key]["config"], json.loads(cfg.to_json())):
                        raise SystemExit(f"{out} holds {key} with another config: use another --out or NAME")
                    continue
                result = run_one(records, cfg, args.folds, fold, progress=key)
                state["runs"][key] = {"setting": name, "seed": seed, "fold": fold, "folds": args.folds,
                                      "overrides": overrides, "config": json.loads(cfg.to_json()), "data": args.data,
                                      **result}
                state["command"] = " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:]))
                out.parent.mkdir(parents=True, exist_ok=True)
                tmp = out.with_suffix(".tmp")
                tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
                tmp.replace(out)
                r = result["results"]
                log.info("%s: %s (train %.0fs)", key, "  ".join(
                    f"{d} {100 * r[d]['R@1']:.1f}/{100 * r[d]['R@10']:.1f}" for d in DIRECTIONS),
                    result["train_seconds"])
    print(summarise(state["runs"], names, baseline))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
