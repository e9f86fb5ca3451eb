"""Training: one optimisation step (pure torch), the per-worker loop, and the Ray Train driver.

    shards (manifest) -> Ray Data: read_parquet -> product records (train split) -> TorchTrainer workers
    worker: pools of products -> same-category pairs -> views (collate) -> model -> MoonLoss -> AdamW
    each epoch: rank 0 validates on held-out products (model/validate.py), saves the weights as best/ when they
    score best so far, appends the epoch's metrics to metrics.jsonl (model/progress.py), and saves
    model.safetensors + config.json + train_state.pt, reported to Ray Train as the checkpoint `epoch-NNNN` under
    the output directory; Ray Train keeps the last `train.keep_last` of them.

Resuming: Ray Train restores a run from its storage folder (the output directory), and the worker continues
from `ray.train.get_checkpoint()`: weights, optimizer, scheduler, epoch and step.

Guards, so that a mistake ends in one line (a ConfigError) rather than a traceback or a run that never ends:
before Ray starts, the output folder (checkpoints need --resume, Ray Train's snapshot must match the epoch
folders, a resumed checkpoint must have this config: model.checkpoint); before fit(), the workers' resources
against a private local Ray's (check_resources); during training, a loss or gradient that is not finite stops
the run at that step (model.step.NonFiniteLoss), reported by the driver (failure_reason).

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
import dataclasses
import json
import logging
import random
import re
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch

from augment.core.ray import init_ray
from model.checkpoint import (
    BEST_DIR, EPOCH_DIR, MODEL_FILE, build_model, check_resumable, check_run_snapshot, epoch_dir_name,
    latest_checkpoint, load_train_state, load_weights, local_folder, save_best, save_checkpoint,
)
from model.config import ConfigError, MoonConfig, from_dict
from model.data import (
    Skipped, checked_label_columns, collate, is_held_out, pair_batches, product_records, records_table,
    shard_columns, unfinished_run, warn_once,
)
from model.diagnostics import KEY as ROUTING_KEY, RoutingStats, write_routing_page
from model.evaluate import ProtocolError
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
    "verbose": log every step and Ray Train's own notes}.

    An error of the user's (augment.core.errors.user_error: training diverged, a damaged checkpoint) ends the run;
    the driver prints it in one line (failure_reason), so without -v Ray Train's traceback of it is kept off the
    worker's console."""
    from augment.core.errors import user_error

    _worker_logging(config.get("verbose", False))
    try:
        _train_loop(config)
    except Exception as exc:
        if user_error(exc) is not None:
            _ONE_LINE_ERRORS.messages.add(str(exc))
        raise


def _train_loop(config: dict[str, Any]) -> None:
    import ray.train
    import ray.train.torch

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
        with (checkpoint.as_directory() if checkpoint is not None else contextlib.nullcontext(resume_dir)) as directory:
            load_weights(model, directory)
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
                                 observe=routing.observe if routing else None, epoch=epoch + 1)
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
        traceback_logger = logging.getLogger(RAY_TRAIN_ERROR_LOGGER)
        if _ONE_LINE_ERRORS not in traceback_logger.filters:
            traceback_logger.addFilter(_ONE_LINE_ERRORS)


class OneLineErrors(logging.Filter):
    """Drops a log record that ends with the message of an error in `messages`: Ray Train's 'Error in training
    function' traceback of an error the driver reports in one line."""

    def __init__(self):
        super().__init__()
        self.messages: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage().rstrip()
        return not any(text.endswith(message) for message in self.messages)


