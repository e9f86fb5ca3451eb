"""Training progress: what rank 0 records while it trains, and what `moon train` prints from it.

Rank 0 of the Ray Train workers appends each epoch's metrics to `<output>/metrics.jsonl` (the run's history; on
--resume, epochs after the restored checkpoint are dropped first, so a line never repeats) and keeps
`<output>/progress.json` (epoch, step, loss) current every `train.log_every` steps. The driver watches both
files while Ray Train runs (`Watcher`) and hands each new record to a callback; `ProgressPrinter` prints one
line per epoch (epoch, loss, validation score, samples/s, time), with a tqdm bar over the steps when stderr is
a terminal. The files are on the output folder, which the driver and the workers share (local or a shared
filesystem, as Ray Train's storage).
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import IO, Any, Callable

METRICS_FILE = "metrics.jsonl"
PROGRESS_FILE = "progress.json"


# ---------------------------------------------------------------------------------------------------------
# Rank 0: writing
# ---------------------------------------------------------------------------------------------------------
class MetricsLog:
    def __init__(self, output_dir: str | Path, start_epoch: int):
        self.output_dir = Path(output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        kept = [m for m in read_history(self.output_dir) if m.get("epoch", 0) <= start_epoch] if start_epoch else []
        (self.output_dir / METRICS_FILE).write_text("".join(json.dumps(m, sort_keys=True) + "\n" for m in kept))

    def epoch(self, metrics: dict[str, Any]) -> None:
        with open(self.output_dir / METRICS_FILE, "a") as f:
            f.write(json.dumps(metrics, sort_keys=True) + "\n")

    def step(self, epoch: int, step: int, loss: float) -> None:
        tmp = self.output_dir / f".{PROGRESS_FILE}.tmp"
        tmp.write_text(json.dumps({"epoch": epoch, "step": step, "loss": loss}))
        os.replace(tmp, self.output_dir / PROGRESS_FILE)


def read_history(output_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(output_dir) / METRICS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ---------------------------------------------------------------------------------------------------------
# Driver: watching and printing
# ---------------------------------------------------------------------------------------------------------
class Watcher:
    """Polls the output folder in a thread; calls `on_epoch(metrics)` for each epoch after `start_epoch`, in
    order, and `on_step(record)` when progress.json changes. `stop()` polls a last time, then ends the thread."""

    def __init__(self, output_dir: str | Path, start_epoch: int, on_epoch: Callable[[dict], None],
                 on_step: Callable[[dict], None] | None = None, interval: float = 0.5):
        self.output_dir = Path(output_dir)
        self.last_epoch = start_epoch
        self.on_epoch, self.on_step = on_epoch, on_step
        self.interval = interval
        self._last_step: dict | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="moon-train-progress", daemon=True)

    def __enter__(self) -> "Watcher":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()
        self.poll()

    def poll(self) -> None:
        try:
            history = read_history(self.output_dir)
        except (OSError, json.JSONDecodeError):  # a line being written; the next poll reads it whole
            history = []
        for metrics in history:
            if metrics.get("epoch", 0) > self.last_epoch:
                self.last_epoch = metrics["epoch"]
                self.on_epoch(metrics)
        if self.on_step is None:
            return
        try:
            record = json.loads((self.output_dir / PROGRESS_FILE).read_text())
        except (OSError, json.JSONDecodeError):
            return
        if record != self._last_step and record.get("epoch", 0) > self.last_epoch:  # the epoch in progress
            self._last_step = record
            self.on_step(record)


class ProgressPrinter:
    """One line per epoch on `stream`; on a terminal, also a tqdm bar over the run's steps."""

    def __init__(self, stream: IO[str], epochs: int, steps_per_epoch: int, start_epoch: int = 0,
                 best_metric: str = "", bar: bool | None = None):
        self.stream = stream
        self.epochs, self.steps_per_epoch = epochs, steps_per_epoch
        self.best_metric = best_metric
        self.started = time.monotonic()
        self.bar = None
        if bar if bar is not None else stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=epochs * steps_per_epoch, initial=start_epoch * steps_per_epoch, unit="step",
                            desc="train", file=stream, dynamic_ncols=True, leave=False)

    def epoch(self, metrics: dict[str, Any]) -> None:
        line = self.format(metrics)
        if self.bar is not None:
            self.bar.n = metrics.get("epoch", 0) * self.steps_per_epoch
            self.bar.write(line, file=self.stream)
            self.bar.refresh()
        else:
            print(line, file=self.stream, flush=True)

    def step(self, record: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.n = record["step"]
            self.bar.set_postfix_str(f"epoch {record['epoch']}/{self.epochs} loss {record['loss']:.4f}")

    def format(self, metrics: dict[str, Any]) -> str:
        width = len(str(self.epochs))
        parts = [f"epoch {metrics.get('epoch', 0):>{width}}/{self.epochs}", f"loss {metrics.get('loss', 0.0):.4f}"]
        if "val_score" in metrics:
            best = " (best)" if metrics.get("best_epoch") == metrics.get("epoch") else ""
            parts.append(f"val {self.best_metric} {100 * metrics['val_score']:.1f}{best}")
        parts.append(f"{metrics.get('samples_per_second', 0.0):.1f} samples/s")
        parts.append(f"{metrics.get('seconds', 0.0):.1f} s")
        parts.append(f"elapsed {_clock(time.monotonic() - self.started)}")
        return "  ".join(parts)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
