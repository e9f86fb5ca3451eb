"""Training: one optimisation step (pure torch), the per-worker loop, and the Ray Train driver.

    shards (manifest) -> Ray Data: read_parquet -> product records (train split) -> TorchTrainer workers
    worker: pools of products -> same-category pairs -> views (collate) -> model -> MoonLoss -> AdamW
    each epoch: rank 0 validates on held-out products (model/validate.py), saves the weights as best/ when they
    score best so far, appends the epoch's metrics to metrics.jsonl (model/progress.py), and saves
    model.safetensors + config.json + train_state.pt, reported to Ray Train as the checkpoint `epoch-NNNN` under
    the output directory; Ray Train keeps the last `train.keep_last` of them.

Resuming: Ray Train restores a run from its storage folder (the output directory), and the worker continues
from `ray.train.get_checkpoint()`: weights, optimizer, scheduler, epoch and step.

Reproducibility of a seeded run (same config, data, number of workers and hardware): model initialisation is
seeded (torch.manual_seed(train.seed) on every worker, and DDP copies rank 0's weights to the others); the
records reach the workers in the order of the shards (Ray Data's preserve_order), so the pools, pairs,
negatives, query and candidate draws (random.Random seeded by seed, epoch and rank) and the local shuffle
(seeded by seed + epoch) repeat; validation runs under torch.random.fork_rng. On CPU with one thread per worker
the losses repeat exactly. What does not: GPU kernels that are not deterministic (atomics in scatter and
index_add, cuDNN algorithm choice) and a different number of workers or threads (reductions sum in another
order); with several workers, Ray Data hands blocks to the workers as they ask for them, which follows the
shard order but could differ across machines of a cluster (locality). Ray is imported only inside the
functions that need it.
"""
from __future__ import annotations

import contextlib
import json
import logging
import random
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterator

import torch