RAY_TRAIN_ERROR_LOGGER = "ray.train.v2._internal.util"  # logs a failed training function's traceback (Ray 2.60)
_ONE_LINE_ERRORS = OneLineErrors()


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
    """Ray Data map_batches callable: shard rows -> product records of the training split. The products it skips
    for what only reading their images finds (an image_uri that cannot be read, an image that does not decode) go
    to `tally` (skip_tally) when given, else each batch warns of its own."""

    def __init__(self, eval_fraction: float, attributes: tuple[str, ...] = (), tally=None):
        self.eval_fraction = eval_fraction
        self.attributes = attributes
        self.tally = tally

    def __call__(self, table):
        columns = table.to_pydict()
        keep = [i for i, pid in enumerate(columns["product_id"]) if not is_held_out(pid, self.eval_fraction)]
        columns = {name: [values[i] for i in keep] for name, values in columns.items()}
        skipped = Skipped(ids=None if self.tally is None else {})
        records = product_records(columns, attributes=self.attributes, skipped=skipped)
        for reason in UNUSABLE:  # counted once for the whole run by count_split, on the driver
            skipped.reasons.pop(reason, None)
        if self.tally is not None:  # what only reading the images finds: unreadable image_uri, undecodable images
            found = {pid: reason for pid, reason in skipped.ids.items() if reason not in UNUSABLE}
            if found:
                import ray

                ray.get(self.tally.add.remote(found))
        elif skipped:
            log.warning("%s", skipped.describe(examples=False))
        return records_table(records)


def skip_tally():
    """A Ray actor that totals the products the training read skipped (ToRecords): each product once, with its
    reason, however many epochs and workers read it; `summary()` gives them as a model.data.Skipped."""
    import ray

    @ray.remote(num_cpus=0)
    class SkipTally:
        def __init__(self):
            self.reasons: dict[str, str] = {}

        def add(self, found: dict[str, str]) -> None:
            for product_id, reason in found.items():
                self.reasons.setdefault(product_id, reason)

        def summary(self) -> Skipped:
            return Skipped(reasons=Counter(self.reasons.values()), examples=sorted(self.reasons)[:5])

    return SkipTally.remote()


def training_dataset(files: list[str], cfg: MoonConfig, attributes: Sequence[str] | None = None, tally=None):
    """Ray Data product records of the training split of `files`. Every shard is checked before Ray reads any
    (checked_label_columns: a shard that is not readable Parquet, or lacks a column the records need or has it
    with another type, stops here with one line naming it); label columns no shard has are not read.
    `attributes`: the label columns that check found, when the caller has made it already (train()); `tally`:
    a skip_tally to total the products skipped while reading their images (ToRecords)."""
    import ray.data

    if attributes is None:
        attributes = checked_label_columns(files, cfg.data.query_attributes, warn=False)  # count_split warned
    columns = shard_columns(attributes)
    # Records in shard order (preserve_order), whichever read or map task finishes first: the pools, and so
    # every draw of a seeded run, repeat.
    ctx = ray.data.DataContext.get_current().copy()
    ctx.execution_options.preserve_order = True
    repeats = repeats_of(files, cfg.data.eval_fraction)
    plain = [file for file in files if file not in repeats.rows]
    with ray.data.DataContext.current(ctx):
        ds = ray.data.read_parquet(plain).select_columns(columns) if plain else None
        if repeats:  # the shards that hold a repeated product id, each read by one task, less those rows
            again = ray.data.from_items([{"file": f, "drop": list(rows)} for f, rows in repeats.rows.items()],
                                        override_num_blocks=len(repeats.rows))
            again = again.map_batches(ReadWithout(columns), batch_format="pyarrow", batch_size=1)
            ds = again if ds is None else ds.union(again)
        ds = ds.map_batches(ToRecords(cfg.data.eval_fraction, attributes, tally), batch_format="pyarrow",
                            batch_size=64)
        # Small catalogues: decode the shards once and keep the records in the object store, instead of reading
        # them again every epoch.
        if not cfg.data.cache_records:
            return ds
        try:  # Ray Data logs a failed read's traceback twice before raising it: the error raised says it all
            with _logger_level("ray.data", logging.CRITICAL):
                return ds.materialize()
        except Exception as exc:
            unreadable = unreadable_shard(exc, files)
            if unreadable is None:
                raise
            raise unreadable from None


READ_FAILURE = re.compile(r"Failed to read fragment (\S+) after")  # Ray Data's words, with the file's path


