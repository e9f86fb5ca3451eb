"""The run configuration: one YAML file, validated strictly, with named profiles.

A config file may start from a profile (`extends: gpu`) and override any key; unknown keys, wrong types, a
scalar where a section belongs and numbers out of range are errors that name the dotted key. Backend options are
validated by the backend's own options dataclass when the stage is resolved, and the files and sets they name by
its `check_data`, so a typo in `stages.image_variants.options` is caught before Ray starts.

The config hash covers every field that can change the output, and nothing else: Ray addresses, pool sizes,
batch sizes, progress bars and the backend options marked NOT_HASHED (how a model server is reached) can change
between a run and its resume; shard size, backends and their other options cannot (without --force).
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from augment.core.config import (NOT_HASHED, ConfigError, check_sections, deep_merge, field_values, from_dict,
                                 overrides_from, read_mapping, unhashed_fields)
from augment.core.names import STAGE_ORDER
from augment.core.util import INT64_MAX, stable_hash
from augment.stages.validate.stage import ValidateOptions

PROFILE_DIR = Path(__file__).parent / "profiles"


@dataclasses.dataclass
class Resources:
    """How a stage runs on Ray. Not part of the config hash: changing it never changes the output."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0  # fractional values share one GPU between actors
    concurrency: int | None = None  # actor pool size; None: from the CPUs (CPU stages) or the GPUs the stages share
    batch_size: int = 16
    # Ray custom resources each actor needs, e.g. {a100_node: 1}: places a stage on the nodes that declare them
    # (`ray start --resources '{"a100_node": 8}'`).
    custom: dict[str, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class StageConfig:
    backend: str = ""
    enabled: bool = True
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    resources: Resources = dataclasses.field(default_factory=Resources, metadata=NOT_HASHED)


@dataclasses.dataclass
class InputConfig(ValidateOptions):
    """The `input:` section: the limits the validate stage applies (ValidateOptions: allowed image roots and
    buckets, sizes) and how the input's columns map to the contract."""

    # Contract column -> the input's column name, for catalogues with their own names
    # (e.g. {product_id: id, title: productDisplayName, image_uri: image, brand: brandName}).
    columns: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class OutputConfig:
    image_format: str = "jpeg"  # jpeg | webp | png
    image_quality: int = 90
    image_storage: str = "inline"  # inline: bytes in the shard; uri: objects under <output>/images/
    compression: str = "zstd"  # Parquet compression for non-image columns: zstd | snappy | gzip | brotli | lz4 | none


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
        """16 hex digits over every output-relevant field (disabled stages do not count, nor backend options that
        their options dataclass marks NOT_HASHED: a model server's address, timeouts, requests in flight)."""
        data = _hashable(self)
        data["stages"] = {k: v for k, v in data["stages"].items() if v["enabled"]}
        for name, stage in data["stages"].items():
            skip = _unhashed_options(name, stage["backend"])
            stage["options"] = {k: v for k, v in stage["options"].items() if k not in skip}
        return stable_hash(data, length=16)

    def enabled_stages(self) -> list[tuple[str, StageConfig]]:
        return [(name, self.stages[name]) for name in STAGE_ORDER if name in self.stages and self.stages[name].enabled]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------------------
def load(
    path: str | Path | None = None, profile: str | None = None, overrides: dict | None = None, check_stages: bool = True
) -> Config:
    """Load a config: a profile (default `local`), then a YAML file, then overrides, each merged over the last. The
    profile is `profile` or the file's `extends:`; two different ones are an error."""
    data: dict[str, Any] = {}
    if path is not None:
        data = read_mapping(path)
        check_sections(Config, data)
    if overrides:
        check_sections(Config, overrides)
    extends = data.pop("extends", None)
    # `profile:` (as `moon config` prints it) names the profile too: in a file as `extends:`, set as --profile.
    named = data.pop("profile", None)
    if named is not None and extends is not None and named != extends:
        raise ConfigError(f"profile: {path} names the profile {named!r} and extends {extends!r}; give one of them")
    extends = extends if named is None else named
    if overrides and "profile" in overrides:
        overrides = dict(overrides)
        asked = overrides.pop("profile")
        if profile and asked != profile:
            raise ConfigError(f"profile: --set asks for the profile {asked!r} and --profile for {profile!r}; "
                              "give one of them")
        profile = asked
    if profile and extends and profile != extends:
        raise ConfigError(f"extends: {path} extends the profile {extends!r} and --profile asks for {profile!r}; "
                          f"give one of them")
    base = profile or extends or "local"
    merged = _merge(profile_dict(base), data)
    if overrides:
        merged = _merge(merged, overrides)
    merged.setdefault("profile", base)
    config = from_dict(Config, merged, "")
    validate_values(config)
    if check_stages:
        validate_stages(config)
    return config


def load_for_run(
    path: str | Path | None = None,
    profile: str | None = None,
    *,
    stages: str | None = None,
    shard_size: int | None = None,
    ray_address: str | None = None,
    progress: bool | None = None,
    sets: list[str] | tuple[str, ...] = (),
) -> Config:
    """The config of one `moon run` (the CLI and the Airflow plan task build it the same way, so the config hash
    is the same): a file and/or profile, with the command line's overrides. `sets` are `--set KEY=VALUE` items
    (`stages.enrich_title.backend=openai`); the options with a flag of their own win over them. `stages`
    ("ner,filter") enables only those stages, and validate."""
    overrides = overrides_from(sets)
    check_sections(Config, overrides)
    overrides.setdefault("run", {})
    if shard_size:
        overrides["run"]["shard_size"] = shard_size
    if ray_address:
        overrides["run"]["ray_address"] = ray_address
    if progress is not None:
        overrides["run"]["progress"] = progress
    if stages is not None:
        wanted = {s.strip() for s in stages.split(",") if s.strip()}
        if not wanted:
            raise ConfigError(f"--stages {stages!r} names no stage: give comma-separated stage names "
                              f"({', '.join(STAGE_ORDER)})")
        base = load(path, profile, {k: v for k, v in overrides.items() if k != "run"}, check_stages=False)
        unknown = wanted - set(base.stages)
        if unknown:
            raise ConfigError(f"--stages: unknown stage {sorted(unknown)[0]!r}; configured: {', '.join(base.stages)}")
        wanted.add("validate")  # every run validates its input
        overrides["stages"] = deep_merge(overrides.get("stages", {}),
                                         {name: {"enabled": name in wanted} for name in base.stages})
    return load(path, profile, overrides)


def profile_dict(name: str) -> dict[str, Any]:
    path = PROFILE_DIR / f"{name}.yaml"
    if not path.exists():
        names = sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))
        raise ConfigError(f"unknown profile {name!r}; profiles are {', '.join(names)}")
    data = read_mapping(path)
    parent = data.pop("extends", None)
    return _merge(profile_dict(parent), data) if parent else data


