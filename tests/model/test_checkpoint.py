"""Checkpoint folders that cannot serve: damaged files, a resume with another config, Ray Train's snapshot of a
run whose epoch folders are gone. Each is one line naming the file, before any model runs or Ray starts."""
import json
import shutil

import pytest
import ray
import torch

from augment.cli import main
from model.checkpoint import (
    CONFIG_FILE, MODEL_FILE, RAY_SNAPSHOT, STATE_FILE, CheckpointError, build_model, check_resumable,
    check_run_snapshot, load_model, load_train_state, save_checkpoint,
)
from model.config import load_config
from model.train import train
from tests.model.shards import product_rows, write_run


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An output folder as `moon train --epochs 1` leaves it: epoch-0001 (weights, config, train state)."""
    output = tmp_path_factory.mktemp("ckpt")
    cfg = load_config("tiny", {"train.epochs": 1})
    model, cfg = build_model(cfg)
    save_checkpoint(output / "epoch-0001", model, cfg, {"optimizer": {}, "scheduler": {}, "epoch": 1, "step": 3})
    return output


@pytest.fixture
def copy(checkpoint, tmp_path):
    target = tmp_path / "ckpt"
    shutil.copytree(checkpoint, target)
    return target


def test_truncated_weights_are_one_error_naming_the_file(copy, capsys):
    weights = copy / "epoch-0001" / MODEL_FILE
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="not a readable safetensors file") as refused:
        load_model(copy)
    assert str(refused.value).startswith(f"{weights}: ")
    # moon eval: one line, status 2
    run = write_run(copy.parent / "run", product_rows(20), shard_size=20)
    assert main(["eval", "--data", str(run), "--checkpoint", str(copy)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"config error: {weights}: not a readable safetensors file")


def test_weights_holding_nan_are_refused_naming_the_tensor(copy, capsys):
    from safetensors.torch import load_file, save_file

    weights = copy / "epoch-0001" / MODEL_FILE
    tensors = load_file(str(weights))
    name = sorted(k for k, v in tensors.items() if v.is_floating_point())[0]
    tensors[name].view(-1)[:3] = float("nan")
    save_file(tensors, str(weights))
    message = f"{weights}: 1 tensor holds NaN or infinite values ({name}: 3 of {tensors[name].numel()})"
    with pytest.raises(CheckpointError) as refused:
        load_model(copy)
    assert str(refused.value) == message
    run = write_run(copy.parent / "run", product_rows(20), shard_size=20)
    assert main(["eval", "--data", str(run), "--checkpoint", str(copy)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"config error: {refused.value}"]


def test_an_unknown_key_in_config_json_names_the_file(copy):
    config = copy / "epoch-0001" / CONFIG_FILE
    config.write_text(json.dumps({**json.loads(config.read_text()), "bogus": 1}))
    with pytest.raises(CheckpointError) as refused:
        load_model(copy)
    assert str(refused.value).startswith(f"{config}: unknown key bogus")
    config.write_text("{not json")
    with pytest.raises(CheckpointError, match=f"^{config}: not a JSON config"):
        load_model(copy)


def test_a_checkpoint_without_its_config_names_the_missing_file(copy):
    config = copy / "epoch-0001" / CONFIG_FILE
    config.unlink()
    with pytest.raises(CheckpointError, match=f"^{config}: missing; a checkpoint folder holds {MODEL_FILE} and"):
        load_model(copy)


def test_weights_of_another_config_name_both_files(copy):
    config = copy / "epoch-0001" / CONFIG_FILE
    data = json.loads(config.read_text())
    data["text"]["width"] = 32
    config.write_text(json.dumps(data))
    with pytest.raises(CheckpointError) as refused:
        load_model(copy)
    message = str(refused.value)
    assert message.startswith(f"{copy / 'epoch-0001' / MODEL_FILE}: the weights do not fit {config}: ")
    assert "of another shape" in message and "\n" not in message


def test_a_truncated_train_state_names_the_file(copy):
    state = copy / "epoch-0001" / STATE_FILE
    state.write_bytes(state.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=f"^{state}: not a readable training state"):
        load_train_state(copy)


class _Planted:
    """An object whose unpickling would write a file: what a train_state.pt planted in a shared folder could do."""
    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (shutil.copyfile, (__file__, self.target))


def test_a_train_state_that_would_run_code_is_refused_unrun(copy, tmp_path):
    """Resuming reads train_state.pt from a folder the DAG form names: only tensors and plain values load."""
    state, planted = copy / "epoch-0001" / STATE_FILE, tmp_path / "planted"
    torch.save({"epoch": 1, "step": 3, "optimizer": _Planted(planted), "scheduler": {}}, state)
    with pytest.raises(CheckpointError, match=f"^{state}: not a readable training state"):
        load_train_state(copy)
    assert not planted.exists()


def test_resuming_with_another_model_or_loss_names_the_keys(checkpoint, tmp_path):
    cfg = load_config("tiny", {"train.epochs": 2, "text.width": 32, "loss.tau": 0.1})
    with pytest.raises(CheckpointError) as refused:  # before Ray starts: no run folder is even read
        train(str(tmp_path / "no-run"), cfg, checkpoint, resume=True)
    message = str(refused.value)
    assert message.startswith(f"--resume: {checkpoint / 'epoch-0001' / CONFIG_FILE} was trained with another config")
    assert "loss.tau 0.05 -> 0.1" in message and "text.width 64 -> 32" in message
    assert "train.epochs" not in message.split("may change only")[0] and "another --output" in message


@pytest.mark.parametrize("key, value", [
    ("train.lr", 0.01),  # the restored optimizer would silently keep the old one
    ("train.num_workers", 2),  # the steps per epoch change under a restored step count
    ("train.batch_size", 16),
    ("data.eval_fraction", 0.3),  # the split: held-out products would be trained on
    ("train.val_products", 10),  # best/ compares scores of one validation set
])
def test_keys_that_change_what_is_learnt_are_not_resumable(checkpoint, key, value):
    with pytest.raises(CheckpointError, match=f"\\({key} "):
        check_resumable(checkpoint / "epoch-0001", load_config("tiny", {"train.epochs": 1, key: value}))


def test_how_long_and_how_a_run_goes_may_change_on_resume(checkpoint):
    cfg = load_config("tiny", {"train.epochs": 5, "train.log_every": 1, "train.keep_last": 0,
                               "train.cpus_per_worker": 2, "data.cache_records": False})
    check_resumable(checkpoint / "epoch-0001", cfg)  # nothing raised


def test_resuming_a_finished_run_says_there_is_nothing_to_train(checkpoint, tmp_path, caplog, monkeypatch):
    monkeypatch.setattr("model.train.init_ray", lambda *a, **k: pytest.fail("Ray started"))
    caplog.set_level("INFO", logger="model.train")
    result = train(str(tmp_path / "no-run"), load_config("tiny", {"train.epochs": 1}), checkpoint, resume=True)
    assert result["checkpoint"] == str(checkpoint / "epoch-0001") and result["epochs"] == 0
    assert any(r.getMessage().startswith("nothing to train: ") and "train.epochs (--epochs) is 1" in r.getMessage()
               for r in caplog.records)


def snapshot(folder, names, version=ray.__version__):
    (folder / RAY_SNAPSHOT).write_text(json.dumps({
        "ray_version": version, "checkpoint_results": [{"checkpoint_dir_name": n, "metrics": {}} for n in names],
        "checkpoint_report_indices": list(range(len(names))), "latest_checkpoint_result": None}))


def test_a_snapshot_whose_epoch_folders_are_gone_is_refused_before_ray_starts(copy, tmp_path):
    snapshot(copy, ["epoch-0001"])
    shutil.rmtree(copy / "epoch-0001")
    with pytest.raises(CheckpointError) as refused:
        train(str(tmp_path / "no-run"), load_config("tiny", {"train.epochs": 1}), copy)
    assert str(refused.value).startswith(f"{copy / RAY_SNAPSHOT} lists epoch-0001, gone from {copy}: ")
    assert "another --output" in str(refused.value)


def test_a_snapshot_must_be_readable_and_of_this_ray(copy):
    snapshot(copy, ["epoch-0001"])
    check_run_snapshot(copy, ray.__version__)  # every folder it lists is there
    snapshot(copy, ["epoch-0001"], version="0.0.1")
    with pytest.raises(CheckpointError, match="written by Ray 0.0.1"):
        check_run_snapshot(copy, ray.__version__)
    (copy / RAY_SNAPSHOT).write_text("{")
    with pytest.raises(CheckpointError, match="not a readable Ray Train snapshot"):
        check_run_snapshot(copy, ray.__version__)


def test_save_and_load_round_trip(copy):
    model, cfg = load_model(copy)
    reference, _ = build_model(load_config("tiny", {"train.epochs": 1}))
    assert cfg.train.epochs == 1
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values()))