def unreadable_shard(exc: BaseException, files: Sequence[str]) -> Exception | None:
    """A shard of `files` Ray Data failed to read (its footer passed the checks, a data page did not), as a
    one-line ShardError naming it and how to write it again; None when `exc` is not such a failure."""
    from augment.core.schema import unreadable_shard as shard_error

    text = str(exc)
    found = READ_FAILURE.search(text)
    if found is None:
        return None
    path = found.group(1)  # without s3:// for a shard on S3: pyarrow's path
    shard = next((f for f in files if f == path or f.endswith("/" + path.lstrip("/"))), None)
    if shard is None:
        return None
    lines = [line.strip() for line in text[:found.start()].splitlines() if line.strip()]
    said = next((i for i in range(len(lines) - 1, -1, -1) if re.match(r"^[\w.]+(Error|Exception): ", lines[i])), None)
    if said is None:
        return shard_error(shard, "a read error")
    detail = lines[said].split(": ", 1)[1]
    more = lines[said + 1:said + 2]  # Arrow's message may go on for a line
    if more and not more[0].startswith(("File ", "Traceback")):
        detail = f"{detail} {more[0]}"
    return shard_error(shard, detail)


@contextlib.contextmanager
def _logger_level(name: str, level: int) -> Iterator[None]:
    logger = logging.getLogger(name)
    before = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(before)


MEANINGFUL_HELD_OUT = 10  # fewer evaluated products rank every one in the top 10: recall@10 says nothing


def count_split(files: list[str], cfg: MoonConfig, run_uri: str | None = None,
                checked: bool = False) -> tuple[int, int]:
    """(training products, held-out products) of the shards with a title and an image: what the workers train and
    validate on (product_records skips a row without a title, or without image and image_uri). Checks first,
    before Ray starts: the run's progress (unfinished_run, given `run_uri`: a warning) and every shard
    (checked_label_columns). Rows skipped are reported in one warning per reason; when they leave too few products
    to train or validate on, a ProtocolError says so (train() refuses a split that is too small by itself).
    `checked`: the caller has checked the shards (train(): one read of their footers serves the count and the
    dataset)."""
    import concurrent.futures

    from augment.core import schema as S

    where = run_uri or "the shards"
    unfinished = unfinished_run(run_uri, files) if run_uri else None
    if unfinished:
        warn_once(unfinished)
    if not checked:
        checked_label_columns(files, cfg.data.query_attributes, where=run_uri or "")
    counts: Counter = Counter()
    hashes = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(S.SHARD_CHECK_THREADS, len(files)))) as pool:
        for part, ids in pool.map(lambda file: _split_counts(file, cfg.data.eval_fraction), files):
            counts.update(part)
            hashes.append(ids)
    repeats = find_repeats(files, hashes, cfg.data.eval_fraction)
    _REPEATS.clear()  # the last count's only: one training per process reads it
    _REPEATS[tuple(files)] = repeats
    if repeats:
        warn_once(f"{repeats.training + repeats.held_out} rows of {where} repeat the product id of an earlier row "
                  f"(shards of other writers, or merged runs; e.g. {', '.join(repeats.examples)}): each product is "
                  "read once, from its first row")
    training = counts["training"] - sum(counts[f"training_{reason}"] for reason in UNUSABLE) - repeats.training
    held_out = counts["held_out"] - sum(counts[f"held_out_{reason}"] for reason in UNUSABLE) - repeats.held_out
    for reason, words in UNUSABLE.items():
        missing = counts[f"training_{reason}"] + counts[f"held_out_{reason}"]
        if missing:
            warn_once(f"{missing} of the {counts['training'] + counts['held_out']} products of {where} have {words} "
                      f"and are skipped: {counts[f'training_{reason}']} training, {counts[f'held_out_{reason}']} "
                      "held-out")
    _enough_usable(cfg, training, held_out, counts, where)
    return training, held_out


