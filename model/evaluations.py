"""Which run a model was trained on, and the run folder's record of evaluations of models trained on it.

- `moon train` writes `training.json` (the run folder, the config name, when) into its output directory.
- `moon eval` appends one line to `<run>/_evaluations.jsonl` (read by `augment.ops.report.collect`) when a checkpoint it evaluated was trained on that
  run: when, the results file, the gallery page, the checkpoints, the products evaluated (split and count), and
  each model's R@1 / R@10 per direction.
  It then rewrites the run's report (when the run has one), whose overview links the latest evaluation.
Recording never fails an evaluation: a run folder that cannot be written (read-only, another account's bucket)
gets a warning instead. This module reads and writes small JSON files only.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Sequence

log = logging.getLogger(__name__)

TRAINING_FILE = "training.json"


def write_training_record(output_dir: str | Path, run_uri: str, config_name: str) -> None:
    record = {"data": run_uri, "data_resolved": same_run_key(run_uri), "config": config_name,
              "started_at": time.time()}
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    (Path(output_dir) / TRAINING_FILE).write_text(json.dumps(record, indent=2, sort_keys=True))


def same_run_key(run_uri: str) -> str:
    """A run folder's identity: s3:// URIs as written (without a trailing slash), local paths resolved."""
    from augment.core import storage

    if storage.is_s3(run_uri):
        return run_uri.rstrip("/")
    return str(Path(run_uri).expanduser().resolve())


def trained_on(checkpoint: str | Path) -> str | None:
    """The run folder a checkpoint was trained on (its training output's training.json), or None if unknown."""
    path = Path(checkpoint)
    for folder in (path, path.parent):
        record = folder / TRAINING_FILE
        if record.exists():
            try:
                data = json.loads(record.read_text())
            except (OSError, ValueError) as exc:  # ValueError: not JSON, not UTF-8
                log.warning("%s: not a readable training record (%s); the run it was trained on is unknown",
                            record, exc)
                return None
            found = data.get("data_resolved") if isinstance(data, dict) else None
            if not isinstance(found, str):
                log.warning("%s: names no run folder (data_resolved); the run it was trained on is unknown", record)
                return None
            return found
    return None


def record_evaluation(run_uri: str, results_path: str | Path, checkpoints: Sequence[str],
                      results: dict[str, dict], gallery: str | Path | None = None, split: str = "held-out",
                      products: int | None = None) -> dict[str, Any] | None:
    """Append this evaluation to the run's record when one of its checkpoints was trained on the run, and
    refresh the run's report. `split` is the products evaluated (`moon eval --split`: held-out, all or train) and
    `products` how many: the report says which, so that figures on the training split never pass for held-out
    ones. Returns the line written, or None."""
    from augment.core import manifest, storage
    from augment.ops.report.collect import EVALUATIONS

    key = same_run_key(run_uri)
    runs = {c: trained_on(c) for c in checkpoints}
    trained = [c for c in checkpoints if runs[c] == key]
    if not trained:
        if checkpoints:  # say why the run report does not show it (baselines alone are never recorded)
            sources = sorted({str(runs[c] or "unknown: no training.json") for c in checkpoints})
            log.info("not recorded in the report of %s: no checkpoint was trained on it (trained on %s)", key,
                     ", ".join(sources))
        return None
    headline = {name: {d: {m: round(v[m], 4) for m in ("R@1", "R@10") if m in v} for d, v in dirs.items()}
                for name, dirs in results.items()}
    line = {"evaluated_at": time.time(), "results": str(Path(results_path).resolve()),
            "gallery": str(Path(gallery).resolve()) if gallery else None,
            "checkpoints": [str(Path(c).resolve()) for c in trained], "headline": headline, "split": split,
            "products": products}
    uri = storage.join(run_uri, EVALUATIONS)
    try:
        earlier = storage.read_text(uri) if storage.exists(uri) else ""
        storage.write_atomic(uri, (earlier + json.dumps(line, sort_keys=True) + "\n").encode())
    except OSError as exc:
        log.warning("could not record the evaluation in %s: %s", uri, exc)
        return None
    if storage.exists(storage.join(run_uri, manifest.REPORT_DIR, "index.html")):
        try:
            from augment.ops.report import write_report

            write_report(run_uri)
        except Exception as exc:  # noqa: BLE001 - the evaluation is done and recorded; the report can be rewritten
            log.warning("could not refresh the run report (%s); rewrite it with `moon report %s`", exc, run_uri)
    return line


