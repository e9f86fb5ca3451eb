"""Loading configuration files into dataclasses, strictly: one loader and one error for the whole project.

The run config (augment/config.py: `moon run`) and the model config (model/config.py: `moon train`) are both
trees of dataclasses read from YAML or JSON. `from_dict` builds one from plain data and checks every key and
type on the way; a mistake is a `ConfigError` whose message names the dotted key (`run.shard_size: expected an
integer, got str ('ten')`, `unknown key moe.experts; allowed keys here: ...`). What a config means (profiles,
named configs, cross-field checks) stays with its owner.

Must not import anything of the project beyond the standard library (and PyYAML, when a YAML file is read).
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A config value is missing, unknown or of the wrong type. The message names the dotted key."""


# Field metadata of a setting that cannot change a run's output (an address, a pool size, a timeout): left out of
# the run's config hash, so a run may resume with another value (augment/config.py).
NOT_HASHED = {"hash": False}


def unhashed_fields(cls: type) -> set[str]:
    """The fields of dataclass `cls` marked NOT_HASHED."""
    return {f.name for f in dataclasses.fields(cls) if not f.metadata.get("hash", True)}


# How a scalar type is named in an error message.
MAX_CONFIG_BYTES = 16 << 20  # a config file over 16 MiB is not one
_EXPECTED = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _yaml_loader():
    """PyYAML's safe loader, reading `5e-5` as the number it is (YAML 1.2, JSON and Python agree) rather than as the
    string YAML 1.1 makes of an exponent without a decimal point."""
    import re

    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            # A key written twice would have its last value win without a word (a second `run:` section
            # replacing the first whole): refused, at the line of the second.
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, str) and key in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"found the key {key!r} twice in one mapping",
                                                            key_node.start_mark)
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$"),
                                 list("-+0123456789."))
    return Loader


def read_mapping(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML (.yaml, .yml) or JSON file, local or s3:// (so that Airflow workers and every Ray
    node read one copy, with no shared filesystem); a ConfigError naming the file when it is not one."""
    from augment.core import storage

    name = str(path)
    try:
        if storage.is_s3(name):
            if not storage.exists(name):
                raise ConfigError(f"config file {name} does not exist")
            if storage.is_dir(name):
                raise IsADirectoryError(name)
            text = storage.read_text(name)
        else:
            path = Path(path)
            if not path.exists():
                raise ConfigError(f"config file {path} does not exist")
            with path.open("rb") as f:  # at most MAX_CONFIG_BYTES: /dev/zero is a file that never ends
                raw = f.read(MAX_CONFIG_BYTES + 1)
            if len(raw) > MAX_CONFIG_BYTES:
                raise ValueError(f"over {MAX_CONFIG_BYTES} bytes: not a config")
            text = raw.decode()
    except ConfigError:
        raise
    except (OSError, ValueError) as exc:  # a folder, a name too long (a pasted YAML text), s3:// with no bucket
        shown = " ".join(name.split())  # one line, and short: the "name" may be a whole pasted file
        shown = shown if shown == name and len(shown) <= 80 else repr(shown[:80] + "...")
        reason = ("it is a folder, not a file" if isinstance(exc, IsADirectoryError)
                  else getattr(exc, "strerror", None) or " ".join(str(exc).split()))
        raise ConfigError(f"config file {shown} cannot be read: {reason}") from None
    if Path(name).suffix.lower() != ".json":  # YAML (.yaml, .yml, .YAML, no suffix, <(...)), which reads JSON too
        import yaml

        try:
            data = yaml.load(text, Loader=_yaml_loader()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {name} is not valid YAML: {' '.join(str(exc).split())}") from exc
        except RecursionError:
            raise ConfigError(f"config file {name} is not a config: nested too deep") from None
    else:
        try:
            data = _json(text, f"config file {name}")
        except json.JSONDecodeError as exc:
            raise ConfigError(f"config file {name} is not valid JSON: {' '.join(str(exc).split())}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {name} must hold a mapping at the top level, not {type(data).__name__}")
    return data


def deep_merge(base: dict, over: dict) -> dict:
    """A new mapping: `over` on top of `base`, nested mappings merged key by key."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_override(text: str) -> tuple[str, Any]:
    """`moe.layers=0` -> ("moe.layers", 0): a `--set` of the command line. Values are parsed as JSON where possible,
    else kept as strings."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key=value")
    key, raw = text.split("=", 1)
    try:
        value = _json(raw, f"override {key.strip()!r}")
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


def _json(text: str, what: str) -> Any:
    """The JSON value of `text` (json.JSONDecodeError when it is not JSON); a ConfigError naming `what` for a key
    written twice in one object, or nesting too deep."""
    def unique(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise ConfigError(f"{what}: the key {key!r} is written twice in one object")
            out[key] = value
        return out

    try:
        return json.loads(text, object_pairs_hook=unique)
    except RecursionError:
        raise ConfigError(f"{what} is not a config: nested too deep") from None
    except (ConfigError, json.JSONDecodeError):
        raise
    except ValueError as exc:  # an integer of over 4,300 digits: no config value
        raise ConfigError(f"{what} is not a config value: {str(exc).split(':')[0]}") from None


def overrides_from(items) -> dict[str, Any]:
    """The nested mapping of `--set KEY=VALUE` items, to merge over a config."""
    out: dict[str, Any] = {}
    for key, value in map(parse_override, items):
        set_dotted(out, key, value)
    return out


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """data["a"]["b"] = value for key "a.b", creating the sections on the way."""
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{key}: {part} is not a section")
    node[parts[-1]] = value


def from_dict(cls: type, data: Any, key: str = "") -> Any:
    """Build dataclass `cls` from plain data, checking every key and type; errors name the dotted key."""
    return cls(**field_values(cls, data, key))


def field_values(cls: type, data: Any, key: str = "") -> dict[str, Any]:
    """The keyword arguments `from_dict` builds `cls` with: every key and type checked, the class not built (so
    the checks of its `__post_init__` do not run)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{key or 'config'}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{key}." if key else ""
        allowed = f"allowed keys here: {', '.join(sorted(fields))}" if fields else "this section takes no keys"
        raise ConfigError(f"unknown key {where}{unknown[0]}; {allowed}")
    hints = typing.get_type_hints(cls)
    return {name: coerce(hints[name], value, f"{key}.{name}" if key else name) for name, value in data.items()}


