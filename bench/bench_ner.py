"""Throughput of the NER pipeline on catalogue titles, against a bare spaCy entity ruler, on one CPU core.

    python bench/bench_ner.py /path/to/catalog_labels.csv.gz [--limit N] [--out result.json]

Prints titles/s of
  (a) bare: spacy.blank("en") with one entity ruler holding the same brand phrases as the pipeline (without their
      ids: spaCy's entity ruler runs about four times slower with thousands of distinct ids, and a slowed-down
      baseline would flatter the ratio),
  (b) pipeline: `extract(titles)` of the bundled English pipeline (cleaning, all rule components, offsets back
      to the title), built afresh for each run like (a), so that no run profits from a cache an earlier one filled,
  (c) ray: the `ner` stage as `moon run` runs it (the runner's StageChain, Arrow batches) on a Ray Data actor
      pool of one actor on one CPU,
and the ratios b/a and c/b (targets: b/a >= 0.5, c/b >= 0.85). (c) is timed from the moment its actor finished
loading the pipeline to the last row, so it compares steady-state work with (a) and (b); the total including
actor set-up is printed beside it, and so is the CPU time the actor's calling thread spent in the stage (per core,
without Ray's transfers), compared with (b) in CPU time. Ray Data's input blocks hold at most one batch, so each
actor call gets one whole batch. Titles come from the `productDisplayName` column (or `title`).
Run with OMP_NUM_THREADS=1 on an otherwise idle machine; each figure is the best of `--repeat` runs. (a) and
(b) are timed in CPU seconds of this process (`time.process_time`), which other work on a shared machine
disturbs far less than wall-clock time; the wall-clock figures are printed beside them.
"""
from __future__ import annotations

import argparse
import csv
import gc
import gzip
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def read_titles(path: str, limit: int | None) -> list[str]:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        column = "productDisplayName" if "productDisplayName" in (reader.fieldnames or ()) else "title"
        titles = [row.get(column) or "" for row in reader]
    return titles[:limit] if limit else titles


def brand_patterns(nlp) -> list[dict]:
    """The BRAND patterns of the pipeline's lexicon ruler, in entity-ruler form."""
    from ner.lexicon import read_lexicon

    cfg = nlp.config["components"]["moon_lexicon_ruler"]
    specs = list(cfg["lexicons"]) + list(cfg["extra_lexicons"])
    return [p for spec in specs for p in read_lexicon(spec) if p["label"] == "BRAND"]


