"""Training: the lr schedule, the batcher, and one short Ray Train run that checkpoints and resumes."""
import json
import random

import pytest
import torch
from safetensors.torch import load_file

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


@pytest.mark.slow
def test_ray_train_checkpoints_each_epoch_and_resumes(tmp_path, ray_local):
    run = write_run(tmp_path / "run", product_rows(100), shard_size=40)
    output = tmp_path / "ckpt"
    cfg = load_config("tiny", {"train.epochs": 1, "train.batch_size": 16})

    first = train(str(run), cfg, output)
    epoch1 = output / "epoch-0001"
    assert first["checkpoint"] == str(epoch1)
    assert {"model.safetensors", "config.json", "train_state.pt", "metrics.json"} <= {p.name for p in epoch1.iterdir()}
    model, saved = load_model(epoch1)
    assert saved.name == "tiny" and saved.train.epochs == 1
    steps = load_train_state(epoch1)["step"]
    training_products = sum(not is_held_out(f"p{i:04d}", cfg.data.eval_fraction) for i in range(100))
    assert steps == training_products // 16
    weights1 = load_file(str(epoch1 / "model.safetensors"))

    with pytest.raises(FileExistsError):  # an output that holds checkpoints needs --resume
        train(str(run), cfg, output)

    second = train(str(run), load_config("tiny", {"train.epochs": 2, "train.batch_size": 16}), output, resume=True)
    epoch2 = output / "epoch-0002"
    assert second["checkpoint"] == str(epoch2)
    state = load_train_state(epoch2)
    assert (state["epoch"], state["step"]) == (2, 2 * steps)  # continued, did not start over
    weights2 = load_file(str(epoch2 / "model.safetensors"))
    assert any(not torch.equal(weights1[k], weights2[k]) for k in weights1)
    assert load_file(str(epoch1 / "model.safetensors")).keys() == weights1.keys()
    history = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in history] == [1, 2]
    assert all(m["loss"] > 0 and "inter_t_loss" in m for m in history)
