"""Training's guards, without a Ray Train run: a diverged step stops with one line, workers that cannot exist are
refused before fit(), and a failed run's cause is reported as the user's error it is."""
import logging
import random

import pytest
import torch
from ray.train import ControllerError, WorkerGroupError
from ray.train.v2._internal.exceptions import WorkerGroupStartupTimeoutError

from augment.core.schema import ShardError
from model.checkpoint import build_model
from model.config import ConfigError, load_config
from model.data import collate, pair_batches, product_records
from model.losses import MoonLoss
from model.step import NonFiniteLoss, check_finite, make_optimizer, train_step
from model.tokenizer import build_tokenizer
from model.train import STARTUP_RETRIES, OneLineErrors, check_resources, failure_reason, train, unreadable_shard
from tests.model.shards import product_rows, write_run


def batch_of(cfg, count=8):
    rows = product_rows(count)
    records = product_records({k: [r[k] for r in rows] for k in rows[0]}, attributes=cfg.data.query_attributes)
    rng = random.Random(0)
    batch, partner = next(pair_batches(records, count, rng))
    return collate(batch, partner, cfg, build_tokenizer(cfg.text), rng)


def test_a_nan_loss_stops_the_step_before_the_weights_change():
    cfg = load_config("tiny")
    model, _ = build_model(cfg)
    loss_fn = MoonLoss(cfg.loss, cfg.moe)

    def diverged(*args):
        return {key: value * float("nan") for key, value in loss_fn(*args).items()}

    optimizer = make_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(NonFiniteLoss) as stopped:
        train_step(model, diverged, batch_of(cfg), optimizer, scheduler, 4, 10, cfg, epoch=3)
    assert str(stopped.value).startswith("training diverged at epoch 3 step 5: the loss is nan; lower train.lr, "
                                         "raise loss.tau")
    assert isinstance(stopped.value, ConfigError)  # moon train: "config error: ...", status 2
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_finite_loss_with_an_infinite_gradient_also_stops():
    check_finite(1.5, 0.3, step=0)  # nothing raised
    with pytest.raises(NonFiniteLoss, match="^training diverged at step 8: the gradient norm is inf"):
        check_finite(1.5, float("inf"), step=7)


def test_a_users_error_on_a_worker_is_the_runs_error():
    diverged = NonFiniteLoss("training diverged at epoch 2 step 9: the loss is nan")
    failed = WorkerGroupError("...", {1: RuntimeError("collective aborted"), 0: diverged})
    assert failure_reason(failed, load_config("tiny")) is diverged
    assert failure_reason(WorkerGroupError("...", {0: RuntimeError("a defect")}), load_config("tiny")) is None


def test_a_worker_lost_with_its_node_is_one_line_that_says_to_resume():
    """A node lost mid-training ended moon train in Ray Train's WorkerGroupError traceback."""
    from ray.train.v2._internal.exceptions import WorkerHealthCheckFailedError

    from model.train import WorkersLost

    lost = WorkerHealthCheckFailedError("A worker health check failed.\nWorker info: rank 1", RuntimeError("gone"))
    reason = failure_reason(WorkerGroupError("...", {1: lost}), load_config("tiny"))
    assert isinstance(reason, WorkersLost) and isinstance(reason, OSError)  # moon prints an OSError in one line
    assert str(reason) == ("training worker 1 was lost (WorkerHealthCheckFailedError: A worker health check failed.): "
                           "its node or process went away; the epochs checkpointed so far are kept: run the same "
                           "command with --resume to go on from the last one")


# The end of what Ray Data raises when a read task fails on a shard whose data page is damaged (RayTaskError).
RAY_DATA_READ_FAILURE = """ray::ReadFilesParquetV2() (pid=24117, ip=192.0.2.2)
  File "pyarrow/error.pxi", line 92, in pyarrow.lib.check_status
OSError: Couldn't deserialize thrift: TProtocolException: Invalid data
Deserializing page header failed.

Failed to read fragment {path} after 1/10 attempts (total backoff 0.0s).
To change retry attempts, backoff, or which errors are retried, configure `ray.data.DataContext.get_current()`"""


@pytest.mark.parametrize("shard,path", [("/runs/a/data/shard00020.parquet", "/runs/a/data/shard00020.parquet"),
                                        ("s3://bucket/runs/a/data/shard00020.parquet",
                                         "bucket/runs/a/data/shard00020.parquet")])  # pyarrow's S3 path
def test_a_shard_ray_data_could_not_read_is_named_in_one_line(shard, path):
    files = ["/runs/a/data/shard00000.parquet", shard]
    failed = RuntimeError(RAY_DATA_READ_FAILURE.format(path=path))
    reason = unreadable_shard(failed, files)
    assert isinstance(reason, ShardError) and str(reason) == (
        f"{shard}: cannot be read (Couldn't deserialize thrift: TProtocolException: Invalid data Deserializing page "
        "header failed.); if the file is damaged, delete it and resume the run (moon run with the run's --output) to "
        "write that shard again")
    assert str(failure_reason(WorkerGroupError("...", {0: failed}), load_config("tiny"), files)) == str(reason)
    assert unreadable_shard(failed, files[:1]) is None  # not a shard of this run: not ours to name
    assert unreadable_shard(RuntimeError("Failed to apply UDF transform after 1/1 attempts"), files) is None