def _merge(base: dict, over: dict) -> dict:
    """`over` on top of `base` (augment.core.config.deep_merge), with the rule of stage sections: a stage's options
    merge key by key (an option's value is replaced whole), and a stage whose backend is overridden keeps none of
    the previous backend's options."""
    merged = deep_merge(base, over)
    stages, base_stages = over.get("stages"), base.get("stages")
    if not (isinstance(stages, dict) and isinstance(base_stages, dict)):
        return merged
    for name, stage in stages.items():
        before = base_stages.get(name)
        if not (isinstance(stage, dict) and isinstance(before, dict)):
            continue
        if "backend" in stage and "backend" in before and stage["backend"] != before["backend"]:
            merged["stages"][name]["options"] = dict(stage.get("options", {}))
        elif isinstance(stage.get("options"), dict) and isinstance(before.get("options"), dict):
            merged["stages"][name]["options"] = {**before["options"], **stage["options"]}
    return merged


def validate_stages(config: Config, values: bool = True) -> None:
    """Check stage names, backends and each enabled backend's options. `values`: build each options class (its
    range checks) and run its `check_data` (the files and named sets the run reads: NER configurations and
    lexicons, background sets); without it only the option keys and types are checked (`moon plan`: a plan
    reads no model or data file). Backend modules are imported for their options classes; their heavy
    dependencies (torch, spaCy, diffusers) are not."""
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
        if name == "validate" and not stage.enabled:
            # Without it duplicates, unparsable rows and rows without an id or image would be committed as data.
            raise ConfigError("stages.validate.enabled: every run validates its input (duplicates, unreadable "
                              "rows and rows without an id, title or image go to quarantine); it cannot be "
                              "turned off")
        if not stage.enabled:
            continue
        try:
            cls = resolve(name, stage.backend)
        except UnknownBackend as exc:
            raise ConfigError(f"stages.{name}.backend: {exc}") from None
        key = f"stages.{name}.options"
        if not values:
            planned_options(cls.options_cls, stage.options or {}, key)
            continue
        options = stage_options(cls, stage.options, key)
        if hasattr(options, "check_data"):
            options.check_data(key)


def planned_options(options_cls: type, options: dict, key: str) -> None:
    """What `moon plan` checks of a backend's options: keys, types and ranges, as the run would, without the model
    files a plan never reads (an empty `model_path` is filled in for the check only)."""
    values = field_values(options_cls, options, key)
    names = {f.name for f in dataclasses.fields(options_cls)}
    if "model_path" in names and not values.get("model_path"):
        values["model_path"] = "<not read by moon plan>"
    options_cls(**values)


# Allowed ranges of the numeric keys of `run:`, `input:` and `output:`: (lowest, highest or None). A key of type
# `int | None` may also be null. tests/augment/test_config_values.py checks that every numeric key has one.
LIMITS: dict[str, dict[str, tuple[int, int | None]]] = {
    "run": {"shard_size": (1, None), "num_cpus": (1, None), "writer_threads": (1, None),
            "worker_retries": (-1, None)},  # -1: retry without limit
    "input": {"max_image_bytes": (1, None), "max_image_pixels": (1, None), "min_image_side": (1, None),
              "max_title_chars": (1, None), "work_image_side": (1, None)},
    "output": {"image_quality": (1, 100)},  # JPEG and WebP quality; PNG ignores it
}
PARQUET_CODECS = ("zstd", "snappy", "gzip", "brotli", "lz4", "none")  # output.compression
RAY_PRECISION = 0.0001  # the smallest non-zero resource quantity Ray accepts


