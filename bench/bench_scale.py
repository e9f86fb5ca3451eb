"""Scale: planning a 5M-product catalogue once, the overhead of one job on its saved plan, the DAG's plan task, and
`validate` and the report on a run of 156k shards. Not a test: it prints figures and writes them as JSON.

    python bench/bench_scale.py --rows 5000000 --out bench/results/raw/scale-5m.json
    python bench/bench_scale.py dag --rows 50000 --max-tasks 32 --out bench/results/raw/dag-50k.json

The catalogue (`product_id`, `title`, `image_uri`) is generated: titles from the bundled sample, image paths
pointing at its few photos (written once to the work folder), one product id in 1,000 repeating an earlier one.
Each measurement runs in a fresh child process, so that its time includes what a job really pays (imports,
reading the plan) and its peak memory (VmHWM) is its own:
- plan: `moon run --plan-only` (augment.plan.plan_run): time and peak memory;
- job: `moon run --batch N --no-ray` on one batch of one shard with the validate stage, at the full size and at
  1,000 rows: the process's wall time minus the time its stages and writes took (`this_invocation`), and, inside
  that, the time to read the job's part of the saved plan (augment.plan.load_batch);
- dag_plan: the DAG's plan task body (augment.orchestrate.tasks.plan) on a fresh folder and on a planned one:
  time, the size of its XCom values (return value and `run`);
- validate / report: on the planned run with one synthesised commit record per shard (156,250 at 5M rows of 32),
  every data file a hard link to one real shard: `tasks.check_run` and `report.write_report`, time and memory.

`dag` runs the moon_augment DAG for real (`dag.test()`, a local Ray head started and stopped here, CPU backends)
on a generated catalogue, and prints its wall time, batches and each job's overhead (the job's wall time in Ray
minus the time its shards' stages and writes took).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SAMPLE = ROOT / "augment" / "sample" / "myntra_sample.parquet"
PHOTOS = 4  # distinct images the catalogue points at
MB = 2**20
LINKS_PER_COPY = 50_000


def peak_mb() -> float:
    """This process's peak resident memory (VmHWM: of its own address space; ru_maxrss would carry the parent's
    peak over the fork and exec that started it)."""
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    return round(int(fields["VmHWM"].split()[0]) / 1024, 1)


# ---------------------------------------------------------------------------------------------------------------
# Input
# ---------------------------------------------------------------------------------------------------------------
def build_catalogue(path: Path, rows: int, images: Path) -> None:
    """`rows` products: sample titles with a running number, image paths cycling over a few sample photos."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    sample = pq.read_table(SAMPLE, columns=["title", "image"])
    images.mkdir(parents=True, exist_ok=True)
    photos = []
    for i, data in enumerate(sample.column("image").to_pylist()[:PHOTOS]):
        photo = images / f"photo-{i}.jpg"
        photo.write_bytes(data)
        photos.append(str(photo))
    titles = sample.column("title").to_pylist()
    step = 1_000_000
    with pq.ParquetWriter(path, pa.schema([("product_id", pa.string()), ("title", pa.string()),
                                           ("image_uri", pa.string())]), compression="zstd") as writer:
        for start in range(0, rows, step):
            index = np.arange(start, min(rows, start + step))
            ids = np.where((index % 1000 == 999) & (index > 1000), index - 500, index)  # 1 in 1,000 repeats
            pid = pc.binary_join_element_wise("p", pa.array(ids).cast(pa.string()), "")
            title = pc.binary_join_element_wise(pa.array([titles[i % len(titles)] for i in index % len(titles)]),
                                                pa.array(index).cast(pa.string()), " #")
            uri = pa.array([photos[i % len(photos)] for i in index % len(photos)])
            writer.write_table(pa.table({"product_id": pid, "title": title, "image_uri": uri}),
                               row_group_size=100_000)


# ---------------------------------------------------------------------------------------------------------------
# Child steps: one measurement each, JSON on stdout
# ---------------------------------------------------------------------------------------------------------------
def config(shard_size: int, stages: str = "validate"):
    from augment import config as C

    return C.load_for_run(None, None, stages=stages, shard_size=shard_size, progress=False)


