"""Bench result files: one JSON object per measured (stage, backend, config, hardware), read by `moon plan`.

Bench scripts call `write_result(...)` (or build a `BenchResult` and `save` it) to record what they measured;
`load_dir` reads a folder of them. A file says what was measured (stage, backend, the options that change its
cost), on what (`hardware`), how much (`items` of `unit` in `seconds` of steady-state wall time, model loading
excluded) and, optionally, what it adds to the output per product. The format is documented in
docs/operations-planning.md. Standard library only (with augment.core.util, likewise): bench scripts import this on bare
CUDA machines.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

from augment.core.util import code_version

FORMAT = "moon.bench/1"
UNITS = ("product", "image")  # image: one generated image (image_variants); product: one catalogue row
SOURCES = ("measured", "paper")  # paper: a figure quoted from a publication, a reference, not a measurement
DEVICE_KINDS = ("gpu", "cpu")
GPU_FAMILIES = ("b200", "h200", "h100", "gh200", "a100", "a10g", "a10", "l40s", "l40", "l4", "t4", "v100", "a6000",
                "rtx 6000", "rtx 4090", "rtx 3090")


class BenchFormatError(ValueError):
    """A bench result file does not follow the format; the message names the file and the field."""


@dataclasses.dataclass
class Hardware:
    kind: str  # gpu | cpu: what `count` counts
    name: str  # e.g. "NVIDIA H100 80GB HBM3", "AMD EPYC 7R13 (2 cores)"
    count: int  # devices the measurement used: GPUs, or CPU cores (worker processes) for kind cpu
    memory_gb: float | None = None  # per device

    @property
    def family(self) -> str:
        """Short model name used to match `moon plan --gpu-type`: h100, a100, l4, ... or cpu."""
        return gpu_family(self.name) if self.kind == "gpu" else "cpu"


@dataclasses.dataclass
class BenchResult:
    stage: str  # a pipeline stage (validate, ner, enrich_title, background_prompts, image_variants, filter) or train
    backend: str
    config: dict[str, Any]  # the stage options (and model) that change its cost, as in the run config
    hardware: Hardware
    items: int  # units processed in the timed part
    seconds: float  # wall seconds of the timed part, after warm-up and model loading
    unit: str = "product"
    setup_seconds: float | None = None  # model loading and warm-up, not part of the rate
    # What the stage adds to the output, per product: {"bytes_per_product": ..., "objects_per_product": ...}
    output: dict[str, float] = dataclasses.field(default_factory=dict)
    source: str = "measured"
    command: str = ""  # how to reproduce it
    code_version: str = ""
    measured_at: str = ""  # ISO 8601, UTC
    notes: str = ""
    format: str = FORMAT
    path: str = dataclasses.field(default="", compare=False)  # where it was read from (not stored)

    @property
    def rate_per_device(self) -> float:
        """Units per second per device (per GPU, or per CPU core)."""
        return self.items / self.seconds / self.hardware.count

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("path")
        return data

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return path


def write_result(out: str | Path, stage: str, backend: str, config: dict[str, Any], hardware: Hardware, items: int,
                 seconds: float, **fields: Any) -> BenchResult:
    """Record one measurement at `out` (a .json file). `measured_at` and `code_version` are filled in."""
    result = BenchResult(stage=stage, backend=backend, config=config, hardware=hardware, items=items, seconds=seconds,
                         **fields)
    result.measured_at = result.measured_at or dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    result.code_version = result.code_version or code_version()
    check(result, str(out))
    result.save(out)
    return result


def load(path: str | Path) -> BenchResult:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BenchFormatError(f"{path}: not JSON ({exc})") from None
    return from_dict(data, str(path))


def load_dir(*locations: str | Path) -> list[BenchResult]:
    """Every result in the given files and folders (folders: their *.json files, sorted)."""
    results = []
    for location in locations:
        location = Path(location)
        if not location.exists():
            raise BenchFormatError(f"{location}: no such bench result file or folder")
        files = sorted(location.glob("*.json")) if location.is_dir() else [location]
        results.extend(load(f) for f in files)
    return results


def from_dict(data: dict[str, Any], where: str = "<dict>") -> BenchResult:
    if not isinstance(data, dict):
        raise BenchFormatError(f"{where}: expected a JSON object")
    if data.get("format") != FORMAT:
        raise BenchFormatError(f"{where}: format must be {FORMAT!r}, got {data.get('format')!r}")
    known = {f.name for f in dataclasses.fields(BenchResult)} - {"path"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise BenchFormatError(f"{where}: unknown field {unknown[0]!r}")
    missing = [k for k in ("stage", "backend", "config", "hardware", "items", "seconds") if k not in data]
    if missing:
        raise BenchFormatError(f"{where}: missing field {missing[0]!r}")
    hw = data["hardware"]
    if not isinstance(hw, dict) or {"kind", "name", "count"} - set(hw):
        raise BenchFormatError(f"{where}: hardware needs kind, name and count")
    try:
        hardware = Hardware(**hw)
    except TypeError as exc:
        raise BenchFormatError(f"{where}: hardware: {exc}") from exc
    result = BenchResult(**{**data, "hardware": hardware}, path=where)
    check(result, where)
    return result


def _number(value: Any) -> bool:
    """A finite JSON number (not a boolean, not text)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_types(result: BenchResult, where: str) -> None:
    """Each field of its type, named when it is not: a hand-written file may hold "12.5" for 12.5."""
    for name in ("stage", "backend", "unit", "source", "command", "code_version", "measured_at", "notes"):
        if not isinstance(getattr(result, name), str):
            raise BenchFormatError(f"{where}: {name} must be text, got {json.dumps(getattr(result, name))[:60]}")
    if not isinstance(result.hardware.name, str):
        raise BenchFormatError(f"{where}: hardware.name must be text")
    if not (isinstance(result.items, int) and not isinstance(result.items, bool) and 0 < result.items < 2 ** 63):
        raise BenchFormatError(f"{where}: items must be a whole number from 1 to 2^63 - 1, "
                               f"got {json.dumps(result.items)[:60]}")
    for name in ("seconds", "setup_seconds", "hardware.memory_gb"):
        value = result.hardware.memory_gb if name == "hardware.memory_gb" else getattr(result, name)
        if not (_number(value) and value >= 0 or value is None and name != "seconds"):
            raise BenchFormatError(f"{where}: {name} must be a number of 0 or more, got {json.dumps(value)[:60]}")
    if not isinstance(result.output, dict) or not all(_number(v) and v >= 0 for v in result.output.values()):
        raise BenchFormatError(f"{where}: output must be an object of numbers of 0 or more by name, "
                               f"got {json.dumps(result.output)[:60]}")


