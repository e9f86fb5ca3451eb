"""`make test`: the two tiers of the suite side by side, in two pytest processes.

The process tier (`slow`, `external`, `gpu`: Ray, servers, Airflow, killed processes) spends much of its time
waiting for processes to start and servers to answer; the in-process tier is pure computation. Run one after
the other on two cores, the first leaves a core idle for minutes; run together, the in-process tier fills it.
The two marker expressions are each other's complement, so every collected test runs exactly once.

The process tier prints as it goes; the in-process tier writes to a log that is printed when both have ended,
followed by one line per tier. The command fails when either tier fails, and when neither ran a test (pytest's
exit 5); a selection (extra pytest arguments, e.g. a file) that leaves one tier empty is fine. Arguments with
their own marker expression (`-m`) choose the tests themselves: they run in one pytest process.

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
TIERS = (("process", f"not ({IN_PROCESS})"), ("in-process", IN_PROCESS))
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
    # A log of this invocation's own (a test may run the tiers inside the tiers), kept as in-process-tier.log.
    handle, own_log = tempfile.mkstemp(prefix=".in-process-tier-", suffix=".log", dir=log_dir)
    os.close(handle)
    log_path = Path(own_log)
    base = [sys.executable, "-m", "pytest", "-p", "no:xdist"]
    if any(arg == "-m" or arg.startswith("-m") and not arg.startswith("--") for arg in argv):
        return subprocess.call([*base, *argv], cwd=ROOT)
    start = time.monotonic()
    with open(log_path, "w") as log:
        # The in-process tier starts first: it collects and finishes while the process tier starts its servers.
        quiet = subprocess.Popen([*base, "-m", TIERS[1][1], *argv], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        live = subprocess.Popen([*base, "-m", TIERS[0][1], *argv], cwd=ROOT, start_new_session=True)
        ended: dict[str, float] = {}
        try:
            while quiet.poll() is None or live.poll() is None:
                for name, proc in (("process", live), ("in-process", quiet)):
                    if proc.poll() is not None and name not in ended:
                        ended[name] = time.monotonic() - start
                time.sleep(0.5)
        except KeyboardInterrupt:
            for proc in (live, quiet):
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGINT)
            for proc in (live, quiet):
                proc.wait()
            raise
    for name, proc in (("process", live), ("in-process", quiet)):
        ended.setdefault(name, time.monotonic() - start)
    codes = {"process": live.returncode, "in-process": quiet.returncode}
    text = log_path.read_text(errors="replace")
    kept = log_path.replace(log_dir / "in-process-tier.log")
    print(f"\n===== in-process tier ({kept}) =====", flush=True)
    sys.stdout.write(text)
    print("\n===== tiers =====")
    for name, expression in TIERS:
        state = {0: "passed", NO_TESTS: "no tests selected"}.get(codes[name], f"failed (exit {codes[name]})")
        print(f"{name:>10}: {state} in {ended[name]:.0f} s   (-m \"{expression}\")")
    code = verdict(codes)
    print(f"make test: {'passed' if code == 0 else 'FAILED'} in {time.monotonic() - start:.0f} s", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