def cpu_seconds() -> float:
    """CPU time of this process (user + system, every thread): less sensitive than wall time to what else runs on
    a shared machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def step_plan(args) -> dict:
    from augment import plan as P

    cfg = config(args.shard_size)
    base = peak_mb()
    started, cpu = time.perf_counter(), cpu_seconds()
    plan = P.plan_run(args.input, args.output, cfg)
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 2), "cpu_seconds": round(cpu_seconds() - cpu, 2), "peak_rss_mb": peak_mb(),
            "rss_before_mb": base, "shards": len(plan.shards),
            "rows": plan.rows_total, "batches": plan.batches, "shards_per_batch": plan.shards_per_batch}


def step_load_batch(args) -> dict:
    from augment import plan as P

    cfg = config(args.shard_size)
    started = time.perf_counter()
    plan = P.load_batch(args.output, cfg, batch=args.batch, shards_per_batch=1)
    return {"seconds": round(time.perf_counter() - started, 3), "peak_rss_mb": peak_mb(), "shards": len(plan.shards)}


def step_dag_plan(args) -> dict:
    from augment.orchestrate import tasks as T

    request = T.RunRequest.from_params({"input_uri": args.input, "output_uri": args.output, "stages": ["validate"]},
                                       "bench")
    started = time.perf_counter()
    planned = T.plan(request, max_map_length=1024)
    seconds = time.perf_counter() - started
    run = {k: planned[k] for k in ("run_uri", "run_id", "config_hash", "shards", "batches", "shards_per_batch")}
    return {"seconds": round(seconds, 2), "peak_rss_mb": peak_mb(), "mapped_tasks": len(planned["jobs"]),
            "shards_per_batch": planned["shards_per_batch"], "xcom_return_bytes": len(json.dumps(planned["jobs"])),
            "xcom_run_bytes": len(json.dumps(run))}


def step_validate(args) -> dict:
    from augment.orchestrate import tasks as T

    started = time.perf_counter()
    totals = T.check_run(args.output)
    return {"seconds": round(time.perf_counter() - started, 2), "peak_rss_mb": peak_mb(), "shards": totals["shards"],
            "rows_in": totals["rows_in"]}


def step_report(args) -> dict:
    from augment.ops import report

    started = time.perf_counter()
    report.write_report(args.output)
    return {"seconds": round(time.perf_counter() - started, 2), "peak_rss_mb": peak_mb()}


STEPS = {"plan": step_plan, "load_batch": step_load_batch, "dag_plan": step_dag_plan, "validate": step_validate,
         "report": step_report}


def child(step: str, **kwargs) -> dict:
    argv = [sys.executable, __file__, "step", step] + [f"--{k.replace('_', '-')}={v}" for k, v in kwargs.items()]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"step {step} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def job(input_uri: str, output: str, shard_size: int, batch: int) -> dict:
    """One `moon run --batch` job as Airflow runs it (here in this machine's process, no Ray): its overhead is
    the process's wall time less the time its stages and writes took."""
    argv = [sys.executable, "-m", "augment.cli", "run", "--input", input_uri, "--output", output, "--shard-size",
            str(shard_size), "--stages", "validate", "--batch", str(batch), "--shards-per-batch", "1", "--no-ray",
            "--no-progress", "--json"]
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=ROOT)
    wall = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"job failed:\n{done.stderr[-3000:]}")
    summary = json.loads(done.stdout)
    work = summary["this_invocation"]["wall_seconds"]
    return {"wall_seconds": round(wall, 2), "stage_seconds": work, "overhead_seconds": round(wall - work, 2)}


def job_overheads(runs: dict[str, tuple[str, str, int]], shard_size: int, repeats: int) -> dict:
    """`repeats` jobs on each run (name -> input, run folder, shards), interleaved so that the machine's other
    load falls on both alike."""
    out: dict = {name: {"jobs": [], "load_batch_seconds": []} for name in runs}
    for k in range(repeats):
        for name, (input_uri, output, shards) in runs.items():
            b = shards * k // repeats
            out[name]["jobs"].append(job(input_uri, output, shard_size, b))
            out[name]["load_batch_seconds"].append(
                child("load_batch", input=input_uri, output=output, shard_size=shard_size, batch=b)["seconds"])
    for figures in out.values():
        figures["overhead_seconds_median"] = statistics.median(j["overhead_seconds"] for j in figures["jobs"])
        figures["load_batch_seconds_median"] = statistics.median(figures["load_batch_seconds"])
    return out


