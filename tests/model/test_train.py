"""Training: the lr schedule, the batcher, and one short Ray Train run that checkpoints and resumes."""
import json
import random

import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file

from augment.cli import main
from augment.core import schema as S
from model.checkpoint import load_model, load_train_state
from model.config import load_config
from model.data import is_held_out, product_records
from model.tokenizer import build_tokenizer
from model.train import epoch_batches, lr_factor, train
from tests.model.shards import product_rows, write_run


def test_lr_warms_up_linearly_then_decays_on_a_cosine():
    assert lr_factor(0, 100, 0.1) == pytest.approx(0.1)
    assert lr_factor(9, 100, 0.1) == pytest.approx(1.0)
    assert lr_factor(55, 100, 0.1) == pytest.approx(0.5)
    assert lr_factor(100, 100, 0.1) == pytest.approx(0.0)


def test_epoch_batches_carry_leftovers_to_the_next_pool():
    cfg = load_config("tiny", {"train.batch_size": 8})
    records = product_records({k: [r[k] for r in product_rows(30)] for k in product_rows(1)[0]})
    pools = [records[:13], records[13:26], records[26:]]  # pools that do not divide into batches
    batches = list(epoch_batches(iter(pools), cfg, build_tokenizer(cfg.text), random.Random(0)))
    sizes = [len(b.product_ids) for b in batches]
    assert sizes[:-1] == [8, 8, 8] and sizes[-1] == 6  # 30 products: three full batches, the rest at the end
    assert sorted(pid for b in batches for pid in b.product_ids) == sorted(r["product_id"] for r in records)


def with_schema_version(path, version: str | None) -> None:
    """Rewrite a shard with another schema version in its metadata (None: without one)."""
    table = pq.read_table(path)
    meta = dict(table.schema.metadata)
    if version is None:
        del meta[S.SCHEMA_METADATA_KEY]
    else:
        meta[S.SCHEMA_METADATA_KEY] = version.encode()
    pq.write_table(table.replace_schema_metadata(meta), path)


@pytest.mark.parametrize("version, says", [
    ("2.0", "shard schema version '2.0' is not one this code reads (1.0); use a moon-augment release of that "
            "schema version"),
    (None, "not a moon shard: no moon.schema_version in the Parquet metadata"),
])
def test_training_refuses_a_shard_of_an_unknown_schema_version(tmp_path, version, says):
    run = write_run(tmp_path / "run", product_rows(20), shard_size=10)
    shard = sorted((run / "data").glob("*.parquet"))[1]
    with_schema_version(shard, version)
    with pytest.raises(S.SchemaVersionError) as refused:
        train(str(run), load_config("tiny"), tmp_path / "ckpt")  # refused before Ray starts
    assert str(refused.value) == f"{shard}: {says}"
    assert not (tmp_path / "ckpt").exists()