from augment.core.ray import init_ray
from model.checkpoint import (
    BEST_DIR, EPOCH_DIR, MODEL_FILE, build_model, epoch_dir_name, latest_checkpoint, load_train_state, save_best,
    save_checkpoint,
)
from model.config import ConfigError, MoonConfig, from_dict
from model.data import (
    check_label_columns, collate, is_held_out, pair_batches, product_records, records_table, shard_columns,
)
from model.diagnostics import KEY as ROUTING_KEY, RoutingStats, write_routing_page
from model.evaluations import write_training_record
from model.losses import MoonLoss
from model.progress import PROGRESS_FILE, MetricsLog, Watcher, read_history
from model.step import lr_factor, make_optimizer, train_step
from model.tokenizer import build_tokenizer

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------------------
# Batches on a worker
# ---------------------------------------------------------------------------------------------------------
def epoch_batches(pools: Iterator[list[dict]], cfg: MoonConfig, tokenizer, rng: random.Random):
    """Collated batches from pools of product records. Products a pool cannot fill a full batch with move on
    to the next pool; the epoch's last partial batch is kept if it has at least two pairs."""
    size = 2 * (cfg.train.batch_size // 2)
    carry: list[dict] = []
    for pool in pools:
        records = carry + pool
        carry = []
        used: set[int] = set()
        for batch, partner in pair_batches(records, size, rng):
            used.update(id(r) for r in batch)
            if len(batch) == size:
                yield collate(batch, partner, cfg, tokenizer, rng)
            else:
                carry += batch
        carry += [r for r in records if id(r) not in used]  # the odd one out of the pairing
    for batch, partner in pair_batches(carry, size, rng):
        if len(batch) >= 4:
            yield collate(batch, partner, cfg, tokenizer, rng)


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Ray Train's per-worker function. config: {"moon": MoonConfig dict, "steps_per_epoch": int,
    "resume_from": checkpoint path or None, "run_uri": the run folder, "output_dir": the output directory,
    "verbose": log every step and Ray Train's own notes}."""
    import ray.train
    import ray.train.torch

    _worker_logging(config.get("verbose", False))
    cfg = from_dict(config["moon"])
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device()
    steps_per_epoch = config["steps_per_epoch"]
    total_steps = steps_per_epoch * cfg.train.epochs

    # 1. Model, optimizer, schedule; restored from the last checkpoint when resuming.
    model, cfg = build_model(cfg, seed=cfg.train.seed)
    optimizer = make_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total_steps, cfg.train.warmup)
    )
    start_epoch, step = 0, 0
    checkpoint = ray.train.get_checkpoint()
    resume_dir = config.get("resume_from")
    if checkpoint is not None or resume_dir:
        from safetensors.torch import load_file

        with (checkpoint.as_directory() if checkpoint is not None else contextlib.nullcontext(resume_dir)) as directory:
            model.load_state_dict(load_file(str(Path(directory) / MODEL_FILE)))
            state = load_train_state(directory)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, step = state["epoch"], state["step"]
        log.info("resumed from epoch %d, step %d", start_epoch, step)
    output_dir = Path(config["output_dir"])
    history = MetricsLog(output_dir, start_epoch) if rank == 0 else None
    validator, best = None, _best_so_far(output_dir, start_epoch)
    if rank == 0 and cfg.train.best_metric:
        from model.validate import Validator

        validator = Validator(config["run_uri"], cfg)
    model = ray.train.torch.prepare_model(model, parallel_strategy_kwargs={"find_unused_parameters": True})
    optimizer_to(optimizer, device)
    loss_fn = MoonLoss(cfg.loss, cfg.moe)
    tokenizer = build_tokenizer(cfg.text)
    shard = ray.train.get_dataset_shard("train")
    pool = max(cfg.data.negative_pool, cfg.train.batch_size)
    routing = (RoutingStats(cfg.moe.num_experts, cfg.moe.layers, cfg.moe.top_k, record_start=step == 0)
               if cfg.moe.layers else None)

    # 2. Epochs: a fixed number of steps on every worker, so that DDP's collectives stay in step.
    for epoch in range(start_epoch, cfg.train.epochs):
        model.train()
        rng = random.Random(f"{cfg.train.seed}:{epoch}:{rank}")
        sums: dict[str, float] = defaultdict(float)
        started = time.time()
        batches = _cycle(lambda: epoch_batches(_pools(shard, pool, cfg.train.seed + epoch), cfg, tokenizer, rng))
        for _ in range(steps_per_epoch):
            batch = next(batches).to(device)
            metrics = train_step(model, loss_fn, batch, optimizer, scheduler, step, total_steps, cfg,
                                 observe=routing.observe if routing else None)
            for key, value in metrics.items():
                sums[key] += value
            step += 1
            if rank == 0 and step % cfg.train.log_every == 0:
                history.step(epoch + 1, step, metrics["loss"])
                log.info("epoch %d step %d/%d loss %.4f", epoch + 1, step, total_steps, metrics["loss"])
        seconds = time.time() - started
        epoch_metrics = {key: value / steps_per_epoch for key, value in sums.items()}
        epoch_metrics.update(
            epoch=epoch + 1, step=step, seconds=seconds,
            samples_per_second=steps_per_epoch * cfg.train.batch_size * world / max(seconds, 1e-9),
        )
        if routing is not None:  # a collective when distributed: every rank takes part
            wstar = (model.module if hasattr(model, "module") else model).objective_routing
            epoch_metrics[ROUTING_KEY] = routing.epoch(wstar if cfg.moe.use_wstar else None, epoch_metrics)

        # 3. Validation and the best weights so far (rank 0; the others wait in report).
        core = model.module if hasattr(model, "module") else model
        if validator is not None:
            epoch_metrics.update(validator(core))
            if best["score"] is None or epoch_metrics["val_score"] > best["score"]:
                best = {"epoch": epoch + 1, "score": epoch_metrics["val_score"]}
                save_best(output_dir, core, cfg, epoch_metrics)
            epoch_metrics["best_epoch"] = best["epoch"]

        # 4. Checkpoint (rank 0 writes, every rank reports: report is a barrier).
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = None
            if rank == 0:
                state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                         "epoch": epoch + 1, "step": step}
                save_checkpoint(tmp, core, cfg, state)
                (Path(tmp) / "metrics.json").write_text(json.dumps(epoch_metrics, indent=2, sort_keys=True))
                ckpt = ray.train.Checkpoint.from_directory(tmp)
                history.epoch(epoch_metrics)
                log.info("epoch %d done in %.1fs: %s", epoch + 1, seconds, _summary(epoch_metrics))
            ray.train.report(epoch_metrics, checkpoint=ckpt, checkpoint_dir_name=epoch_dir_name(epoch + 1))