# Why count_split leaves a product out, as its warning words it; a product with neither counts as no_title, the
# first reason product_records finds.
UNUSABLE = {"no_title": "no title (title null or blank)", "no_image": "no image (image and image_uri null)"}


def _split_counts(file: str, fraction: float) -> tuple[Counter, "np.ndarray"]:
    """Rows of one shard by split, and by split those without a title (null or blank) and those without an image
    (image and image_uri null or empty); and the hash of each row's product id, in row order (find_repeats). The
    image columns are read only for the row groups whose footer statistics do not rule out a null image."""
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from augment.core import storage

    counts: Counter = Counter()
    hashes = []
    fs, path = storage.filesystem(file)
    with pq.ParquetFile(path, filesystem=fs) as parquet:
        meta = parquet.metadata
        image = next(i for i in range(meta.num_columns) if meta.schema.column(i).path == "image")
        for group in range(meta.num_row_groups):
            stats = meta.row_group(group).column(image).statistics
            nulls = stats is None or not stats.has_null_count or stats.null_count > 0
            table = parquet.read_row_group(group, columns=["product_id", "title"]
                                           + (["image", "image_uri"] if nulls else []))
            ids = table.column("product_id").to_pylist()
            hashes.append(id_hashes(ids))
            held = [is_held_out(pid, fraction) for pid in ids]
            counts["held_out"] += sum(held)
            counts["training"] += len(held) - sum(held)
            empty = lambda column, length: pc.equal(pc.fill_null(length(column), 0), 0)  # noqa: E731
            no_title = empty(pc.utf8_trim_whitespace(table.column("title")), pc.utf8_length).to_pylist()
            no_image = (pc.and_(empty(table.column("image"), pc.binary_length),
                                empty(table.column("image_uri"), pc.utf8_length)).to_pylist()
                        if nulls else [False] * len(held))
            for t, i, h in zip(no_title, no_image, held):
                if t or i:
                    counts[f"{'held_out' if h else 'training'}_{'no_title' if t else 'no_image'}"] += 1
    return counts, (np.concatenate(hashes) if hashes else np.empty(0, np.int64))


@dataclasses.dataclass(frozen=True)
class Repeats:
    """The rows of a run's shards that repeat the product id of an earlier row (shards in the manifest's order,
    rows in file order): shards of other writers, or merged runs. `moon run` writes each id once; the training
    reads each product once, from its first row, as `moon eval` does: a product trained twice is its own copy's
    in-batch negative, and counts twice in the steps of an epoch."""

    rows: dict[str, tuple[int, ...]]  # shard file -> positions of the rows left out
    training: int = 0  # of them, in the training split
    held_out: int = 0
    examples: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.rows)


_REPEATS: dict[tuple[str, ...], Repeats] = {}  # count_split's finding, for training_dataset on the same files


def find_repeats(files: Sequence[str], hashes: Sequence["np.ndarray"], fraction: float) -> Repeats:
    """Repeats among `files`, given the hashes of each file's product ids in row order (_split_counts). Only the
    files that hold a repeated hash are read again, for their ids: none where no id repeats, the usual case."""
    import numpy as np

    from model.evaluate import _product_ids

    if not hashes or sum(len(h) for h in hashes) < 2:
        return Repeats({})
    every = np.concatenate(hashes)
    values, counts = np.unique(every, return_counts=True)
    repeated = values[counts > 1]
    if not len(repeated):
        return Repeats({})
    # one pass over every id (not a search of the repeats per file): which files hold a repeated hash
    holding = np.isin(every, repeated)
    ends = np.cumsum([len(h) for h in hashes])
    affected = [bool(part.any()) for part in np.split(holding, ends[:-1])]
    repeated_set = set(repeated.tolist())
    seen: set[str] = set()
    rows: dict[str, tuple[int, ...]] = {}
    split = Counter()
    examples: list[str] = []
    for file, holds in zip(files, affected):
        if not holds:
            continue
        dropped = []
        for position, pid in enumerate(_product_ids(file)):
            if pid in seen:
                dropped.append(position)
                split[is_held_out(pid, fraction)] += 1
                if len(examples) < 5 and pid not in examples:
                    examples.append(pid)
            elif hash(pid) in repeated_set:  # another id may share a hash; only the same id repeats
                seen.add(pid)
        if dropped:
            rows[file] = tuple(dropped)
    return Repeats(rows, split[False], split[True], tuple(examples))


