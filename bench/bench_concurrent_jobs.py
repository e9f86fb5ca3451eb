"""Jobs in flight on one Ray cluster: several `moon run` drivers at once, each sizing its GPU pools from the
whole cluster (no `resources.concurrency`), and whether and when each finishes.

    python3 bench/bench_concurrent_jobs.py --jobs 4 --out /tmp/jobs.json             # declared GPUs, CPU backends
    python3 bench/bench_concurrent_jobs.py --address auto --config gpu.yaml --jobs 2   # on a real GPU cluster

Without `--address`, a local Ray head is started that declares `--gpus` GPUs (Ray schedules by the count; no
device is touched) and the stages run their CPU backends with the resources of the `gpu` profile's image and
filter stages (0.75 and 0.25 GPU: one actor of each per GPU), so that every job asks for every GPU as its GPU
pools' fewest actors, as on a cluster (docs/operations.md, *Sizing*). Each job is the bundled sample's first
`--products` products in shards of 4, run with `--ray-address` into its own folder. A job that has not ended
after `--timeout` seconds is reported as hung and killed. Printed and written as JSON: per job its exit status,
seconds and rows in/out; nothing is asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The gpu profile's GPU shares with the CPU backends of the local profile, and CPUs that fit a 6-CPU head.
DECLARED_GPU_CONFIG = """\
extends: local
stages:
  image_variants:
    resources: {num_gpus: 0.75, num_cpus: 0.5, batch_size: 4}
  filter:
    resources: {num_gpus: 0.25, num_cpus: 0.25, batch_size: 4}
"""
SUMMARY = re.compile(r"rows in (\d+)\s+out (\d+)\s+quarantined (\d+)")


def run_jobs(address: str, config: Path, jobs: int, products: int, timeout: float, work: Path,
             env: dict[str, str]) -> list[dict]:
    sample = ROOT / "augment" / "sample" / "myntra_sample.parquet"
    started = time.monotonic()
    procs = []
    for job in range(jobs):
        command = [sys.executable, "-m", "augment.cli", "run", "--input", str(sample), "--limit", str(products),
                   "--shard-size", "4", "--no-progress", "--config", str(config), "--ray-address", address,
                   "--output", str(work / f"job{job}")]
        log = open(work / f"job{job}.log", "w")
        procs.append((subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True), log))
    results: list[dict | None] = [None] * jobs
    while any(r is None for r in results):
        for job, (proc, log) in enumerate(procs):
            if results[job] is None and (proc.poll() is not None or time.monotonic() - started > timeout):
                hung = proc.poll() is None
                if hung:
                    os.killpg(proc.pid, 9)
                    proc.wait()
                log.close()
                text = (work / f"job{job}.log").read_text(errors="replace")
                rows = SUMMARY.search(text)
                results[job] = {"job": job, "status": "hung" if hung else proc.returncode,
                                "seconds": round(time.monotonic() - started, 1),
                                "rows": dict(zip(("in", "out", "quarantined"), map(int, rows.groups()))) if rows
                                else None}
                print(f"job {job}: {results[job]['status']} after {results[job]['seconds']} s, rows "
                      f"{results[job]['rows']}", flush=True)
        time.sleep(0.5)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--gpus", type=int, default=2, help="GPUs the local head declares")
    parser.add_argument("--cpus", type=int, default=6, help="CPUs the local head declares")
    parser.add_argument("--products", type=int, default=40)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--address", help="a running cluster (its jobs' config: --config); default: a local head")
    parser.add_argument("--config", help="run config of the jobs (default: CPU backends with the gpu shares)")
    parser.add_argument("--out")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="moonjobs-") as tmp:
        work = Path(tmp)
        config = Path(args.config) if args.config else work / "config.yaml"
        if not args.config:
            config.write_text(DECLARED_GPU_CONFIG)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
        if args.address:
            results = run_jobs(args.address, config, args.jobs, args.products, args.timeout, work, env)
        else:
            from augment.dev.local_stack import RayHead

            with RayHead(num_cpus=args.cpus, num_gpus=args.gpus) as head:
                env.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": head.token})
                results = run_jobs(head.address, config, args.jobs, args.products, args.timeout, work, env)
    finished = sum(r["status"] == 0 for r in results)
    print(f"{finished} of {args.jobs} jobs finished; slowest {max(r['seconds'] for r in results)} s")
    if args.out:
        Path(args.out).write_text(json.dumps({"jobs": args.jobs, "gpus": args.gpus, "cpus": args.cpus,
                                              "products": args.products, "address": args.address or "local",
                                              "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
