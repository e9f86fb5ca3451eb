"""Small helpers shared across the package: stable hashing, code version. No heavy imports."""
from __future__ import annotations

import functools
import hashlib
import json
import re
import subprocess
from pathlib import Path
from typing import Any


class JSONLimitError(json.JSONDecodeError):
    """Valid JSON that Python cannot hold: an integer of over 4,300 digits, or nesting past the stack."""


def json_loads(text: str | bytes, unique_keys: bool = False) -> Any:
    """json.loads, where valid JSON that Python cannot hold (a ValueError, a RecursionError) is a JSONLimitError, a
    json.JSONDecodeError too: one `except` then names every line a reader cannot take. With `unique_keys`, an
    object that names a key twice is a json.JSONDecodeError too (which value was meant cannot be told; json.loads
    keeps the last)."""
    try:
        value = json.loads(text)
        if unique_keys and _key_marks(text) != _keys(value):  # a key given twice, or a `":` inside a string
            value = json.loads(text, object_pairs_hook=_unique_object)
        return value
    except RecursionError:
        raise JSONLimitError("nested too deep", "", 0) from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise
    except ValueError as exc:  # "Exceeds the limit (4300 digits) for integer string conversion: ..."
        raise JSONLimitError(str(exc).split(":")[0], "", 0) from None


_KEY_END = re.compile(r'"\s*:')  # every key of a JSON text ends so (a string value may hold it too)


def _key_marks(text: str | bytes) -> int:
    return len(_KEY_END.findall(text if isinstance(text, str) else text.decode("utf-8", errors="replace")))


def _keys(value: Any) -> int:
    """The keys of every object in a parsed JSON value. Fewer than `_key_marks` of its text only where a key was
    given twice (json.loads kept one) or a string holds `":`: the parser's duplicate check runs then only."""
    count, stack = 0, [value]
    while stack:
        item = stack.pop()
        if type(item) is dict:  # json.loads makes exactly dicts and lists
            count += len(item)
            item = item.values()
        elif type(item) is not list:
            continue
        for v in item:
            if type(v) is dict or type(v) is list:
                stack.append(v)
    return count


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        twice = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise json.JSONDecodeError(f"the key {json.dumps(twice, ensure_ascii=False)[:80]} is given twice", "", 0)
    return obj


def stable_hash(*parts: object, length: int = 64) -> str:
    """sha256 over the JSON of `parts`: the same on every machine, Python version and process."""
    data = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(data).hexdigest()[:length]


def file_digest(path: str | Path, length: int = 16) -> str:
    """sha256 of a local file's bytes (its first `length` hex digits): the same for every copy of the file, on
    any machine, whatever its modification time."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:length]


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """Package version, plus the git commit when running from a checkout."""
    from importlib import metadata

    try:
        version = metadata.version("moon-augment")
    except metadata.PackageNotFoundError:
        version = "0+unknown"
    root = Path(__file__).resolve().parents[2]
    if (root / ".git").exists():
        try:
            sha = subprocess.run(
                ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                capture_output=True, text=True, timeout=5, check=True,
            ).stdout.strip()
            if sha:
                version += f"+g{sha}"
        except (OSError, subprocess.SubprocessError):
            pass
    return version


INT64_MAX = 2**63 - 1  # the largest count Parquet and Arrow hold


def int_at_least(minimum: int):
    """An argparse type for counts: a whole number of at least `minimum` (`--limit 0` is a mistake, not
    "everything") and at most INT64_MAX."""
    import argparse

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text[:40]!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        if value > INT64_MAX:
            raise argparse.ArgumentTypeError(f"must be at most {INT64_MAX} (2^63 - 1)")
        return value

    return parse


positive_int = int_at_least(1)
