"""`make test`: the three tiers of the suite side by side, one pytest process each.

    process tier (`slow`: Ray, the pipeline end to end, killed processes)                     prints as it goes
    service tier (`external`, `gpu`, slow `orchestration`: the vLLM CPU server, Chromium,
                  Airflow, Ray jobs and Train)                                                  log, printed at the end
    in-process tier (unmarked: pure computation)                                                log, printed at the end

The process and service tiers spend much of their time waiting for processes to start and servers to answer; the
in-process tier's computation fills those waits (on two cores: 446 s for all three side by side, 490 s with the
in-process tier run before the service tier in one lane). The marker expressions partition the suite, so every
collected test runs exactly once. When all have ended, the logged tiers' output is printed, then one line per
tier. The command fails when any tier fails, and when none ran a test (pytest's exit 5); a selection (extra pytest
arguments, e.g. a file) that leaves a tier empty is fine. Arguments with their own marker expression (`-m`) choose
the tests themselves: they run in one pytest process.

    python -m testkit.tiers [PYTEST ARGS...]
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IN_PROCESS = "not slow and not external and not gpu"
SERVICE = "external or gpu or (orchestration and slow)"
TIERS = (("process", f"not ({IN_PROCESS}) and not ({SERVICE})"), ("in-process", IN_PROCESS), ("service", SERVICE))
LANES = (("process",), ("service",), ("in-process",))  # lanes of tiers run in turn; the first prints live
NO_TESTS = 5  # pytest's exit status when the selection is empty


def verdict(codes: dict[str, int]) -> int:
    """0 when every tier passed or had nothing selected and at least one ran tests; else the first failure's code
    (or 5 when no tier ran a test)."""
    failed = [code for code in codes.values() if code not in (0, NO_TESTS)]
    if failed:
        return failed[0]
    return NO_TESTS if all(code == NO_TESTS for code in codes.values()) else 0


def main(argv: list[str]) -> int:
    log_dir = Path(os.environ.get("MOON_TEST_OUTPUT", ROOT / "build" / "test-output"))
    log_dir.mkdir(parents=True, exist_ok=True)
    base = [sys.executable, "-m", "pytest", "-p", "no:xdist"]
    if any(arg == "-m" or arg.startswith("-m") and not arg.startswith("--") for arg in argv):
        return subprocess.call([*base, *argv], cwd=ROOT)
    expressions = dict(TIERS)
    procs: dict[str, subprocess.Popen] = {}
    logs: dict[str, Path] = {}  # logs of this invocation's own (a test may run the tiers inside the tiers)
    ended: dict[str, float] = {}
    waiting = [list(lane) for lane in LANES]
    running: dict[int, str] = {}
    start = time.monotonic()

    def advance(lane: int) -> None:
        if not waiting[lane]:
            running.pop(lane, None)
            return
        name = running[lane] = waiting[lane].pop(0)
        command = [*base, "-m", expressions[name], *argv]
        if lane == 0:
            procs[name] = subprocess.Popen(command, cwd=ROOT, start_new_session=True)
            return
        handle, path = tempfile.mkstemp(prefix=f".{name}-tier-", suffix=".log", dir=log_dir)
        logs[name] = Path(path)
        with os.fdopen(handle, "w") as log:
            procs[name] = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True)

    # The quiet lanes start first: the in-process tier collects while the process tier starts its servers.
    for lane in reversed(range(len(LANES))):
        advance(lane)
    try:
        while running:
            for lane, name in list(running.items()):
                if procs[name].poll() is not None:
                    ended[name] = time.monotonic() - start
                    advance(lane)
            time.sleep(0.5)
    except KeyboardInterrupt:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
        for proc in procs.values():
            proc.wait()
        raise
    for name, path in logs.items():
        text = path.read_text(errors="replace")
        kept = path.replace(log_dir / f"{name}-tier.log")
        print(f"\n===== {name} tier ({kept}) =====", flush=True)
        sys.stdout.write(text)
    print("\n===== tiers =====")
    codes = {name: procs[name].returncode for name, _ in TIERS}
    for name, expression in TIERS:
        state = {0: "passed", NO_TESTS: "no tests selected"}.get(codes[name], f"failed (exit {codes[name]})")
        print(f"{name:>10}: {state} in {ended[name]:.0f} s   (-m \"{expression}\")")
    code = verdict(codes)
    print(f"make test: {'passed' if code == 0 else 'FAILED'} in {time.monotonic() - start:.0f} s", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
