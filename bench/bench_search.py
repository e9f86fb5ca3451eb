"""Search at catalogue scale: exact chunked search against faiss indexes on synthetic candidate embeddings.

    python3 bench/bench_search.py --out bench/results/raw/search-1m.json          # 1M candidates, dim 256
    python3 bench/bench_search.py --candidates 20000 --queries 200 --out r.json  # a smoke run

Candidates are unit vectors in clusters (like product embeddings: many near-duplicates of a kind), generated
chunk by chunk from fixed seeds; queries are noisy copies of random candidates. Each method runs in its own
process, so its peak resident memory (ru_maxrss, the process's high-water mark, Python and libraries
included) is its own:
- `exact-memory`: `model.search.exact_topk` over the candidates held in one float32 array, 65,536 at a time;
- `exact-parquet`: the same over a Parquet file read one row group at a time (how `moon eval --candidates
  catalogue` reads stored embeddings): memory bounded by a row group, not by the catalogue;
- `ivf-flat`, `ivf-sq8` (and `hnsw` when asked for): `model.search.FaissIndex` built over the candidates,
  searched at several nprobe (ef_search for HNSW); recall@10 is the share of the exact top 10 it returns.
Queries/s are over all queries in one call on one thread (OMP_NUM_THREADS=1). Figures are printed and written
as JSON; nothing is asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CHUNK = 65536
METHODS = ("exact-memory", "exact-parquet", "ivf-flat", "ivf-sq8", "hnsw")


def synthetic_chunks(count: int, dim: int, clusters: int, seed: int = 0, noise: float = 1.0, chunk: int = CHUNK):
    """Unit vectors around `clusters` random centres, generated chunk by chunk (the same on every call).
    noise 1: noise of about the centre's norm (cosine to the centre about 0.7); 2: about 0.45."""
    import numpy as np

    centres = np.random.default_rng(seed).standard_normal((clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    sigma = noise / np.sqrt(dim)
    for number, start in enumerate(range(0, count, chunk)):
        rng = np.random.default_rng([seed, number])
        n = min(chunk, count - start)
        x = centres[rng.integers(0, clusters, n)] + sigma * rng.standard_normal((n, dim)).astype(np.float32)
        yield x / np.linalg.norm(x, axis=1, keepdims=True)


def synthetic_queries(args):
    """Noisy copies of random candidates (fixed seeds)."""
    import numpy as np

    rng = np.random.default_rng([args.seed, 10**6])
    picks = np.sort(rng.choice(args.candidates, args.queries, replace=False))
    rows, offset = [], 0
    for chunk in synthetic_chunks(args.candidates, args.dim, args.clusters, args.seed, args.noise):
        local = picks[(picks >= offset) & (picks < offset + len(chunk))] - offset
        rows.append(chunk[local])
        offset += len(chunk)
    q = np.concatenate(rows)
    q = q + 0.5 / np.sqrt(args.dim) * rng.standard_normal(q.shape).astype(np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def run_method(args) -> dict:
    """One method in this process; returns its figures."""
    import numpy as np
    import torch

    from model.search import FaissIndex, array_chunks, exact_topk

    torch.set_num_threads(1)
    queries = synthetic_queries(args)
    baseline = peak_mib()
    out: dict = {"method": args.method, "queries": len(queries)}
    if args.method.startswith("exact"):
        if args.method == "exact-memory":
            data = np.empty((args.candidates, args.dim), dtype=np.float32)
            offset = 0
            for chunk in synthetic_chunks(args.candidates, args.dim, args.clusters, args.seed, args.noise):
                data[offset:offset + len(chunk)] = chunk
                offset += len(chunk)
            chunks = array_chunks(data, CHUNK)
        else:
            import pyarrow.parquet as pq

            parquet = pq.ParquetFile(args.parquet)

            def chunks():
                for group in range(parquet.num_row_groups):
                    column = parquet.read_row_group(group, columns=["c_mm"]).column(0).combine_chunks()
                    yield column.values.to_numpy(zero_copy_only=False).reshape(-1, args.dim)
        started = time.perf_counter()
        scores, index = exact_topk(queries, chunks(), 10, query_block=args.queries)
        seconds = time.perf_counter() - started
        out.update(seconds=seconds, queries_per_second=len(queries) / seconds)
        if args.truth:
            np.save(args.truth, index.numpy())
    else:
        import faiss

        faiss.omp_set_num_threads(1)
        truth = np.load(args.truth)
        data = np.empty((args.candidates, args.dim), dtype=np.float32)
        offset = 0
        for chunk in synthetic_chunks(args.candidates, args.dim, args.clusters, args.seed, args.noise):
            data[offset:offset + len(chunk)] = chunk
            offset += len(chunk)
        started = time.perf_counter()
        index = FaissIndex(args.dim, args.method, lists=args.lists or None).build(
            array_chunks(data, CHUNK), len(data))
        out["build_seconds"] = time.perf_counter() - started
        out["lists"] = getattr(index.index, "nlist", None)
        del data  # the index holds its own copy (or codes): what a search process keeps
        settings = []
        knobs = (8, 16, 32, 64, 128) if args.method != "hnsw" else (32, 64, 128, 256)
        for knob in knobs:
            if args.method == "hnsw":
                index.index.hnsw.efSearch = knob
            else:
                index.index.nprobe = min(knob, index.index.nlist)
            started = time.perf_counter()
            _, found = index.search(queries, 10)
            seconds = time.perf_counter() - started
            found = found.numpy()
            recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth)]))
            settings.append({"nprobe" if args.method != "hnsw" else "ef_search": knob,
                             "queries_per_second": len(queries) / seconds, "recall_at_10": recall})
        out["settings"] = settings
    out["peak_rss_mib"] = peak_mib()
    out["peak_rss_mib_before_candidates"] = baseline
    return out


