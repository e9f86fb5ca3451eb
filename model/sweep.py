"""Sensitivity of retrieval to the loss weights and the temperature: alpha, beta and tau, over seeds.

The paper varies alpha, beta in {0.1, 1, 10} and tau in {0.05, 0.1, 0.2} and reports R@1 moving under 2 %.
Settings (`settings`):
- `oat` (one at a time, the default): the config as it is, then each value of alpha with beta and tau at the
  config's values, each value of beta, each value of tau (a value equal to the config's is the config itself);
- `grid`: every combination (27 with three values each).
alpha weighs the load-balancing loss, beta the W* sparsity loss; tau sets both InfoNCE temperatures
(`loss.tau` and `loss.intra_tau`: the paper has one).

`run_sweep` trains every (setting, seed) with `model.train.train`, one after the other on one Ray, into
`<output>/<setting>-s<seed>/`, and evaluates each on the held-out products (`model.evaluate.evaluate_model`,
the protocol of the config's data settings). One line per finished run goes to `<output>/sweep.jsonl`, so an
interrupted sweep resumes where it stopped (a half-trained run resumes from its last checkpoint).
`summarise` turns the lines into R@1 / R@10 per setting and seed, their mean, and the change of the mean
against the config's own setting.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import time
from pathlib import Path
from typing import Any, Sequence

from model.config import ConfigError, MoonConfig, load_config

log = logging.getLogger(__name__)

VALUES = {"alpha": (0.1, 1.0, 10.0), "beta": (0.1, 1.0, 10.0), "tau": (0.05, 0.1, 0.2)}
KEYS = {"alpha": ("loss.alpha",), "beta": ("loss.beta",), "tau": ("loss.tau", "loss.intra_tau")}
BASE = "config"  # the name of the config's own setting
RESULTS = "sweep.jsonl"
SUMMARY_DIRECTIONS = ("t->mm", "i->mm", "mm->mm", "t->i", "i->t")


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str  # "config", "alpha=0.1", "alpha=0.1,beta=1,tau=0.05"
    values: dict  # factor -> value, every factor (the config's value where the setting leaves it)

    def overrides(self) -> dict[str, float]:
        return {key: value for factor, value in self.values.items() for key in KEYS[factor]}


def config_values(cfg: MoonConfig) -> dict[str, float]:
    return {"alpha": cfg.loss.alpha, "beta": cfg.loss.beta, "tau": cfg.loss.tau}


def settings(cfg: MoonConfig, mode: str = "oat", values: dict[str, Sequence[float]] | None = None) -> list[Setting]:
    """The settings of a sweep around `cfg`; the config's own setting first (oat)."""
    values = {factor: tuple(float(v) for v in (values or VALUES).get(factor, VALUES[factor])) for factor in VALUES}
    base = config_values(cfg)
    if mode == "grid":
        out = []
        for combination in itertools.product(*(values[f] for f in VALUES)):
            chosen = dict(zip(VALUES, combination))
            out.append(Setting(",".join(f"{f}={_fmt(v)}" for f, v in chosen.items()), chosen))
        return out
    if mode != "oat":
        raise ValueError(f"sweep mode must be oat or grid, got {mode!r}")
    out = [Setting(BASE, dict(base))]
    for factor in VALUES:
        for value in values[factor]:
            if abs(value - base[factor]) < 1e-12:
                continue  # the config's own value: the config setting
            out.append(Setting(f"{factor}={_fmt(value)}", {**base, factor: value}))
    return out


def _fmt(value: float) -> str:
    return f"{value:g}"


def run_name(setting: Setting, seed: int) -> str:
    return f"{setting.name}-s{seed}"


BASIS = "sweep_basis.json"  # what every run of a sweep folder starts from: the data, the config, the overrides


