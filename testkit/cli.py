"""The `moon` command as users run it: `python -m augment.cli` in a child process, from this checkout."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _command(args: tuple[str, ...], env: dict | None) -> tuple[list[str], dict]:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", **(env or {})}
    return [sys.executable, "-m", "augment.cli", *args], full_env


def moon(*args: str, env: dict | None = None, stdin: str | None = None, timeout: float = 300,
         **kwargs) -> subprocess.CompletedProcess:
    """Run `moon ARGS` to completion (or to its death) and return it, stdout and stderr captured as text."""
    command, full_env = _command(args, env)
    return subprocess.run(command, cwd=ROOT, env=full_env, input=stdin, capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def start_moon(*args: str, env: dict | None = None, **kwargs) -> subprocess.Popen:
    """Start `moon ARGS` and return the process (stdout and stderr together, as text), for tests that kill it."""
    command, full_env = _command(args, env)
    return subprocess.Popen(command, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, **kwargs)