def repeats_of(files: Sequence[str], fraction: float) -> Repeats:
    """find_repeats of `files`, as count_split found it in this process, else read now (moon sweep)."""
    found = _REPEATS.get(tuple(files))
    if found is None:  # the product_id columns only, read as moon eval reads them
        import concurrent.futures

        from model.evaluate import ID_READ_THREADS, _product_ids

        with concurrent.futures.ThreadPoolExecutor(max_workers=ID_READ_THREADS) as pool:
            found = find_repeats(files, [id_hashes(ids) for ids in pool.map(_product_ids, files)], fraction)
    return found


def id_hashes(ids: Sequence[str]) -> "np.ndarray":
    """The hash of each product id, in order: what find_repeats compares."""
    import numpy as np

    return np.fromiter(map(hash, ids), np.int64, len(ids))


class ReadWithout:
    """Ray Data map_batches callable over rows of (file, drop): each shard file read whole, less the rows at the
    positions `drop` (Repeats.rows), as a table of `columns`."""

    def __init__(self, columns: list[str]):
        self.columns = columns

    def __call__(self, batch):
        import pyarrow as pa
        import pyarrow.parquet as pq

        from augment.core import storage
        from model.evaluate import shard_batches

        tables = []
        for file, drop in zip(batch.column("file").to_pylist(), batch.column("drop").to_pylist()):
            fs, path = storage.filesystem(file)
            with pq.ParquetFile(path, filesystem=fs) as parquet:
                table = pa.Table.from_batches(list(shard_batches(parquet, self.columns, file)),
                                              schema=pa.schema([parquet.schema_arrow.field(c) for c in self.columns]))
            keep = sorted(set(range(table.num_rows)) - set(drop))
            tables.append(table.take(keep))
        return pa.concat_tables(tables)