def check_basis(output_dir: Path, basis: dict[str, Any]) -> None:
    """Record what the sweep's runs start from; in a folder that holds runs (a run's folder or a finished run's
    line) made from another basis, refuse it (a ConfigError naming what differs): those runs would be reused and
    labelled with the new one. A folder without runs (a sweep refused before training) takes the new basis."""
    path = Path(output_dir) / BASIS
    has_runs = (Path(output_dir) / RESULTS).exists() or any(p.is_dir() for p in Path(output_dir).iterdir())
    if not path.exists() or not has_runs:
        path.write_text(json.dumps(basis, indent=1, sort_keys=True))
        return
    try:
        before = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a readable sweep record ({exc}); remove it, or choose another --output") \
            from None
    if not isinstance(before, dict):
        before = {}
    changed = [key for key in sorted(set(before) | set(basis)) if before.get(key) != basis.get(key)]
    if changed:
        what = "; ".join(f"{key} {json.dumps(before.get(key))} -> {json.dumps(basis.get(key))}" for key in changed)
        raise ConfigError(f"{output_dir} holds a sweep of other runs ({what}): its finished runs would be reused "
                          "under the new settings; choose another --output, or run it with the same data, config, "
                          "--set and --epochs")


def done_runs(output_dir: Path) -> dict[str, dict[str, Any]]:
    path = Path(output_dir) / RESULTS
    if not path.exists():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {row["run"]: row for row in rows}


def run_sweep(run_uri: str, config: str, overrides: dict[str, Any], output_dir: str | Path, seeds: Sequence[int],
              chosen: Sequence[Setting], ray_address: str | None = None) -> list[dict[str, Any]]:
    """Train and evaluate every (setting, seed) not done yet; returns every run's line of sweep.jsonl.
    config, overrides: the named config or file and the dotted-key overrides every run starts from."""
    from augment.core import manifest
    from model.checkpoint import latest_checkpoint, load_model, load_train_state
    from model.evaluate import evaluate_model, held_out_records
    from model.train import MEANINGFUL_HELD_OUT, init_ray, train, training_dataset

    from model.evaluations import same_run_key

    cfg = load_config(config, overrides)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    check_basis(output_dir, {"data": same_run_key(run_uri), "config": str(config),
                             "overrides": json.loads(json.dumps(overrides, sort_keys=True, default=str))})
    records = held_out_records(run_uri, cfg.data.eval_fraction, attributes=cfg.data.query_attributes)
    if len(records) < MEANINGFUL_HELD_OUT:  # before any run trains: every figure of the sweep would be 100 %
        raise ConfigError(f"only {len(records)} held-out products with a usable image in {run_uri}: recall@10 would "
                          "be meaningless; raise data.eval_fraction (--set) to hold out 10 or more")
    done = done_runs(output_dir)
    plan = [(s, seed) for s in chosen for seed in seeds]
    dataset = None  # the training records, read once for every run (the settings change no data key)
    private = False  # whether the Ray started here is a private local one (train() then refuses what it cannot hold)
    for number, (setting, seed) in enumerate(plan, start=1):
        name = run_name(setting, seed)
        if name in done:
            continue
        run_cfg = load_config(config, {**overrides, **setting.overrides(), "train.seed": seed})
        target = output_dir / name
        last = latest_checkpoint(target)
        finished = last is not None and load_train_state(last)["epoch"] >= run_cfg.train.epochs
        log.info("sweep %d/%d: %s%s", number, len(plan), name, " (trained: evaluating)" if finished else "")
        started = time.time()
        if not finished:
            if dataset is None:
                private = init_ray(ray_address)
                dataset = training_dataset(manifest.committed_data_files(run_uri), cfg)
            train(run_uri, run_cfg, target, resume=last is not None, ray_address=ray_address, dataset=dataset,
                  private_ray=private)
        model, trained_cfg = load_model(target)
        results = evaluate_model(model, dataclasses.replace(trained_cfg, data=cfg.data), records)
        row = {"run": name, "setting": setting.name, "values": setting.values, "seed": seed,
               "epochs": run_cfg.train.epochs, "held_out_products": len(records), "results": results,
               "routing": routing_falls(target), "seconds": round(time.time() - started, 1)}
        with open(output_dir / RESULTS, "a") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")
        done[name] = row
        log.info("sweep %s: %s", name, "  ".join(
            f"{d} R@1 {100 * results[d]['R@1']:.1f} R@10 {100 * results[d]['R@10']:.1f}" for d in ("t->mm", "i->mm")))
    return [done[run_name(s, seed)] for s, seed in plan]


