"""Named fault-injection points for the reliability tests: crash or stall the process at a precise step.

Production code calls `point("after_data_write")` at the steps where a crash matters (mid-stage, mid-write,
between a shard's data file and its manifest record). Unless the environment variable MOON_FAULTS is set this
is one dict lookup. MOON_FAULTS holds `name=N:action[,name=N:action...]`: at the N-th time any process reaches
`name` (counted across processes in the folder MOON_FAULTS_STATE, so a restarted worker does not fire again),
`action` happens: `kill` (SIGKILL this process), `exit` (os._exit(3)) or `sleepS` (sleep S seconds).
"""
from __future__ import annotations

import fcntl
import os
import signal
import time

_ENV = "MOON_FAULTS"
_STATE = "MOON_FAULTS_STATE"


def _parse(spec: str) -> dict[str, tuple[int, str]]:
    out = {}
    for item in spec.split(","):
        if "=" not in item:
            continue
        name, _, rest = item.strip().partition("=")
        count, _, action = rest.partition(":")
        out[name] = (int(count), action or "kill")
    return out


def point(name: str) -> None:
    spec = os.environ.get(_ENV)
    if not spec:
        return
    faults = _parse(spec)
    if name not in faults:
        return
    nth, action = faults[name]
    if _hits(name) != nth:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "exit":
        os._exit(3)
    elif action.startswith("sleep"):
        time.sleep(float(action[5:] or 1))


def _hits(name: str) -> int:
    """Count this hit of `name` across every process sharing the state folder; returns the new count."""
    state = os.environ.get(_STATE)
    if not state:
        counts = globals().setdefault("_local_counts", {})
        counts[name] = counts.get(name, 0) + 1
        return counts[name]
    os.makedirs(state, exist_ok=True)
    path = os.path.join(state, name.replace("/", "_").replace(":", "_"))
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # count and read back as one step, across threads and processes
        os.write(fd, b".")
        os.fsync(fd)
        return os.fstat(fd).st_size
    finally:
        os.close(fd)