def _enough_usable(cfg: MoonConfig, training: int, held_out: int, counts: Counter, where: str) -> None:
    """ProtocolError when the products without a title or an image are why too few are left to fill one step
    (train.batch_size x train.num_workers) or to validate on (fewer than 2 held-out)."""
    per_step = 2 * (cfg.train.batch_size // 2) * cfg.train.num_workers
    titles = counts["training_no_title"] + counts["held_out_no_title"]
    usable = "have a title and an image" if titles else "have an image"

    def lacking(split: str) -> str:
        return ", ".join(f"{counts[f'{split}_{reason}']} of the {counts[split]} have {words}"
                         for reason, words in UNUSABLE.items() if counts[f"{split}_{reason}"])

    if training < per_step <= counts["training"]:
        advice = "lower train.batch_size" if training >= 2 else "nothing to train on"
        raise ProtocolError(f"{training} training products of {where} {usable}, fewer than one step's "
                            f"{per_step}: {lacking('training')}; {advice}")
    if cfg.train.best_metric and held_out < 2 <= counts["held_out"]:
        raise ProtocolError(f"{held_out} held-out products of {where} {usable}: too few to validate on, "
                            f"{lacking('held_out')}; set train.best_metric to \"\" to train without validation "
                            "(no best/)")


def train(run_uri: str, cfg: MoonConfig, output_dir: str | Path, resume: bool = False,
          ray_address: str | None = None, verbose: bool = False, progress=None, dataset=None,
          private_ray: bool = False) -> dict[str, Any]:
    """Train on a run folder's committed shards; returns the last epoch's metrics, the last and best checkpoints,
    and the products skipped while reading their images, by reason (`skipped`: unreadable, undecodable; each
    product once; products without an image are counted before training starts).

    `progress(epochs=, steps_per_epoch=, start_epoch=, best_metric=)`, if given, makes an object whose `epoch(metrics)`
    and `step(record)` are called from a thread as training goes (model/progress.py ProgressPrinter), and `close()`
    at the end. `verbose` lets the workers log every `train.log_every` steps and Ray Train's own notes. `dataset`:
    the training records as `training_dataset` makes them, to share one read between several runs (`moon sweep`);
    `private_ray`: the caller started the private local Ray this process is joined to (init_ray returned True), so
    workers it cannot hold are refused, not waited for."""
    import ray
    import ray.data
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from augment.core import manifest, storage

    output_dir = local_folder(output_dir, "--output").resolve()
    if not storage.is_s3(run_uri):
        run_uri = str(Path(run_uri).resolve())  # the workers read it too, from Ray Train's working directory
    existing = resume_point(output_dir, cfg, resume, ray.__version__)
    start_epoch = int(EPOCH_DIR.match(existing.name).group(1)) if existing else 0
    if start_epoch >= cfg.train.epochs:
        return nothing_to_train(output_dir, existing, cfg.train.epochs)
    files = manifest.committed_data_files(run_uri)
    # Every shard checked once, before Ray starts; the label columns found serve the count and the dataset.
    attributes = checked_label_columns(files, cfg.data.query_attributes, where=run_uri)
    products, held_out = count_split(files, cfg, run_uri, checked=True)
    if products + held_out < 2:  # no split or batch size can help
        raise ConfigError(f"{products + held_out} products with a title and an image in the {len(files)} shards of "
                          f"{run_uri}: nothing to train on")
    if cfg.train.best_metric and held_out < 2:
        raise ConfigError(f"{held_out} held-out products in {run_uri}: too few to validate on and pick the best "
                          "epoch; raise data.eval_fraction, or set train.best_metric to \"\" (no best/)")
    if cfg.train.best_metric and held_out < MEANINGFUL_HELD_OUT:
        warn_once(f"only {held_out} held-out products in {run_uri}: validation recall@10 is 100 % whatever the "
                  f"model, and best/ stays at the first epoch that reaches it; raise data.eval_fraction to hold out "
                  f"{MEANINGFUL_HELD_OUT} or more (moon eval refuses fewer)")
    world = cfg.train.num_workers
    per_step = 2 * (cfg.train.batch_size // 2) * world
    if products < per_step:
        raise ConfigError(f"{products} training products in {run_uri}, fewer than one step's {per_step} "
                          "(train.batch_size x train.num_workers): lower train.batch_size")
    steps_per_epoch = products // per_step
    log.info("%d shards, %d training products, %d steps per epoch", len(files), products, steps_per_epoch)
    if start_epoch:
        log.info("resuming from %s (epoch %d of %d)", existing, start_epoch, cfg.train.epochs)

    private = init_ray(ray_address) or private_ray
    check_resources(ray.cluster_resources(), cfg, private)
    write_training_record(output_dir, run_uri, cfg.name)  # `moon eval` reads which run the model learnt from
    ray.data.DataContext.get_current().enable_progress_bars = False
    # Ray Train's default ingest options, with each worker's blocks in shard order (see the module docstring);
    # built without the deprecated exclude_resources, which default_ingest_options() passes (and warns about).
    current = ray.data.DataContext.get_current().execution_options
    ingest = ray.data.ExecutionOptions(resource_limits=current.resource_limits, preserve_order=True,
                                       verbose_progress=current.verbose_progress)
    tally = skip_tally() if dataset is None else None
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "moon": cfg.to_dict(),
            "steps_per_epoch": steps_per_epoch,
            "resume_from": str(existing) if existing else None,
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
            # A failed worker is not retried (Ray Train's default max_failures, 0); a worker group that cannot
            # start is retried STARTUP_RETRIES times, not for ever.
            failure_config=FailureConfig(controller_failure_limit=STARTUP_RETRIES),
            # Ray Train's INFO notes (among them the controller's traceback of a failed worker) with -v only.
            logging_config=LoggingConfig(log_level="INFO" if verbose else "WARNING"),
        ),
        datasets={"train": dataset if dataset is not None else training_dataset(files, cfg, attributes, tally)},
        dataset_config=DataConfig(execution_options=ingest),
    )
    printer = progress(epochs=cfg.train.epochs, steps_per_epoch=steps_per_epoch, start_epoch=start_epoch,
                       best_metric=cfg.train.best_metric) if progress else None
    try:
        result = _fit(trainer, cfg, output_dir, start_epoch, printer, files)
    finally:
        if printer is not None:
            printer.close()
    (output_dir / PROGRESS_FILE).unlink(missing_ok=True)
    skipped = ray.get(tally.summary.remote()) if tally is not None else Skipped()
    if skipped:
        log.warning("%s while the training read them, and were not trained on", skipped.describe())
    history = read_history(output_dir)
    page = write_routing_page(output_dir, history)
    if page:
        log.info("routing diagnostics over %d epochs: %s", len(history), page)
    return _outcome(output_dir, result.metrics, len(history), dict(skipped.reasons))


