"""Wall time and CPU time of the test suite: serial, as `make test` runs it (three tiers in two lanes), and in
pytest-xdist workers; and the floor the CPU work sets.

    python3 bench/bench_suite.py --ways serial tiers 2 --out /tmp/suite.json        # the whole suite, three ways
    python3 bench/bench_suite.py --ways serial tiers -- tests/model                 # a selection

Each way runs in a fresh process: `serial` is `python -m pytest -q -p no:xdist [selection]`; `tiers` is
`python -m testkit.tiers [selection]` (what `make test` runs); a number N is `python -m pytest -q -n N --dist
loadgroup [selection]` (`make test TEST_WORKERS=N`); serial and xdist runs leave pytest's cache alone.
It reads the machine's CPU counters (/proc/stat) before and after: the CPU seconds every process spent in that
time, the suite's own and everything it starts (Ray, Airflow,
servers, `moon` processes) alike, so run it on an otherwise quiet machine. Printed per configuration: wall
seconds, CPU seconds, the share of the machine kept busy, and the floor, CPU seconds / cores: no number of
workers can finish the same work sooner on this machine. Workers add work of their own (each imports the
libraries and builds its session fixtures), which the CPU seconds show.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUMMARY = re.compile(r"(\d+) passed|(\d+) failed|(\d+) skipped|(\d+) errors?")
SUMMARY_LINE = re.compile(r"^=*\s*\d+ (passed|failed|skipped|errors?|deselected)\b.* in [\d.]+s")


def cpu_seconds() -> tuple[float, float]:
    """(busy, idle) seconds of all cores since boot, from the first line of /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / tick, idle / tick


def counts(output: str) -> dict[str, int]:
    """Tests passed, failed, skipped, in error, over every pytest summary line of the output (one per tier)."""
    found = {"passed": 0, "failed": 0, "skipped": 0, "errors": 0}
    tails = [line for line in output.splitlines() if SUMMARY_LINE.match(line.strip())]
    for passed, failed, skipped, errors in SUMMARY.findall("\n".join(tails)):
        for key, value in zip(found, (passed, failed, skipped, errors)):
            found[key] += int(value or 0)
    return found


def command(way: str, selection: list[str]) -> list[str]:
    if way == "tiers":
        return [sys.executable, "-m", "testkit.tiers", "-q", *selection]
    if way == "serial":
        return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", *selection]
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", str(int(way)), "--dist", "loadgroup",
            *selection]


def run(way: str, selection: list[str], timeout: float) -> dict:
    cmd = command(way, selection)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    busy0, idle0 = cpu_seconds()
    start = time.monotonic()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    wall = time.monotonic() - start
    busy1, idle1 = cpu_seconds()
    cores = os.cpu_count() or 1
    cpu = busy1 - busy0
    result = {"way": way, "exit_code": done.returncode, **counts(done.stdout), "wall_s": round(wall, 1),
              "cpu_s": round(cpu, 1), "busy_share": round(cpu / (cpu + idle1 - idle0), 3),
              "floor_s": round(cpu / cores, 1)}
    if done.returncode not in (0, 5):
        result["tail"] = (done.stdout + done.stderr)[-3000:]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ways", nargs="+", default=["serial", "tiers"],
                        help="serial, tiers (make test), or a number of xdist workers")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds one configuration may take")
    parser.add_argument("--out", type=Path, help="write the figures here as JSON")
    parser.add_argument("selection", nargs="*", help="pytest arguments after --: files, -m, -k")
    args = parser.parse_args(argv)
    if not Path("/proc/stat").exists():
        parser.error("needs Linux /proc/stat to read the machine's CPU time")
    runs = []
    for way in args.ways:
        if way not in ("serial", "tiers") and not way.isdigit():
            parser.error(f"--ways: {way!r} is not serial, tiers or a number of workers")
    print(f"{'way':>7} {'passed':>6} {'failed':>6} {'wall s':>8} {'CPU s':>8} {'busy':>6} {'floor s':>8}")
    for way in args.ways:
        result = run(way, args.selection, args.timeout)
        runs.append(result)
        print(f"{way:>7} {result['passed']:>6} {result['failed'] + result['errors']:>6} {result['wall_s']:>8} "
              f"{result['cpu_s']:>8} {result['busy_share']:>6.0%} {result['floor_s']:>8}", flush=True)
        if "tail" in result:
            print(result["tail"], file=sys.stderr)
    report = {"cores": os.cpu_count(), "machine": platform.processor() or platform.machine(),
              "selection": args.selection, "runs": runs}
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0 if all(r["exit_code"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
