"""The run configuration: one YAML file, validated strictly, with named profiles.

A config file may start from a profile (`extends: gpu`) and override any key; unknown keys and wrong types are
errors that name the dotted key. Backend options are validated by the backend's own options dataclass when the
stage is resolved, so a typo in `stages.image_variants.options` is caught before Ray starts.

The config hash covers every field that can change the output, and nothing else: Ray addresses, pool sizes,
batch sizes and progress bars can change between a run and its resume; shard size, backends and their options
cannot (without --force).
"""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from augment.core.util import stable_hash

PROFILE_DIR = Path(__file__).parent / "profiles"
NOT_HASHED = {"hash": False}


class ConfigError(ValueError):
    """A config value is missing, unknown or of the wrong type. The message names the dotted key."""


@dataclasses.dataclass
class Resources:
    """How a stage runs on Ray. Not part of the config hash: changing it never changes the output."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0  # fractional values share one GPU between actors
    concurrency: int | None = None  # actor pool size; None: one per CPU (CPU stages) or per GPU
    batch_size: int = 16


@dataclasses.dataclass
class StageConfig:
    backend: str = ""
    enabled: bool = True
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    resources: Resources = dataclasses.field(default_factory=Resources, metadata=NOT_HASHED)


@dataclasses.dataclass
class InputConfig:
    # Contract column -> the input's column name, for catalogues with their own names
    # (e.g. {product_id: id, title: productDisplayName, image_uri: image, brand: brandName}).
    columns: dict[str, str] = dataclasses.field(default_factory=dict)
    # Local directories that image paths may point into. Empty: the directory of the input file. A path that
    # resolves outside every root (../../etc/passwd, a symlink out) quarantines the row.
    allowed_roots: list[str] = dataclasses.field(default_factory=list)
    # s3 buckets image URIs may point into. Empty: only the input's own bucket, if it is on s3.
    allowed_buckets: list[str] = dataclasses.field(default_factory=list)
    max_image_bytes: int = 20_000_000
    max_image_pixels: int = 40_000_000  # declared width*height above this: decompression bomb, quarantined
    min_image_side: int = 8
    max_title_chars: int = 2_000
    # Working copy of the image handed to later stages: longest side capped at this, RGB, EXIF-rotated.
    work_image_side: int = 1024


@dataclasses.dataclass
class OutputConfig:
    image_format: str = "jpeg"  # jpeg | webp | png
    image_quality: int = 90
    image_storage: str = "inline"  # inline: bytes in the shard; uri: objects under <output>/images/
    compression: str = "zstd"  # Parquet compression for non-image columns


@dataclasses.dataclass
class RunConfig:
    # Rows per shard. Not in the config hash (content never depends on it); the run folder records it separately,
    # since shard ids do, so a resume with another shard size is refused.
    shard_size: int = dataclasses.field(default=64, metadata=NOT_HASHED)
    ray_address: str | None = dataclasses.field(default=None, metadata=NOT_HASHED)
    num_cpus: int | None = dataclasses.field(default=None, metadata=NOT_HASHED)  # local Ray only
    progress: bool = dataclasses.field(default=True, metadata=NOT_HASHED)
    # Shards written concurrently by the driver while the cluster keeps working.
    writer_threads: int = dataclasses.field(default=2, metadata=NOT_HASHED)
    # Ray: a batch whose worker process died (killed, out of memory, node lost) is retried on a restarted worker
    # this many times before the run fails; -1 retries without limit (a batch that always kills its worker would
    # then loop for ever).
    worker_retries: int = dataclasses.field(default=3, metadata=NOT_HASHED)


@dataclasses.dataclass
class Config:
    profile: str = dataclasses.field(default="local", metadata=NOT_HASHED)
    run: RunConfig = dataclasses.field(default_factory=RunConfig)
    input: InputConfig = dataclasses.field(default_factory=InputConfig)
    output: OutputConfig = dataclasses.field(default_factory=OutputConfig)
    stages: dict[str, StageConfig] = dataclasses.field(default_factory=dict)

    def hash(self) -> str:
        """16 hex digits over every output-relevant field (disabled stages do not count)."""
        data = _hashable(self)
        data["stages"] = {k: v for k, v in data["stages"].items() if v["enabled"]}
        return stable_hash(data, length=16)

    def enabled_stages(self) -> list[tuple[str, StageConfig]]:
        from augment.stages import STAGE_ORDER

        return [(name, self.stages[name]) for name in STAGE_ORDER if name in self.stages and self.stages[name].enabled]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------------------
def load(
    path: str | Path | None = None, profile: str | None = None, overrides: dict | None = None, check_stages: bool = True
) -> Config:
    """Load a config: a profile (default `local`), then a YAML file, then overrides, each merged over the last."""
    data: dict[str, Any] = {}
    if path is not None:
        data = _read_yaml(Path(path))
    base = profile or data.pop("extends", None) or "local"
    data.pop("extends", None)
    merged = _deep_merge(profile_dict(base), data)
    if overrides:
        merged = _deep_merge(merged, overrides)
    merged.setdefault("profile", base)
    config = from_dict(Config, merged, "")
    validate_values(config)
    if check_stages:
        validate_stages(config)
    return config


def profile_dict(name: str) -> dict[str, Any]:
    path = PROFILE_DIR / f"{name}.yaml"
    if not path.exists():
        names = sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))
        raise ConfigError(f"unknown profile {name!r}; profiles are {', '.join(names)}")
    data = _read_yaml(path)
    parent = data.pop("extends", None)
    return _deep_merge(profile_dict(parent), data) if parent else data


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {' '.join(str(exc).split())}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level, not {type(data).__name__}")
    return data


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "options":
            out[key] = _deep_merge(out[key], value)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            # options replace per key as well, but a backend change drops the old backend's options (see below)
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    # A stage whose backend is overridden keeps none of the previous backend's options.
    if "backend" in over and "backend" in base and over["backend"] != base["backend"]:
        out["options"] = dict(over.get("options", {}))
    return out


def from_dict(cls: type, data: Any, key: str) -> Any:
    """Build dataclass `cls` from plain data, checking every key and type; errors name the dotted key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{key or 'config'}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{key}." if key else ""
        raise ConfigError(
            f"unknown key {where}{unknown[0]}; allowed keys here: {', '.join(sorted(fields))}"
        )
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in data.items():
        values[name] = coerce(hints[name], value, f"{key}.{name}" if key else name)
    return cls(**values)


