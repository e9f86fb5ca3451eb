"""Small helpers shared across the package: stable hashing, code version. No heavy imports."""
from __future__ import annotations

import functools
import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any


class JSONLimitError(json.JSONDecodeError):
    """Valid JSON that Python cannot hold: an integer of over 4,300 digits, or nesting past the stack."""


def json_loads(text: str | bytes) -> Any:
    """json.loads, where valid JSON that Python cannot hold (a ValueError, a RecursionError) is a JSONLimitError, a
    json.JSONDecodeError too: one `except` then names every line a reader cannot take."""
    try:
        return json.loads(text)
    except RecursionError:
        raise JSONLimitError("nested too deep", "", 0) from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise
    except ValueError as exc:  # "Exceeds the limit (4300 digits) for integer string conversion: ..."
        raise JSONLimitError(str(exc).split(":")[0], "", 0) from None


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