def test_moon_train_and_eval_print_the_schema_version_error_on_one_line(tmp_path, capsys):
    run = write_run(tmp_path / "run", product_rows(20), shard_size=10)
    with_schema_version(sorted((run / "data").glob("*.parquet"))[0], "2.0")
    assert main(["train", "--data", str(run), "--output", str(tmp_path / "ckpt")]) == 2
    assert main(["eval", "--data", str(run), "--bow"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("error: ") for line in lines)
    assert all("shard schema version '2.0' is not one this code reads" in line for line in lines)


@pytest.mark.slow
@pytest.mark.orchestration
def test_ray_train_keeps_the_last_epochs_and_the_best_and_resumes(tmp_path, ray_local):
    # Records read again every epoch (as a catalogue too large to cache is), so that the skips are met twice.
    overrides = {"train.epochs": 2, "train.batch_size": 16, "train.keep_last": 1, "data.cache_records": False}
    cfg = load_config("tiny", overrides)
    rows = product_rows(100)
    damaged = next(r for r in rows if not is_held_out(r["product_id"], cfg.data.eval_fraction))
    damaged["image"] = b"not an image"  # found only when the workers' reads decode it
    run = write_run(tmp_path / "run", rows, shard_size=40)
    output = tmp_path / "ckpt"
    seen = []

    class Recorder:  # what `moon train` prints from, called as epochs end
        def __init__(self, **kwargs):
            assert kwargs["epochs"] == 2 and kwargs["start_epoch"] == 0 and kwargs["best_metric"] == "R@10"
            self.epoch, self.step, self.close = seen.append, lambda record: None, lambda: None

    first = train(str(run), cfg, output, progress=Recorder)
    assert [m["epoch"] for m in seen] == [1, 2]
    epoch2 = output / "epoch-0002"
    assert first["checkpoint"] == str(epoch2) and first["epochs"] == 2
    assert first["skipped"] == {"undecodable": 1}  # once, though two epochs read it
    assert sorted(p.name for p in output.iterdir() if p.name.startswith("epoch-")) == ["epoch-0002"]  # keep_last 1
    assert {"model.safetensors", "config.json", "train_state.pt", "metrics.json"} <= {p.name for p in epoch2.iterdir()}
    model, saved = load_model(epoch2)
    assert saved.name == "tiny" and saved.train.epochs == 2
    steps = load_train_state(epoch2)["step"]
    training_products = sum(not is_held_out(f"p{i:04d}", cfg.data.eval_fraction) for i in range(100))
    assert steps == 2 * (training_products // 16)
    weights2 = load_file(str(epoch2 / "model.safetensors"))

    # best/: the weights of the epoch with the highest validation score, no optimizer state
    history = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    best_epoch = max(history, key=lambda m: (m["val_score"], -m["epoch"]))["epoch"]
    assert all(m["best_epoch"] == max((h for h in history[:m["epoch"]]),
                                      key=lambda h: (h["val_score"], -h["epoch"]))["epoch"] for m in history)
    assert first["best"] == str(output / "best")
    best = json.loads((output / "best" / "metrics.json").read_text())
    assert best["epoch"] == best_epoch and "val/t->mm/R@10" in best
    assert not (output / "best" / "train_state.pt").exists()
    assert load_model(output / "best")[1].train.epochs == 2

    with pytest.raises(FileExistsError):  # an output that holds checkpoints needs --resume
        train(str(run), cfg, output)

    second = train(str(run), load_config("tiny", overrides | {"train.epochs": 3}), output, resume=True)
    epoch3 = output / "epoch-0003"
    assert second["checkpoint"] == str(epoch3) and second["skipped"] == {"undecodable": 1}
    assert sorted(p.name for p in output.iterdir() if p.name.startswith("epoch-")) == ["epoch-0003"]
    state = load_train_state(epoch3)
    assert (state["epoch"], state["step"]) == (3, 3 * steps // 2)  # continued, did not start over
    weights3 = load_file(str(epoch3 / "model.safetensors"))
    assert any(not torch.equal(weights2[k], weights3[k]) for k in weights2)
    history = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in history] == [1, 2, 3]
    assert all(m["loss"] > 0 and "inter_t_loss" in m and 0 <= m["val_score"] <= 1 for m in history)
    assert json.loads((output / "best" / "metrics.json").read_text())["epoch"] == history[-1]["best_epoch"]
    # routing diagnostics per epoch: 2 MoE layers of 4 experts, 4 objectives; the first step kept as the start
    for m in history:
        routing = m["routing"]
        assert len(routing["usage_entropy"]) == 2 and len(routing["token_entropy"]) == 2
        assert [len(row) for row in routing["expert_share"]["text"]] == [4, 4]
        assert [len(row) for row in routing["expert_share"]["image"]] == [4, 4]
        assert [len(row) for row in routing["wstar_p"]] == [4] * 4
        assert set(routing["omega"]) == {"t->mm", "i->mm", "mm->mm", "i->t"}
    assert history[0]["routing"]["start"]["wstar_entropy"] == pytest.approx(1.386294, abs=1e-5)  # W* = 0: log 4
    assert all("start" not in m["routing"] for m in history[1:])  # the resumed run does not restart the reference
    assert (output / "routing.html").read_text().count("<svg") == 3