def write_parquet(args, path: str) -> float:
    """The candidates as a catalogue embeddings file (fixed-size float32 lists, row groups of 8192)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    started = time.perf_counter()
    schema = pa.schema([pa.field("c_mm", pa.list_(pa.float32(), args.dim))])
    with pq.ParquetWriter(path, schema) as writer:
        for chunk in synthetic_chunks(args.candidates, args.dim, args.clusters, args.seed, args.noise):
            values = pa.FixedSizeListArray.from_arrays(pa.array(chunk.reshape(-1)), args.dim)
            writer.write_table(pa.table({"c_mm": values}, schema=schema), row_group_size=8192)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--clusters", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise", type=float, default=1.0,
                        help="spread around the cluster centres (1: cosine to the centre about 0.7; 2: about 0.45)")
    parser.add_argument("--lists", type=int, default=0, help="IVF lists (default: about sqrt(candidates))")
    parser.add_argument("--methods", default="exact-memory,exact-parquet,ivf-flat,ivf-sq8",
                        help=f"comma-separated, from {', '.join(METHODS)} (exact-memory always runs first)")
    parser.add_argument("--out", help="JSON results file")
    parser.add_argument("--method", help=argparse.SUPPRESS)  # a child process: run one method
    parser.add_argument("--truth", help=argparse.SUPPRESS)
    parser.add_argument("--parquet", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.method:
        print(json.dumps(run_method(args)))
        return 0

    methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown methods {unknown}")
    methods = ["exact-memory"] + [m for m in methods if m != "exact-memory"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        truth, parquet = os.path.join(tmp, "truth.npy"), os.path.join(tmp, "candidates.parquet")
        setup = {}
        if "exact-parquet" in methods:
            setup["parquet_write_seconds"] = write_parquet(args, parquet)
        for method in methods:
            command = [sys.executable, __file__, "--method", method, "--truth", truth, "--parquet", parquet,
                       "--candidates", str(args.candidates), "--dim", str(args.dim), "--queries", str(args.queries),
                       "--clusters", str(args.clusters), "--seed", str(args.seed), "--lists", str(args.lists),
                       "--noise", str(args.noise)]
            done = subprocess.run(command, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                print(done.stderr[-2000:], file=sys.stderr)
                return done.returncode
            result = json.loads(done.stdout.strip().splitlines()[-1])
            results.append(result)
            _print(result, args)
    report = {"candidates": args.candidates, "dim": args.dim, "queries": args.queries, "clusters": args.clusters,
              "noise": args.noise, "threads": 1, "setup": setup, "results": results,
              "candidate_bytes": args.candidates * args.dim * 4}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2))
        print(f"written {args.out}")
    return 0


def _print(result: dict, args) -> None:
    name, peak = result["method"], result["peak_rss_mib"]
    if "settings" in result:
        print(f"{name:<14} built in {result['build_seconds']:.1f}s ({result.get('lists') or '-'} lists), "
              f"peak {peak:,.0f} MiB")
        for s in result["settings"]:
            knob = "nprobe" if "nprobe" in s else "ef_search"
            print(f"{'':<14} {knob} {s[knob]:>4}: {s['queries_per_second']:>9,.0f} queries/s, "
                  f"recall@10 {s['recall_at_10']:.3f}")
    else:
        print(f"{name:<14} {result['queries_per_second']:>9,.1f} queries/s ({result['seconds']:.1f}s for "
              f"{result['queries']} queries over {args.candidates:,} candidates), peak {peak:,.0f} MiB")


if __name__ == "__main__":
    sys.exit(main())