# Tries Ray Train gives a worker group to find its resources (RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S each, 60 s by
# default) before the run fails: its default is to try for ever, and a request no node can meet then never ends.
# Ten retries leave an autoscaling cluster about ten minutes to add nodes.
STARTUP_RETRIES = 10


def _fit(trainer, cfg: MoonConfig, output_dir: Path, start_epoch: int, printer, files: Sequence[str]):
    """trainer.fit(), watched by the printer if any; a failure the user can mend is raised as its one-line error."""
    from ray.train import TrainingFailedError

    try:
        if printer is None:
            return trainer.fit()
        with Watcher(output_dir, start_epoch, printer.epoch, printer.step):
            return trainer.fit()
    except TrainingFailedError as exc:
        reason = failure_reason(exc, cfg, files)
        if reason is None:
            raise
        raise reason from exc


class WorkersLost(ConnectionError):
    """A training worker that went away (its node lost, its process killed): `moon train` says so in one line, and
    --resume goes on from the last checkpoint."""


def _lost_kinds() -> tuple[type, ...]:
    from ray.exceptions import ActorUnavailableError, NodeDiedError, RayActorError
    from ray.train.v2._internal.exceptions import WorkerHealthCheckFailedError, WorkerHealthCheckTimeoutError

    return (WorkerHealthCheckFailedError, WorkerHealthCheckTimeoutError, RayActorError, ActorUnavailableError,
            NodeDiedError)


def failure_reason(exc: Exception, cfg: MoonConfig, files: Sequence[str] = ()) -> Exception | None:
    """The mistake behind a failed Ray Train run, to report in one line, or None (a defect: its traceback): an
    error of the user's that a worker raised (augment.core.errors.user_error: training diverged,
    model.step.NonFiniteLoss; a damaged checkpoint, model.checkpoint.CheckpointError; a shard that could not be
    read, augment.core.schema.ShardError), a shard of `files` Ray Data could not read (unreadable_shard), a worker
    that was lost (WorkersLost), or workers that never found their resources."""
    from ray.train.v2._internal.exceptions import WorkerGroupStartupTimeoutError

    from augment.core.errors import user_error

    lost = _lost_kinds()
    failures = getattr(exc, "worker_failures", None) or {}
    for rank in sorted(failures):
        if user_error(failures[rank]) is not None:
            return failures[rank]
        unreadable = unreadable_shard(failures[rank], files)
        if unreadable is not None:
            return unreadable
    for rank in sorted(failures):
        if isinstance(failures[rank], lost):
            detail = next(iter(str(failures[rank]).strip().splitlines()), "")[:200]
            return WorkersLost(f"training worker {rank} was lost ({type(failures[rank]).__name__}"
                               f"{': ' + detail if detail else ''}): its node or process went away; the epochs "
                               "checkpointed so far are kept: run the same command with --resume to go on from the "
                               "last one")
    if isinstance(getattr(exc, "controller_failure", None), WorkerGroupStartupTimeoutError):
        gpu = ", drop --gpu" if cfg.train.use_gpu else ""
        return ConfigError(f"{_asked(cfg)}: the cluster never had them free in {STARTUP_RETRIES + 1} tries; lower "
                           f"--workers or train.cpus_per_worker{gpu}, or train where there are more (--ray-address)")
    return None


