"""Loaded models, kept per process: each model is loaded once per worker process, whatever the number of shards,
batches or stages that use it.

A stage backend asks `shared(key, load)` in its `setup()` instead of loading directly. `key` names everything that
makes two loads interchangeable (loader, local path, dtype, device, options that change the weights); the first
call loads and keeps the model, later calls in the same process return the same object. So two stages of one
chain that name the same model (`enrich_title` and `background_prompts` on one transformers model) hold one copy,
and a stage chain built again in the same process (a second run of `moon run --no-ray`, a restarted batch loop)
finds its models loaded. A Ray actor is one process: its models stay loaded for every batch it runs, i.e. for
every shard of the job that reaches it.

Every load is recorded (label, seconds). `take_load_seconds()` hands the seconds loaded since its last call to
the caller: the stage chain puts them on the next batch it returns, so each shard's manifest record says how long
its worker spent loading models for it (`timings.model_load`) and a run's totals show what model loading cost.
Standard library only: loaders import their own frameworks.
"""
from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
from typing import Any, Callable, Hashable, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


DEVICE = re.compile(r"auto|cpu|cuda(:[0-9]+)?")
DEVICE_WORDS = "auto (cuda when there is one), cpu, cuda or cuda:N"


def check_device(device: object, key: str) -> None:
    """A ConfigError naming `key` unless `device` is a device a model option may name (DEVICE): checked with the
    config, before any model loads."""
    from augment.core.config import ConfigError

    if not isinstance(device, str) or not DEVICE.fullmatch(device):
        raise ConfigError(f"{key}: expected {DEVICE_WORDS}, got {device!r}")


def resolve_device(device: str, key: str) -> str:
    """The torch device of a model option on this machine: `auto` is cuda when torch sees a CUDA device, else cpu.
    A CUDA device torch does not see is a ConfigError naming `key` (before, a torch assertion mid-load)."""
    import torch

    from augment.core.config import ConfigError

    check_device(device, key)
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device.partition(":")[2] or 0)
        if index >= count:
            seen = (f"{count} CUDA device{'s' if count != 1 else ''}" if torch.backends.cuda.is_built()
                    else "no CUDA device (a CPU-only torch build)")
            raise ConfigError(f"{key}: {device}, but torch sees {seen} on this machine; use auto or cpu, or run the "
                              "stage where it has a GPU")
    return device


@dataclasses.dataclass(frozen=True)
class Load:
    label: str  # what was loaded, for logs: e.g. "image_variants[diffusers] /models/FLUX.1-Kontext-dev"
    key: Hashable
    seconds: float


_lock = threading.RLock()
_models: dict[Hashable, Any] = {}
_loads: list[Load] = []
_untaken = 0.0  # load seconds not yet handed to a batch


def shared(key: Hashable, load: Callable[[], T], label: str = "") -> T:
    """The model under `key` in this process, loaded by `load()` on first use and kept."""
    global _untaken
    with _lock:
        if key in _models:
            return _models[key]
        started = time.perf_counter()
        model = load()
        seconds = time.perf_counter() - started
        _models[key] = model
        _loads.append(Load(label or str(key), key, seconds))
        _untaken += seconds
        log.info("loaded %s in %.1f s (models kept in this process: %d)", label or key, seconds, len(_models))
        return model


def loads() -> list[Load]:
    """Every load this process made, in order."""
    with _lock:
        return list(_loads)


def take_load_seconds() -> float:
    """Seconds spent loading since the last call (0.0 when nothing was loaded), and reset that count."""
    global _untaken
    with _lock:
        seconds, _untaken = _untaken, 0.0
        return seconds


def release() -> None:
    """Drop every kept model (their memory is freed once nothing else refers to them) and the load records."""
    global _untaken
    with _lock:
        _models.clear()
        _loads.clear()
        _untaken = 0.0