def validate_values(config: Config) -> None:
    """Checks of single values that types alone cannot express."""
    for name in config.stages:
        if name not in STAGE_ORDER:
            raise ConfigError(f"unknown key stages.{name}; stages are {', '.join(STAGE_ORDER)}")
    for key, allowed in (("image_format", ("jpeg", "webp", "png")), ("image_storage", ("inline", "uri")),
                         ("compression", PARQUET_CODECS)):
        value = getattr(config.output, key)
        if value not in allowed:
            raise ConfigError(f"output.{key}: expected one of {', '.join(allowed)}, got {value!r}")
    import pyarrow as pa

    if config.output.compression != "none" and not pa.Codec.is_available(config.output.compression):
        raise ConfigError(f"output.compression: {config.output.compression} is not built into this pyarrow")
    from augment.core.schema import INPUT_COLUMN_ALIASES, INPUT_FIELDS

    for contract in config.input.columns:
        if contract not in INPUT_FIELDS.names and contract not in INPUT_COLUMN_ALIASES:
            raise ConfigError(
                f"input.columns.{contract}: not an input column; choose from {', '.join(INPUT_FIELDS.names)}, brand"
            )
    for section, limits in LIMITS.items():
        for name, (low, high) in limits.items():
            check_range(f"{section}.{name}", getattr(getattr(config, section), name), low, high)
    check_image_limits(config.input)
    for name, stage in config.stages.items():
        check_resources(stage.resources, f"stages.{name}.resources")


def check_range(key: str, value: int | None, low: int, high: int | None = None) -> None:
    """`value` within [low, high] (no upper end when `high` is None); None passes (an optional key left unset)."""
    if value is None:
        return
    if high is not None and not low <= value <= high:
        raise ConfigError(f"{key}: must be between {low} and {high}, got {value}")
    if value < low:
        raise ConfigError(f"{key}: must be at least {low}, got {value}")
    if value > INT64_MAX:  # Parquet and Arrow hold counts in 64 bits
        shown = str(value) if len(str(value)) <= 30 else str(value)[:30] + "..."
        raise ConfigError(f"{key}: must be at most {INT64_MAX} (2^63 - 1), got {shown}")


def check_image_limits(limits: InputConfig) -> None:
    """The input limits must leave some image acceptable, and the working copy must not be smaller than the
    smallest image accepted."""
    if limits.min_image_side ** 2 > limits.max_image_pixels:
        raise ConfigError(f"input.max_image_pixels: must be at least input.min_image_side squared "
                          f"({limits.min_image_side ** 2}), got {limits.max_image_pixels}")
    if limits.work_image_side < limits.min_image_side:
        raise ConfigError(f"input.work_image_side: must be at least input.min_image_side ({limits.min_image_side}), "
                          f"got {limits.work_image_side}")


def check_resources(resources: Resources, key: str) -> None:
    """What Ray would refuse only once it runs the stage (a negative or too fine quantity, a GPU share above one
    that is not a whole number of GPUs), and what Ray Data would refuse (batch size, pool size), named by key."""
    check_quantity(f"{key}.num_cpus", resources.num_cpus)
    check_quantity(f"{key}.num_gpus", resources.num_gpus)
    if resources.num_gpus > 1 and not float(resources.num_gpus).is_integer():
        raise ConfigError(f"{key}.num_gpus: must be a share of one GPU (at most 1) or a whole number of GPUs, "
                          f"got {resources.num_gpus:g}")
    check_range(f"{key}.batch_size", resources.batch_size, 1)
    check_range(f"{key}.concurrency", resources.concurrency, 1)
    for name, quantity in resources.custom.items():
        if name in ("CPU", "GPU"):
            raise ConfigError(f"{key}.custom.{name}: give CPUs and GPUs as {key}.num_{name.lower()}s")
        check_quantity(f"{key}.custom.{name}", quantity)


def check_quantity(key: str, value: float) -> None:
    """A Ray resource quantity: 0, or a finite number of at least Ray's precision."""
    if not (math.isfinite(value) and value >= 0):
        raise ConfigError(f"{key}: must be a number of at least 0, got {value:g}")
    if 0 < value < RAY_PRECISION:
        raise ConfigError(f"{key}: must be 0 or at least {RAY_PRECISION}, got {value:g}")


def stage_options(stage_cls: type, options: dict, key: str) -> Any:
    """Validate a backend's options dict into its options dataclass."""
    return from_dict(stage_cls.options_cls, options or {}, key)


def _unhashed_options(stage: str, backend: str) -> set[str]:
    """The option names of a stage backend that do not count in the config hash (none for a backend that cannot be
    resolved: the config's validation reports it)."""
    from augment import stages

    try:
        return unhashed_fields(stages.resolve(stage, backend).options_cls)
    except (KeyError, ImportError):
        return set()


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