def synthesise_manifest(run: Path, shard_file: Path) -> int:
    """One commit record per shard of the saved plan, every data file a hard link to `shard_file`."""
    import pyarrow.parquet as pq

    from augment.core import manifest

    header = json.loads((run / "_plan" / "plan.json").read_text())
    table = pq.read_table(run / "_plan" / "shards.parquet", columns=["shard_id", "row_start", "row_stop"])
    data = run / manifest.DATA_DIR
    data.mkdir(exist_ok=True)
    base = dict(source_uri=header["input_uri"], rows_quarantined=0, quarantine_reasons={}, quarantine_file=None,
                checksum="0" * 64, bytes=shard_file.stat().st_size, config_hash=header["identity"]["config_hash"],
                code_version="bench", run_id=header["run_id"], schema_version="bench",
                timings={"validate": 0.01, "write": 0.01})
    links, source = 0, shard_file
    with open(run / manifest.MANIFEST, "w") as out:
        for sid, start, stop in zip(*(table.column(c).to_pylist() for c in ("shard_id", "row_start", "row_stop"))):
            target = data / f"{sid}.parquet"
            if not target.exists():
                if links % LINKS_PER_COPY == 0:  # a file takes at most 65,000 hard links (ext4)
                    source = data.parent / f"shard-copy-{links // LINKS_PER_COPY}.parquet"
                    shutil.copyfile(shard_file, source)
                os.link(source, target)
                links += 1
            record = manifest.ShardRecord(shard_id=sid, row_start=start, row_stop=stop, rows_in=stop - start,
                                          rows_out=stop - start, data_file=f"data/{sid}.parquet", **base)
            out.write(record.to_json() + "\n")
    return table.num_rows


