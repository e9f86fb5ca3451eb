"""A seeded CPU training run repeats: the same seed on the same shards gives the same losses and weights."""
import pytest
import torch
from safetensors.torch import load_file

from augment import config as C
from augment import plan as P
from augment import runner
from model.config import load_config
from model.progress import read_history
from model.train import train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sample_shards(tmp_path_factory, sample_path):
    """The first 48 products of the bundled sample through every stage (CPU backends): raw and enriched titles,
    image variants, labels."""
    out = tmp_path_factory.mktemp("sample") / "run"
    config = C.load()
    config.run.progress = False
    config.run.shard_size = 16
    runner.execute(P.plan_run(sample_path, str(out), config, limit=48), config, use_ray=False)
    return out


def test_two_seeded_runs_on_the_sample_give_equal_first_epoch_losses(sample_shards, tmp_path, ray_local):
    cfg = load_config("tiny", {"train.epochs": 1, "train.batch_size": 16, "train.seed": 7})
    first = train(str(sample_shards), cfg, tmp_path / "a")
    second = train(str(sample_shards), cfg, tmp_path / "b")
    (a,), (b,) = read_history(tmp_path / "a"), read_history(tmp_path / "b")
    assert a["step"] == b["step"] == 2  # 48 products, 38 for training: two steps of 16
    losses = sorted(k for k in a if k.endswith("_loss") or k == "loss")
    assert [a[k] for k in losses] == [b[k] for k in losses]
    assert a["val_score"] == b["val_score"]
    weights_a, weights_b = load_file(f"{first['checkpoint']}/model.safetensors"), load_file(
        f"{second['checkpoint']}/model.safetensors")
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    # another seed draws other pairs, views and weights
    other = train(str(sample_shards), load_config("tiny", {"train.epochs": 1, "train.batch_size": 16,
                                                           "train.seed": 8}), tmp_path / "c")
    assert read_history(tmp_path / "c")[0]["loss"] != a["loss"]
    assert other["epochs"] == 1