def routing_falls(output_dir: str | Path) -> dict[str, float]:
    """How far each routing entropy fell over a run (model.diagnostics.entropy_fall), from its metrics.jsonl."""
    from model.diagnostics import entropy_fall
    from model.progress import read_history

    history = read_history(output_dir)
    falls = {figure: entropy_fall(history, figure) for figure in ("wstar_entropy", "usage_entropy", "token_entropy")}
    return {figure: round(fall["fall"], 4) for figure, fall in falls.items() if fall}


def summarise(rows: Sequence[dict[str, Any]], directions: Sequence[str] = SUMMARY_DIRECTIONS) -> list[dict[str, Any]]:
    """Per setting (in first-seen order): per direction and metric (R@1, R@10) the values per seed, their mean,
    their spread (max - min) and the change of the mean against the config setting (points and percent)."""
    by_setting: dict[str, list[dict]] = {}
    for row in rows:
        by_setting.setdefault(row["setting"], []).append(row)
    base = by_setting.get(BASE)
    out = []
    for name, runs in by_setting.items():
        runs = sorted(runs, key=lambda r: r["seed"])
        entry = {"setting": name, "seeds": [r["seed"] for r in runs], "metrics": {}}
        for direction in directions:
            for metric in ("R@1", "R@10"):
                values = [100 * r["results"][direction][metric] for r in runs if direction in r["results"]]
                if not values:
                    continue
                mean = sum(values) / len(values)
                cell = {"values": values, "mean": mean, "spread": max(values) - min(values)}
                if base:
                    base_values = [100 * r["results"][direction][metric] for r in base]
                    base_mean = sum(base_values) / len(base_values)
                    cell["change"] = mean - base_mean
                    cell["relative"] = (mean - base_mean) / base_mean if base_mean else 0.0
                entry["metrics"][f"{direction} {metric}"] = cell
        falls = [r.get("routing") or {} for r in runs]
        entry["entropy_fall"] = {figure: [f[figure] for f in falls] for figure in sorted(set().union(*falls))
                                 if all(figure in f for f in falls)}
        out.append(entry)
    return out


def format_summary(summary: Sequence[dict[str, Any]], directions: Sequence[str] = ("t->mm", "i->mm", "mm->mm")) -> str:
    """A table: setting, then per direction R@1 (seeds, mean, change vs the config) and R@10 (mean)."""
    head = f"{'setting':<14}" + "".join(f"{d + ' R@1 (seeds) mean Δ':>34}{d + ' R@10':>13}" for d in directions) \
        + f"{'W* entropy fall':>17}"
    lines = [head]
    for entry in summary:
        cells = []
        for d in directions:
            r1, r10 = entry["metrics"].get(f"{d} R@1"), entry["metrics"].get(f"{d} R@10")
            if not r1:
                cells.append(f"{'-':>34}{'-':>13}")
                continue
            seeds = "/".join(f"{v:.1f}" for v in r1["values"])
            change = f"{r1['change']:+.1f}" if "change" in r1 else ""
            cells.append(f"{seeds:>19} {r1['mean']:6.1f} {change:>6}" + f"{r10['mean']:13.1f}")
        falls = entry.get("entropy_fall", {}).get("wstar_entropy")
        cells.append(f"{100 * sum(falls) / len(falls):16.0f}%" if falls else f"{'-':>17}")
        lines.append(f"{entry['setting']:<14}" + "".join(cells))
    return "\n".join(lines)