def scale(args) -> dict:
    work = Path(args.work or tempfile.mkdtemp(prefix="moon-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {"rows": args.rows, "shard_size": args.shard_size}
    try:
        big, small = work / "catalogue.parquet", work / "catalogue-1k.parquet"
        started = time.perf_counter()
        build_catalogue(big, args.rows, work / "images")
        build_catalogue(small, 1000, work / "images")
        results["build_seconds"] = round(time.perf_counter() - started, 1)
        print(f"catalogue: {args.rows} rows in {results['build_seconds']} s ({big.stat().st_size / MB:.0f} MB)")
        # 1. plan once
        results["plan"] = child("plan", input=big, output=work / "run", shard_size=args.shard_size)
        p = results["plan"]
        print(f"plan: {p['rows']} rows -> {p['shards']} shards in {p['seconds']} s ({p['cpu_seconds']} s CPU), "
              f"peak RSS {p['peak_rss_mb']} MB (targets < 30 s, < 1024 MB)")
        results["plan_again"] = child("plan", input=big, output=work / "run", shard_size=args.shard_size)
        print(f"plan of the planned folder (saved plan read back): {results['plan_again']['seconds']} s, "
              f"peak RSS {results['plan_again']['peak_rss_mb']} MB")
        # 2. one job's overhead on the saved plan, at full size and at 1k rows
        child("plan", input=small, output=work / "run-1k", shard_size=args.shard_size)
        jobs = job_overheads({"job_full": (str(big), str(work / "run"), p["shards"]),
                              "job_1k": (str(small), str(work / "run-1k"), 1000 // args.shard_size)},
                             args.shard_size, args.repeats)
        results |= jobs
        ratio = results["job_full"]["overhead_seconds_median"] / results["job_1k"]["overhead_seconds_median"]
        results["job_overhead_ratio"] = round(ratio, 2)
        print(f"job overhead (process wall - stage work), median of {args.repeats}: "
              f"{results['job_full']['overhead_seconds_median']} s at {args.rows} rows, "
              f"{results['job_1k']['overhead_seconds_median']} s at 1k rows: ratio {ratio:.2f} (target < 2)")
        print(f"  of which reading the job's part of the plan: {results['job_full']['load_batch_seconds_median']} s "
              f"vs {results['job_1k']['load_batch_seconds_median']} s")
        # 3. the DAG's plan task
        results["dag_plan"] = child("dag_plan", input=big, output=work / "dag-run", shard_size=args.shard_size)
        results["dag_plan_again"] = child("dag_plan", input=big, output=work / "dag-run", shard_size=args.shard_size)
        d = results["dag_plan"]
        print(f"DAG plan task: {d['seconds']} s fresh, {results['dag_plan_again']['seconds']} s on a planned folder; "
              f"{d['mapped_tasks']} mapped tasks of {d['shards_per_batch']} shards; XCom {d['xcom_return_bytes']} "
              f"bytes (return value) + {d['xcom_run_bytes']} bytes (run); peak RSS {d['peak_rss_mb']} MB")
        # 4. validate and the report on one commit record per shard
        shard_file = next((work / "run" / "data").glob("*.parquet"))
        started = time.perf_counter()
        results["manifest_records"] = synthesise_manifest(work / "run", shard_file)
        print(f"synthesised {results['manifest_records']} commit records in {time.perf_counter() - started:.0f} s")
        results["validate"] = child("validate", output=work / "run")
        print(f"validate: {results['validate']['seconds']} s, peak RSS {results['validate']['peak_rss_mb']} MB")
        results["report"] = child("report", output=work / "run")
        print(f"report: {results['report']['seconds']} s, peak RSS {results['report']['peak_rss_mb']} MB")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return results


# ---------------------------------------------------------------------------------------------------------------
# A real DAG run
# ---------------------------------------------------------------------------------------------------------------
def dag_run(args) -> dict:
    import secrets

    work = Path(args.work or tempfile.mkdtemp(prefix="moon-dag-"))
    work.mkdir(parents=True, exist_ok=True)
    home = work / "airflow"
    token = secrets.token_hex(24)
    os.environ.update({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
                       "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
                       "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token})
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils import db

    from augment.core import manifest
    from augment.dev.local_stack import RayHead

    catalogue = work / "catalogue.parquet"
    build_catalogue(catalogue, args.rows, work / "images")
    db.initdb()
    head = RayHead(num_cpus=os.cpu_count() or 2, token=token).start()
    try:
        os.environ["AIRFLOW_CONN_RAY_DEFAULT"] = json.dumps(head.connection())
        dag = DagBag(dag_folder=str(ROOT / "dags")).dags["moon_augment"]
        conf = {"input_uri": str(catalogue), "output_uri": str(work / "runs" / "{run_id}"),
                "stages": args.stages.split(","), "max_tasks": args.max_tasks,
                "env_vars": {"MOON_DAG_BENCH": "1"}}
        started = time.perf_counter()
        result = dag.test(run_conf=conf)
        wall = time.perf_counter() - started
        run_dir = next((work / "runs").iterdir())
        totals = manifest.totals(manifest.iter_records(str(run_dir)))
        jobs = ray_job_overheads(head, run_dir)
    finally:
        head.stop()
        shutil.rmtree(head.temp_dir, ignore_errors=True)
    out = {"rows": args.rows, "shard_size": config(None).run.shard_size, "max_tasks": args.max_tasks, "stages": args.stages,
           "state": str(result.state), "wall_seconds": round(wall, 1), "shards": totals["shards"],
           "rows_in": totals["rows_in"], "rows_out": totals["rows_out"],
           "rows_quarantined": totals["rows_quarantined"], "jobs": jobs}
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return out


def ray_job_overheads(head, run_dir: Path) -> dict:
    """Each succeeded Ray job's wall time, and its overhead: wall less the stage and write seconds of its shards."""
    from augment.core import manifest
    from augment.orchestrate.ray_jobs import endpoint_from_connection, make_client
    from airflow.sdk import Connection

    conn = Connection(conn_id="ray_default", **{k: v for k, v in head.connection().items() if k != "description"})
    client = make_client(endpoint_from_connection(conn))
    records = list(manifest.iter_records(str(run_dir)))
    walls, overheads = [], []
    for info in client.list_jobs():
        meta = info.metadata or {}
        if str(info.status) != "SUCCEEDED" or "moon_batch" not in meta or not info.end_time:
            continue
        wall = (info.end_time - info.start_time) / 1000
        walls.append(wall)
        log = client.get_job_logs(info.submission_id)
        summary = _summary_from_log(log)
        if summary is not None:
            overheads.append(wall - summary)
    return {"jobs": len(walls), "records": len(records),
            "wall_seconds_median": round(statistics.median(walls), 2) if walls else None,
            "overhead_seconds_median": round(statistics.median(overheads), 2) if overheads else None,
            "overhead_seconds_max": round(max(overheads), 2) if overheads else None}


def _summary_from_log(log: str) -> float | None:
    """The `this invocation: N products in S s` of a job's log."""
    import re

    found = re.findall(r"this invocation: \d+ products in ([0-9.]+) s", log)
    return float(found[-1]) if found else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode")
    step = sub.add_parser("step")
    step.add_argument("name", choices=sorted(STEPS))
    for name in ("input", "output"):
        step.add_argument(f"--{name}")
    step.add_argument("--shard-size", type=int, default=32)
    step.add_argument("--batch", type=int, default=0)
    dag = sub.add_parser("dag", help="a real moon_augment DAG run on a local Ray head")
    dag.add_argument("--rows", type=int, default=50_000)
    dag.add_argument("--max-tasks", type=int, default=32)
    dag.add_argument("--stages", default="validate,ner")
    for p in (parser, dag):
        p.add_argument("--work", help="work folder (default: a temp folder, removed at the end)")
        p.add_argument("--keep", action="store_true", help="keep the work folder")
        p.add_argument("--out", help="write the figures as JSON here")
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--shard-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5, help="jobs measured at each size")
    args = parser.parse_args()
    if args.mode == "step":
        print(json.dumps(STEPS[args.name](args)))
        return 0
    results = dag_run(args) if args.mode == "dag" else scale(args)
    results |= {"command": " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]),
                "hardware": {"cpus": os.cpu_count(), "machine": platform.machine(),
                             "python": platform.python_version()},
                "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    print(json.dumps(results, indent=2))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