def _worker_logging(verbose: bool) -> None:
    """Our INFO lines (every log_every steps, each epoch's losses) and Ray Train's per-report notes with -v only;
    warnings always. The driver prints one line per epoch from metrics.jsonl instead."""
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("model").setLevel(level)
    if not verbose:
        logging.getLogger("ray.train").setLevel(logging.WARNING)


def _best_so_far(output_dir: Path, start_epoch: int) -> dict[str, Any]:
    """The best validation score of the epochs before `start_epoch` (resuming), from best/metrics.json."""
    path = output_dir / BEST_DIR / "metrics.json"
    if start_epoch and path.exists():
        metrics = json.loads(path.read_text())
        if metrics.get("epoch", 0) <= start_epoch and "val_score" in metrics:
            return {"epoch": metrics["epoch"], "score": metrics["val_score"]}
    return {"epoch": None, "score": None}


def optimizer_to(optimizer: torch.optim.Optimizer, device) -> None:
    for state in optimizer.state.values():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                state[key] = value.to(device)


def _pools(shard, pool: int, seed: int) -> Iterator[list[dict]]:
    for table in shard.iter_batches(
        batch_size=pool, batch_format="pyarrow", local_shuffle_buffer_size=2 * pool, local_shuffle_seed=seed
    ):
        yield table.to_pylist()


def _cycle(make):
    """Batches forever: a worker whose shard ran out starts it again rather than stall the others."""
    while True:
        empty = True
        for item in make():
            empty = False
            yield item
        if empty:
            raise RuntimeError("this worker's data shard yields no batch: too few products for the batch size")


def _summary(metrics: dict[str, float]) -> str:
    keys = ["loss"] + sorted(k for k in metrics if k.endswith("_loss") or k.startswith("omega_"))
    return " ".join(f"{k}={metrics[k]:.4f}" for k in keys if k in metrics)


# ---------------------------------------------------------------------------------------------------------
# The driver
# ---------------------------------------------------------------------------------------------------------
class ToRecords:
    """Ray Data map_batches callable: shard rows -> product records of the training split."""

    def __init__(self, eval_fraction: float, attributes: tuple[str, ...] = ()):
        self.eval_fraction = eval_fraction
        self.attributes = attributes

    def __call__(self, table):
        columns = table.to_pydict()
        keep = [i for i, pid in enumerate(columns["product_id"]) if not is_held_out(pid, self.eval_fraction)]
        columns = {name: [values[i] for i in keep] for name, values in columns.items()}
        return records_table(product_records(columns, attributes=self.attributes))


def training_dataset(files: list[str], cfg: MoonConfig):
    import pyarrow.parquet as pq
    import ray.data

    from augment.core import storage

    fs, path = storage.filesystem(files[0])
    schema = pq.read_schema(path, filesystem=fs)
    check_label_columns(schema, cfg.data.query_attributes)
    columns = [c for c in shard_columns(cfg.data.query_attributes) if c in schema.names]
    # Records in shard order (preserve_order), whichever read or map task finishes first: the pools, and so
    # every draw of a seeded run, repeat.
    ctx = ray.data.DataContext.get_current().copy()
    ctx.execution_options.preserve_order = True
    with ray.data.DataContext.current(ctx):
        ds = ray.data.read_parquet(files).select_columns(columns)
        ds = ds.map_batches(ToRecords(cfg.data.eval_fraction, cfg.data.query_attributes), batch_format="pyarrow",
                            batch_size=64)
        # Small catalogues: decode the shards once and keep the records in the object store, instead of reading
        # them again every epoch.
        return ds.materialize() if cfg.data.cache_records else ds


def count_split(files: list[str], cfg: MoonConfig) -> tuple[int, int]:
    """(training products, held-out products) of the shards."""
    import pyarrow.parquet as pq

    from augment.core import storage

    training = held_out = 0
    for file in files:
        fs, path = storage.filesystem(file)
        ids = pq.read_table(path, columns=["product_id"], filesystem=fs).column("product_id").to_pylist()
        out = sum(is_held_out(pid, cfg.data.eval_fraction) for pid in ids)
        training, held_out = training + len(ids) - out, held_out + out
    return training, held_out