def check(result: BenchResult, where: str) -> None:
    _check_types(result, where)
    if result.hardware.kind not in DEVICE_KINDS:
        raise BenchFormatError(f"{where}: hardware.kind must be one of {DEVICE_KINDS}, got {result.hardware.kind!r}")
    if not (isinstance(result.hardware.count, int) and result.hardware.count >= 1):
        raise BenchFormatError(f"{where}: hardware.count must be a positive integer")
    if result.unit not in UNITS:
        raise BenchFormatError(f"{where}: unit must be one of {UNITS}, got {result.unit!r}")
    if result.source not in SOURCES:
        raise BenchFormatError(f"{where}: source must be one of {SOURCES}, got {result.source!r}")
    if not result.seconds > 0:  # items: a whole number of 1 or more (_check_types)
        raise BenchFormatError(f"{where}: items and seconds must be positive")
    if not isinstance(result.config, dict):
        raise BenchFormatError(f"{where}: config must be an object")


def gpu_family(name: str) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'h100'; 'NVIDIA A100-SXM4-80GB' -> 'a100'; unknown names: lowercased name."""
    lowered = name.lower()
    for family in GPU_FAMILIES:
        if re.search(r"(?<![a-z0-9])" + re.escape(family) + r"(?![0-9])", lowered):
            return family
    return lowered.strip()


def detect_hardware(kind: str, count: int = 1) -> Hardware:
    """The machine this runs on: the first CUDA device via torch (if importable) or nvidia-smi, or the CPU model."""
    if kind == "gpu":
        name, memory = _cuda_device()
        return Hardware(kind="gpu", name=name, count=count, memory_gb=memory)
    return Hardware(kind="cpu", name=_cpu_model(), count=count,
                    memory_gb=round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1)
                    if hasattr(os, "sysconf") else None)


def _cuda_device() -> tuple[str, float | None]:
    try:
        import torch  # noqa: PLC0415 - optional, present on GPU machines

        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            return props.name, round(props.total_memory / 1e9, 1)
    except ImportError:
        pass
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10, check=True).stdout.splitlines()[0]
        name, memory = [x.strip() for x in out.split(",")]
        return name, round(float(memory) / 1000, 1)
    except (OSError, subprocess.SubprocessError, IndexError, ValueError):
        return "unknown GPU", None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
