"""Named fault-injection points for the reliability tests: crash, stall or fail the process at a precise step.

Production code calls `point("after_data_write")` at the steps where a crash matters (mid-stage, mid-write,
between a shard's data file and its manifest record). Unless the environment variable MOON_FAULTS is set this
is one dict lookup. MOON_FAULTS holds `name=N:action[,name=N:action...]`: at the N-th time any process reaches
`name` (counted across processes in the folder MOON_FAULTS_STATE, so a restarted worker does not fire again),
`action` happens: `kill` (SIGKILL this process; the default when `:action` is left out), `exit` (os._exit(3)),
`sleepS` (sleep S seconds) or `raise` (raise InjectedFault, an ordinary exception). `name=N+:action` fires at the
N-th hit and every hit after it. A point's hits are counted in the file named after it, `:` and `/` written `_`
(`stage:ner` in `stage_ner`).

The points are `POINTS` and `STAGE_POINTS`; `check` refuses a MOON_FAULTS naming another (`moon run` calls it
first, so a mistyped drill stops instead of running without its fault).

A run on Ray passes the armed faults (`armed()`) to its actors' runtime env: on a cluster they do not inherit
the driver's environment.
"""
from __future__ import annotations

import fcntl
import os
import signal
import time

from augment.core.names import STAGE_ORDER

_ENV = "MOON_FAULTS"
_STATE = "MOON_FAULTS_STATE"
ACTIONS = ("kill", "exit", "raise", "sleep")
POINTS = {
    "driver_batch": "the driver takes a batch's rows back from the cluster (or runs it, in this process)",
    "before_shard_write": "a shard's rows are all in; nothing of it is written yet",
    "during_shard_write": "a temp file (quarantine, then data) is complete, not yet published",
    "after_data_write": "the shard's files are published, its manifest record not yet written",
    "after_commit": "the shard's manifest record is written",
}
STAGE_POINTS = {
    "stage": "a chain is about to run the stage on a batch",
    "stage_call": "inside the row isolation, before each call of the stage's `process`",
}


class InjectedFault(RuntimeError):
    """Raised by a `raise` fault: stands for any exception a stage or writer may meet."""


def _parse(spec: str) -> dict[str, tuple[int, bool, str]]:
    """{name: (N, fires on every later hit too, action)}."""
    out = {}
    for item in spec.split(","):
        if "=" not in item:
            continue
        name, _, rest = item.strip().rpartition("=")
        count, _, action = rest.partition(":")
        onwards = count.endswith("+")
        out[name] = (int(count.rstrip("+")), onwards, action or "kill")
    return out


def known(name: str) -> bool:
    """Whether `name` is a fault point: one of POINTS, or `stage:<stage>` / `stage_call:<stage>`."""
    kind, sep, stage = name.partition(":")
    return name in POINTS or bool(sep and kind in STAGE_POINTS and stage in STAGE_ORDER)


def check() -> None:
    """A ValueError naming what is wrong when MOON_FAULTS names an unknown point or action, or no hit count."""
    spec = os.environ.get(_ENV)
    if not spec:
        return
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, rest = item.rpartition("=")
        count, _, action = rest.partition(":")
        if not sep or not known(name):
            points = ", ".join([*POINTS, *(f"{kind}:<stage>" for kind in STAGE_POINTS)])
            raise ValueError(f"{_ENV}: {item!r} names no fault point (write name=N:action); points: {points}")
        if not count.rstrip("+").isdigit() or int(count.rstrip("+")) < 1:
            raise ValueError(f"{_ENV}: {item!r}: the hit count must be a whole number from 1 (N, or N+ for every "
                             f"hit from the N-th)")
        if action and not (action in ACTIONS or (action.startswith("sleep") and _is_number(action[5:]))):
            raise ValueError(f"{_ENV}: {item!r}: unknown action {action!r}; actions: kill, exit, raise, sleepS")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def point(name: str) -> None:
    spec = os.environ.get(_ENV)
    if not spec:
        return
    faults = _parse(spec)
    if name not in faults:
        return
    nth, onwards, action = faults[name]
    hits = _hits(name)
    if hits != nth and not (onwards and hits > nth):
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "exit":
        os._exit(3)
    elif action == "raise":
        raise InjectedFault(f"fault injected at {name} (hit {hits})")
    elif action.startswith("sleep"):
        time.sleep(float(action[5:] or 1))


def armed() -> dict[str, str]:
    """MOON_FAULTS and MOON_FAULTS_STATE as this process has them ({} when no fault is armed): the run passes them
    to its Ray actors, which on a cluster do not inherit the driver's environment."""
    if not os.environ.get(_ENV):
        return {}
    return {key: os.environ[key] for key in (_ENV, _STATE) if os.environ.get(key)}


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