def check_sections(cls: type, data: Any, key: str = "") -> None:
    """Refuse a value that stands where dataclass `cls` has a section (a dataclass or a mapping), at any depth.

    Merging layers (a profile, a file, `--set` items) replaces such a value by the next layer's section, so a
    `run: 5` would vanish without a word; each layer is checked with this before it is merged. Keys that `cls`
    does not have are left to `from_dict`."""
    if not isinstance(data, dict):
        raise ConfigError(f"{key or 'config'}: expected a mapping, got {type(data).__name__} ({data!r})")
    hints = typing.get_type_hints(cls)
    for name, value in data.items():
        if name in hints:
            _check_section(hints[name], value, f"{key}.{name}" if key else name)


def _check_section(tp: Any, value: Any, key: str) -> None:
    """`check_sections` for one value of type hint `tp`."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(tp):
            return
        sections = [a for a in typing.get_args(tp) if dataclasses.is_dataclass(a) or typing.get_origin(a) is dict]
        if len(sections) != 1:
            return
        tp = sections[0]
    if dataclasses.is_dataclass(tp):
        check_sections(tp, value, key)
    elif typing.get_origin(tp) is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__} ({value!r})")
        for name, item in value.items():
            _check_section(typing.get_args(tp)[1], item, f"{key}.{name}")


def coerce(tp: Any, value: Any, key: str) -> Any:
    """Check `value` against type hint `tp` (dataclasses, Optional/unions, list, tuple, dict, scalars, Any) and
    return it (ints become floats where a float is expected, lists become tuples where a tuple is)."""
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
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} ({value!r})")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{key}: expected a list of {len(args)} values, got {value!r}")
        return tuple(coerce(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
        return {k: coerce(args[1], v, f"{key}.{k}") for k, v in value.items()}
    if tp is Any:
        return value
    if tp not in _EXPECTED:
        raise ConfigError(f"{key}: unsupported type {tp}")
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp in (str, bool) and isinstance(value, tp):
        return value
    raise ConfigError(f"{key}: expected {_EXPECTED[tp]}, got {type(value).__name__} ({value!r})")