def train(run_uri: str, cfg: MoonConfig, output_dir: str | Path, resume: bool = False,
          ray_address: str | None = None, verbose: bool = False, progress=None, dataset=None) -> dict[str, Any]:
    """Train on a run folder's committed shards; returns the last epoch's metrics, the last and best checkpoints.

    `progress(epochs=, steps_per_epoch=, start_epoch=, best_metric=)`, if given, makes an object whose `epoch(metrics)`
    and `step(record)` are called from a thread as training goes (model/progress.py ProgressPrinter), and `close()`
    at the end. `verbose` lets the workers log every `train.log_every` steps and Ray Train's own notes. `dataset`:
    the training records as `training_dataset` makes them, to share one read between several runs (`moon sweep`)."""
    import ray
    import ray.data
    from ray.train import CheckpointConfig, DataConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from augment.core import manifest, storage
    from augment.core import schema as S

    output_dir = Path(output_dir).resolve()
    if not storage.is_s3(run_uri):
        run_uri = str(Path(run_uri).resolve())  # the workers read it too, from Ray Train's working directory
    existing = latest_checkpoint(output_dir)
    if existing is not None and not resume:
        raise FileExistsError(f"{output_dir} already holds {existing.name}: pass --resume, or another --output")
    start_epoch = int(EPOCH_DIR.match(existing.name).group(1)) if (resume and existing) else 0
    files = manifest.committed_data_files(run_uri)
    for file in files:  # a shard of a schema version this code cannot read stops here, before Ray starts
        S.read_shard_schema(file)
    products, held_out = count_split(files, cfg)
    if cfg.train.best_metric and held_out < 2:
        raise ConfigError(f"{held_out} held-out products in {run_uri}: too few to validate on and pick the best "
                          "epoch; raise data.eval_fraction, or set train.best_metric to \"\" (no best/)")
    world = cfg.train.num_workers
    per_step = 2 * (cfg.train.batch_size // 2) * world
    if products < per_step:
        raise ConfigError(f"{products} training products in {run_uri}, fewer than one step's {per_step} "
                          "(train.batch_size x train.num_workers): lower train.batch_size")
    steps_per_epoch = products // per_step
    log.info("%d shards, %d training products, %d steps per epoch", len(files), products, steps_per_epoch)
    if start_epoch:
        log.info("resuming from %s (epoch %d of %d)", existing, start_epoch, cfg.train.epochs)

    write_training_record(output_dir, run_uri, cfg.name)  # `moon eval` reads which run the model learnt from
    init_ray(ray_address)
    ray.data.DataContext.get_current().enable_progress_bars = False
    # Ray Train's default ingest options, with each worker's blocks in shard order (see the module docstring);
    # built without the deprecated exclude_resources, which default_ingest_options() passes (and warns about).
    current = ray.data.DataContext.get_current().execution_options
    ingest = ray.data.ExecutionOptions(resource_limits=current.resource_limits, preserve_order=True,
                                       verbose_progress=current.verbose_progress)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "moon": cfg.to_dict(),
            "steps_per_epoch": steps_per_epoch,
            "resume_from": str(existing) if (resume and existing) else None,
            "run_uri": run_uri,
            "output_dir": str(output_dir),
            "verbose": verbose,
        },
        scaling_config=ScalingConfig(
            num_workers=world, use_gpu=cfg.train.use_gpu, resources_per_worker={"CPU": cfg.train.cpus_per_worker}
        ),
        run_config=RunConfig(
            name=output_dir.name, storage_path=str(output_dir.parent),
            # Ray Train deletes all but the last keep_last epochs (it always keeps the latest, for --resume).
            checkpoint_config=CheckpointConfig(num_to_keep=cfg.train.keep_last or None),
        ),
        datasets={"train": dataset if dataset is not None else training_dataset(files, cfg)},
        dataset_config=DataConfig(execution_options=ingest),
    )
    printer = progress(epochs=cfg.train.epochs, steps_per_epoch=steps_per_epoch, start_epoch=start_epoch,
                       best_metric=cfg.train.best_metric) if progress else None
    try:
        if printer is None:
            result = trainer.fit()
        else:
            with Watcher(output_dir, start_epoch, printer.epoch, printer.step):
                result = trainer.fit()
    finally:
        if printer is not None:
            printer.close()
    (output_dir / PROGRESS_FILE).unlink(missing_ok=True)
    history = read_history(output_dir)
    page = write_routing_page(output_dir, history)
    if page:
        log.info("routing diagnostics over %d epochs: %s", len(history), page)
    last = latest_checkpoint(output_dir)
    best = output_dir / BEST_DIR
    return {"checkpoint": str(last) if last else None, "best": str(best) if (best / MODEL_FILE).exists() else None,
            "metrics": result.metrics, "epochs": len(history)}