def resume_point(output_dir: Path, cfg: MoonConfig, resume: bool, ray_version: str) -> Path | None:
    """The epoch folder training continues from (None: from the start), once the output folder passed the checks
    that must come before Ray starts: checkpoints there need --resume, Ray Train's snapshot must match the epoch
    folders, and a resumed checkpoint must have been trained with this config (model.checkpoint)."""
    existing = latest_checkpoint(output_dir)
    if existing is not None and not resume:
        raise FileExistsError(f"{output_dir} already holds {existing.name}: pass --resume, or another --output")
    check_run_snapshot(output_dir, ray_version)
    if existing is not None:
        check_resumable(existing, cfg)
    return existing


def nothing_to_train(output_dir: Path, existing: Path, epochs: int) -> dict[str, Any]:
    """What train() returns when the checkpoint to resume already reached train.epochs: no Ray, one info line."""
    log.info("nothing to train: %s is epoch %d, and train.epochs (--epochs) is %d; raise it to train on",
             existing, int(EPOCH_DIR.match(existing.name).group(1)), epochs)
    history = read_history(output_dir)
    return _outcome(output_dir, history[-1] if history else {}, len(history))


def _outcome(output_dir: Path, metrics: dict, epochs: int, skipped: dict | None = None) -> dict[str, Any]:
    last = latest_checkpoint(output_dir)
    best = output_dir / BEST_DIR
    return {"checkpoint": str(last) if last else None, "best": str(best) if (best / MODEL_FILE).exists() else None,
            "metrics": metrics, "epochs": epochs, "skipped": skipped or {}}


def check_resources(cluster: dict[str, float], cfg: MoonConfig, private: bool) -> None:
    """Refuse (ConfigError) workers that a private local Ray cannot hold: Ray Train would wait for them for ever.
    On a joined cluster, which may add nodes, log a warning instead. cluster: ray.cluster_resources()."""
    workers = cfg.train.num_workers
    needs = {"CPU": workers * cfg.train.cpus_per_worker, "GPU": workers if cfg.train.use_gpu else 0}
    short = [name for name, need in needs.items() if need > cluster.get(name, 0.0)]
    if not short:
        return
    asked = " and ".join(_count(needs[name], name) for name in short)
    has = " and ".join(_count(cluster.get(name, 0.0), name) for name in short)
    if private:
        cures = ["lower --workers or train.cpus_per_worker"] if "CPU" in short else []
        if "GPU" in short:
            cures.append("drop --gpu (train.use_gpu)" if not cluster.get("GPU") else "lower --workers")
        cure = ", or ".join(dict.fromkeys(cures))
        raise ConfigError(f"{_asked(cfg)}: {asked} in all, but the local Ray started for training has {has}: "
                          f"{cure}, or train on a cluster that has them (--ray-address)")
    log.warning("%s: %s in all, and the cluster has %s now: training waits until nodes join (an autoscaling cluster "
                "adds them), and fails after %d tries", _asked(cfg), asked, has, STARTUP_RETRIES + 1)


def _count(number: float, name: str) -> str:
    return f"{number:g} {name}{'' if number == 1 else 's'}"


def _asked(cfg: MoonConfig) -> str:
    t = cfg.train
    gpu = " + 1 GPU (--gpu)" if t.use_gpu else ""
    workers = "1 worker" if t.num_workers == 1 else f"{t.num_workers} workers"
    cpus = _count(t.cpus_per_worker, "CPU")
    return f"training asks {workers} (train.num_workers) of {cpus} (train.cpus_per_worker){gpu} each"