def bench_bare(titles: list[str], patterns: list[dict], batch_size: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of the bare entity ruler over the titles."""
    import spacy

    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler", config={"phrase_matcher_attr": "LOWER"})
    ruler.add_patterns([{"label": p["label"], "pattern": p["pattern"]} for p in patterns])
    for _ in nlp.pipe(titles[:500]):  # warm-up
        pass
    gc.collect()  # what earlier runs left is collected now, not inside the timed part
    cpu, wall = time.process_time(), time.perf_counter()
    for doc in nlp.pipe(titles, batch_size=batch_size):
        [(e.label_, e.start_char, e.end_char, e.ent_id_) for e in doc.ents]
    return time.process_time() - cpu, time.perf_counter() - wall


def fresh_extractor(batch_size: int):
    """A newly built pipeline: its tokenizer cache and string store have seen no title yet, as in (a) and in (c)'s
    actor (a pipeline that has already run over these titles would flatter (b) against both)."""
    from ner.extractor import EntityExtractor
    from ner.pipeline import build_pipeline

    return EntityExtractor(build_pipeline("en"), batch_size=batch_size)


def bench_pipeline(extractor, titles: list[str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of `extractor.extract` over the titles, after the same warm-up as (a)."""
    extractor.extract(titles[:500])  # warm-up
    gc.collect()  # what earlier runs left is collected now, not inside the timed part
    cpu, wall = time.process_time(), time.perf_counter()
    extractor.extract(titles)
    return time.process_time() - cpu, time.perf_counter() - wall


def _chain_class():
    """The runner's StageChain (what `moon run` gives a Ray actor), noting when it was ready and its CPU time."""
    from augment.pipeline import StageChain

    class TimedChain(StageChain):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.ready_at = time.time()

        def __call__(self, table):
            import pyarrow as pa

            cpu = time.thread_time()  # this thread only: Ray's own threads in the actor move data meanwhile
            out = super().__call__(table)
            n = out.num_rows
            out = out.append_column("_ready_at", pa.array([self.ready_at] * n, pa.float64()))
            # CPU seconds of this call, spread over its rows: the actor's own work, which load elsewhere barely disturbs
            return out.append_column("_cpu_s", pa.array([(time.thread_time() - cpu) / max(n, 1)] * n, pa.float64()))

    return TimedChain


def bench_ray(titles: list[str], batch_size: int, repeat: int) -> list[tuple[float, float, float]]:
    """(steady seconds, total seconds, actor CPU seconds) of each of `repeat` runs of the ner stage as `moon run`
    runs it: the runner's StageChain on a one-actor pool (a new actor, so a new pipeline, for each run), Arrow
    batches, input already in the object store."""
    import pyarrow as pa
    import ray

    from augment.core import schema as S
    from augment.pipeline import StageSpec
    from augment.stages.ner.spacy_rules import NerStage

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        from ray.data import DataContext

        DataContext.get_current().enable_progress_bars = False
        n = len(titles)
        table = pa.table({
            "product_id": [str(i) for i in range(n)], "title": titles, "catalog_brand": pa.nulls(n, pa.string()),
            S.QUARANTINE_REASON: pa.nulls(n, pa.string()), S.QUARANTINE_STAGE: pa.nulls(n, pa.string()),
            S.QUARANTINE_DETAIL: pa.nulls(n, pa.string()),
        })
        # blocks of at most one batch, so that each actor call gets one whole batch (no short remainder calls)
        source = ray.data.from_arrow(table).repartition(max(1, -(-n // batch_size))).materialize()
        spec = StageSpec("ner", "spacy_rules", NerStage.options_cls())
        return [_ray_run(source, spec, batch_size, n) for _ in range(repeat)]
    finally:
        ray.shutdown()


def _ray_run(source, spec, batch_size: int, n: int) -> tuple[float, float, float]:
    import ray

    from augment.stages import RunContext

    start = time.time()
    ds = source.map_batches(
        _chain_class(), fn_constructor_kwargs={"specs": [spec], "context": RunContext()}, batch_size=batch_size,
        batch_format="pyarrow", zero_copy_batch=False, compute=ray.data.ActorPoolStrategy(size=1), num_cpus=1)
    ready = None
    rows = 0
    cpu = 0.0
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        rows += batch.num_rows
        first = batch.column("_ready_at")[0].as_py()
        ready = first if ready is None else min(ready, first)
        cpu += sum(batch.column("_cpu_s").to_pylist())
    end = time.time()
    if rows != n:
        raise RuntimeError(f"ray stage returned {rows} rows for {n} titles")
    return end - ready, end - start, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("catalog", help="catalogue CSV(.gz) with a productDisplayName or title column")
    parser.add_argument("--limit", type=int, default=None, help="use the first N titles only")
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=5, help="runs of (a), (b) and (c); the best of each counts")
    parser.add_argument("--no-ray", action="store_true", help="skip (c)")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    titles = read_titles(args.catalog, args.limit)
    load_start = time.perf_counter()
    extractor = fresh_extractor(args.batch_size)
    load_s = time.perf_counter() - load_start
    patterns = brand_patterns(extractor.nlp)

    bare_runs, pipe_runs = [], []
    for k in range(args.repeat):  # interleaved, so that both see the same machine
        if k:
            extractor = fresh_extractor(args.batch_size)
        bare_runs.append(bench_bare(titles, patterns, args.batch_size))
        pipe_runs.append(bench_pipeline(extractor, titles))
    bare_s = min(r[0] for r in bare_runs)
    pipe_s = min(r[0] for r in pipe_runs)
    result = {
        "titles": len(titles),
        "brand_phrases": len(patterns),
        "pipeline_load_s": round(load_s, 2),
        "a_bare_titles_per_s": round(len(titles) / bare_s),
        "b_pipeline_titles_per_s": round(len(titles) / pipe_s),
        "a_bare_titles_per_wall_s": round(len(titles) / min(r[1] for r in bare_runs)),
        "b_pipeline_titles_per_wall_s": round(len(titles) / min(r[1] for r in pipe_runs)),
        "load_average": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }
    result["b_over_a"] = round(result["b_pipeline_titles_per_s"] / result["a_bare_titles_per_s"], 3)
    if not args.no_ray:
        ray_runs = bench_ray(titles, args.batch_size, args.repeat)
        steady_s = min(r[0] for r in ray_runs)
        total_s = min(r[1] for r in ray_runs)
        actor_cpu_s = min(r[2] for r in ray_runs)
        result["c_ray_titles_per_s"] = round(len(titles) / steady_s)
        result["c_actor_titles_per_cpu_s"] = round(len(titles) / actor_cpu_s)
        result["c_actor_cpu_over_b"] = round(result["c_actor_titles_per_cpu_s"] / result["b_pipeline_titles_per_s"], 3)
        result["c_ray_total_titles_per_s"] = round(len(titles) / total_s)
        # Ray runs in other processes: its figure is wall-clock, so it is compared with (b) in wall-clock time
        result["c_over_b"] = round(result["c_ray_titles_per_s"] / result["b_pipeline_titles_per_wall_s"], 3)

    print(f"titles: {result['titles']}   brand phrases: {result['brand_phrases']}   "
          f"pipeline build: {result['pipeline_load_s']} s")
    print(f"load average: {result['load_average']}   (a) and (b) in titles per CPU-second of this process; "
          f"wall-clock in brackets")
    print(f"(a) bare spacy.blank + entity ruler : {result['a_bare_titles_per_s']:>8} titles/s   "
          f"({result['a_bare_titles_per_wall_s']})")
    print(f"(b) ner pipeline                    : {result['b_pipeline_titles_per_s']:>8} titles/s   "
          f"({result['b_pipeline_titles_per_wall_s']})   b/a = {result['b_over_a']:.2f}  (target >= 0.50)")
    if "c_ray_titles_per_s" in result:
        print(f"(c) ner stage on Ray Data, 1 actor  : {result['c_ray_titles_per_s']:>8} titles/s   "
              f"c/b(wall) = {result['c_over_b']:.2f}  (target >= 0.85; with Ray start-up: "
              f"{result['c_ray_total_titles_per_s']} titles/s)")
        print(f"    the stage's own CPU time in its actor    : {result['c_actor_titles_per_cpu_s']:>8} titles/s   "
              f"vs (b) = {result['c_actor_cpu_over_b']:.2f}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