def coerce(tp: Any, value: Any, key: str) -> Any:
    """Check `value` against type hint `tp` (dataclasses, Optional, list, dict, scalars) and return it."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(arg, value, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{key}: invalid value {value!r}")
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} ({value!r})")
        return [coerce(args[0], v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
        return {k: coerce(args[1], v, f"{key}.{k}") for k, v in value.items()}
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp in (str, bool):
        if isinstance(value, tp):
            return value
    else:
        raise ConfigError(f"{key}: unsupported type {tp}")
    raise ConfigError(f"{key}: expected {tp.__name__}, got {type(value).__name__} ({value!r})")


def validate_stages(config: Config) -> None:
    """Check stage names, backends and each backend's options; no backend module is imported for this."""
    from augment.stages import UnknownBackend, resolve

    for name, stage in config.stages.items():
        if not stage.backend:
            raise ConfigError(f"stages.{name}.backend is required")
        if name == "validate" and stage.options:
            # The runner builds validate's options from `input:` (ValidateOptions.from_input_config): accepting
            # them here would change the config hash for settings that do nothing.
            key = next(iter(stage.options))
            raise ConfigError(f"stages.validate.options.{key}: validate takes its settings from input: "
                              f"(e.g. input.{key})")
        if not stage.enabled:
            continue
        try:
            cls = resolve(name, stage.backend)
        except UnknownBackend as exc:
            raise ConfigError(f"stages.{name}.backend: {exc}") from None
        stage_options(cls, stage.options, f"stages.{name}.options")


def validate_values(config: Config) -> None:
    """Checks of single values that types alone cannot express."""
    from augment.stages import STAGE_ORDER

    for name in config.stages:
        if name not in STAGE_ORDER:
            raise ConfigError(f"unknown key stages.{name}; stages are {', '.join(STAGE_ORDER)}")
    for key, allowed in (("image_format", ("jpeg", "webp", "png")), ("image_storage", ("inline", "uri"))):
        value = getattr(config.output, key)
        if value not in allowed:
            raise ConfigError(f"output.{key}: expected one of {', '.join(allowed)}, got {value!r}")
    from augment.core.schema import INPUT_COLUMN_ALIASES, INPUT_FIELDS

    for contract in config.input.columns:
        if contract not in INPUT_FIELDS.names and contract not in INPUT_COLUMN_ALIASES:
            raise ConfigError(
                f"input.columns.{contract}: not an input column; choose from {', '.join(INPUT_FIELDS.names)}, brand"
            )
    if config.run.shard_size < 1:
        raise ConfigError(f"run.shard_size: must be at least 1, got {config.run.shard_size}")


def stage_options(stage_cls: type, options: dict, key: str) -> Any:
    """Validate a backend's options dict into its options dataclass."""
    return from_dict(stage_cls.options_cls, options or {}, key)


def _hashable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {
            f.name: _hashable(getattr(obj, f.name))
            for f in dataclasses.fields(obj)
            if f.metadata.get("hash", True)
        }
    if isinstance(obj, dict):
        return {k: _hashable(v) for k, v in sorted(obj.items())}
    if isinstance(obj, list):
        return [_hashable(v) for v in obj]
    return obj