def test_a_workers_traceback_of_an_error_reported_in_one_line_is_dropped():
    one_line = OneLineErrors()
    one_line.messages.add("training diverged at epoch 2 step 9: the loss is nan")

    def record(message):
        return logging.LogRecord("ray.train", logging.ERROR, __file__, 1, message, None, None)

    assert not one_line.filter(record("Error in training function:\nTraceback ...\nmodel.step.NonFiniteLoss: "
                                      "training diverged at epoch 2 step 9: the loss is nan\n"))
    assert one_line.filter(record("Error in training function:\nTraceback ...\nRuntimeError: a defect\n"))


def test_workers_that_never_start_are_reported_in_one_line():
    cfg = load_config("tiny", {"train.num_workers": 4})
    reason = failure_reason(ControllerError(WorkerGroupStartupTimeoutError(4)), cfg)
    assert isinstance(reason, ConfigError) and "\n" not in str(reason)
    assert str(reason).startswith("training asks 4 workers (train.num_workers) of 1 CPU (train.cpus_per_worker) "
                                  f"each: the cluster never had them free in {STARTUP_RETRIES + 1} tries")


@pytest.mark.parametrize("overrides, says", [
    ({"train.use_gpu": True}, "training asks 1 worker (train.num_workers) of 1 CPU (train.cpus_per_worker) + 1 GPU "
                              "(--gpu) each: 1 GPU in all, but the local Ray started for training has 0 GPUs: "
                              "drop --gpu (train.use_gpu), or train on a cluster that has them (--ray-address)"),
    ({"train.num_workers": 3}, "training asks 3 workers (train.num_workers) of 1 CPU (train.cpus_per_worker) each: "
                               "3 CPUs in all, but the local Ray started for training has 2 CPUs: lower --workers "
                               "or train.cpus_per_worker, or train on a cluster that has them (--ray-address)"),
])
def test_a_private_ray_refuses_workers_it_cannot_hold(overrides, says):
    with pytest.raises(ConfigError) as refused:
        check_resources({"CPU": 2.0}, load_config("tiny", overrides), private=True)
    assert str(refused.value) == says


def test_a_joined_cluster_only_warns_as_it_may_grow(caplog):
    cfg = load_config("tiny", {"train.num_workers": 2, "train.use_gpu": True})
    check_resources({"CPU": 2.0, "GPU": 2.0}, cfg, private=True)  # enough: nothing said
    assert not caplog.records
    check_resources({"CPU": 8.0}, cfg, private=False)
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "2 GPUs in all, and the cluster has 0 GPUs now: training waits until nodes join" in caplog.text


class Stop(Exception):
    pass


def test_train_checks_resources_before_fit_and_limits_startup_retries(tmp_path, monkeypatch):
    run = write_run(tmp_path / "run", product_rows(40), shard_size=40)
    built = {}

    def trainer(*args, **kwargs):
        built.update(kwargs)
        raise Stop

    monkeypatch.setattr("model.train.init_ray", lambda address=None: True)  # "this process started a local Ray"
    monkeypatch.setattr("ray.cluster_resources", lambda: {"CPU": 2.0})
    monkeypatch.setattr("ray.train.torch.TorchTrainer", trainer)
    with pytest.raises(ConfigError, match="3 CPUs in all, but the local Ray started for training has 2 CPUs"):
        train(str(run), load_config("tiny", {"train.num_workers": 3, "train.batch_size": 4}), tmp_path / "a",
              dataset=object())
    assert not built and not (tmp_path / "a").exists()  # refused before the trainer, and wrote nothing
    with pytest.raises(Stop):
        train(str(run), load_config("tiny", {"train.batch_size": 4}), tmp_path / "b", dataset=object())
    failure = built["run_config"].failure_config
    assert failure.controller_failure_limit == STARTUP_RETRIES and failure.max_failures == 0


def test_a_private_ray_started_by_the_caller_is_checked_too(tmp_path, monkeypatch):
    """`moon sweep` starts the local Ray before its first train(): train() joins it (init_ray returns False) and is
    told that it is private."""
    run = write_run(tmp_path / "run", product_rows(40), shard_size=40)
    monkeypatch.setattr("model.train.init_ray", lambda address=None: False)  # already joined
    monkeypatch.setattr("ray.cluster_resources", lambda: {"CPU": 2.0})
    cfg = load_config("tiny", {"train.num_workers": 3, "train.batch_size": 4})
    with pytest.raises(ConfigError, match="3 CPUs in all, but the local Ray started for training has 2 CPUs"):
        train(str(run), cfg, tmp_path / "a", dataset=object(), private_ray=True)
