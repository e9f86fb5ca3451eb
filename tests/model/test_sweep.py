"""`moon sweep`: its settings, its resumable loop over (setting, seed), and its summary."""
import json

import pytest

from augment.cli import main
from model.config import load_config
from model.sweep import BASE, check_basis, format_summary, run_sweep, settings, summarise


def test_one_factor_at_a_time_around_the_config():
    cfg = load_config("tiny")  # alpha 0.01, beta 0.05, tau 0.05
    chosen = settings(cfg)
    assert [s.name for s in chosen] == [BASE, "alpha=0.1", "alpha=1", "alpha=10", "beta=0.1", "beta=1", "beta=10",
                                        "tau=0.1", "tau=0.2"]  # tau 0.05 is the config's own value
    alpha = chosen[1].overrides()
    assert alpha == {"loss.alpha": 0.1, "loss.beta": 0.05, "loss.tau": 0.05, "loss.intra_tau": 0.05}
    assert chosen[-1].overrides()["loss.intra_tau"] == 0.2  # tau sets both temperatures


def test_grid_has_every_combination():
    chosen = settings(load_config("tiny"), "grid", {"alpha": [1], "beta": [0.1, 10], "tau": [0.1, 0.2]})
    assert [s.name for s in chosen] == ["alpha=1,beta=0.1,tau=0.1", "alpha=1,beta=0.1,tau=0.2",
                                        "alpha=1,beta=10,tau=0.1", "alpha=1,beta=10,tau=0.2"]
    with pytest.raises(ValueError):
        settings(load_config("tiny"), "random")


def row(setting, seed, r1, r10):
    return {"setting": setting, "seed": seed, "results": {"t->mm": {"R@1": r1, "R@10": r10}},
            "routing": {"wstar_entropy": 0.1 * (seed + 1)}}


def test_summary_gives_seeds_mean_spread_and_change_against_the_config():
    rows = [row(BASE, 0, 0.70, 0.90), row(BASE, 1, 0.74, 0.94), row("alpha=10", 0, 0.60, 0.80),
            row("alpha=10", 1, 0.66, 0.90)]
    summary = summarise(rows, directions=("t->mm",))
    alpha = summary[1]["metrics"]["t->mm R@1"]
    assert alpha["values"] == pytest.approx([60.0, 66.0]) and alpha["mean"] == pytest.approx(63.0)
    assert alpha["spread"] == pytest.approx(6.0)
    assert alpha["change"] == pytest.approx(-9.0) and alpha["relative"] == pytest.approx(-9.0 / 72.0)
    assert summary[0]["metrics"]["t->mm R@10"]["change"] == pytest.approx(0.0)
    assert summary[1]["entropy_fall"] == {"wstar_entropy": [0.1, 0.2]}  # per seed
    table = format_summary(summary, directions=("t->mm",))
    assert "60.0/66.0" in table and "-9.0" in table


@pytest.mark.parametrize("seeds,alpha", [("0,3", "2"), ("0,0,3", "2,2")])  # a value given twice is one run
def test_dry_run_lists_the_runs(capsys, seeds, alpha):
    assert main(["sweep", "--data", "run", "--output", "out", "--seeds", seeds, "--alpha", alpha,
                 "--beta", "0.05", "--tau", "0.05", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "2 settings x 2 seeds = 4 runs" in out
    assert out.split("\n", 1)[1].split() == ["config-s0", "config-s3", "alpha=2-s0", "alpha=2-s3"]


def test_dry_run_refuses_an_unknown_config_key(capsys):
    assert main(["sweep", "--data", "run", "--output", "out", "--set", "loss.nope=1", "--dry-run"]) == 2
    assert "loss.nope" in capsys.readouterr().err


@pytest.mark.slow
def test_sweep_trains_each_setting_and_seed_once_and_resumes(tmp_path, monkeypatch):
    """The loop around training, with the trainer replaced by one that saves a freshly built model as the
    last epoch's checkpoint (Ray Train itself is tested in test_train.py); evaluation is the real one."""
    import model.train
    from model.checkpoint import build_model, epoch_dir_name, save_checkpoint
    from tests.model.shards import product_rows, write_run

    run = write_run(tmp_path / "run", product_rows(120))
    trained = []

    def fake_train(run_uri, cfg, output_dir, resume=False, ray_address=None, dataset=None, private_ray=False):
        assert dataset == "records"  # read once by the sweep, shared by every run
        trained.append((output_dir.name, cfg.loss.alpha, cfg.loss.tau, cfg.loss.intra_tau, cfg.train.seed, resume))
        net, cfg = build_model(cfg, seed=cfg.train.seed)
        save_checkpoint(output_dir / epoch_dir_name(cfg.train.epochs), net, cfg,
                        {"epoch": cfg.train.epochs, "step": 1})

    monkeypatch.setattr(model.train, "train", fake_train)
    monkeypatch.setattr(model.train, "init_ray", lambda address: None)
    monkeypatch.setattr(model.train, "training_dataset", lambda files, cfg: "records")
    chosen = settings(load_config("tiny"), values={"alpha": [1.0], "beta": [0.05], "tau": [0.2]})
    rows = run_sweep(str(run), "tiny", {"train.epochs": 1}, tmp_path / "sweep", [0, 1], chosen)
    assert [t[0] for t in trained] == ["config-s0", "config-s1", "alpha=1-s0", "alpha=1-s1", "tau=0.2-s0",
                                       "tau=0.2-s1"]
    assert trained[2][1:5] == (1.0, 0.05, 0.05, 0) and trained[5][1:5] == (0.01, 0.2, 0.2, 1)
    assert all(set(r["results"]) == {"t->mm", "i->mm", "mm->mm", "t->i", "i->t"} for r in rows)
    assert rows[0]["results"] != rows[1]["results"]  # seeds differ
    assert rows[0]["routing"] == {}  # the stand-in trainer wrote no metrics.jsonl

    lines = (tmp_path / "sweep" / "sweep.jsonl").read_text().splitlines()
    assert [json.loads(x)["run"] for x in lines] == [t[0] for t in trained]
    again = run_sweep(str(run), "tiny", {"train.epochs": 1}, tmp_path / "sweep", [0, 1], chosen)
    assert len(trained) == 6 and again == rows  # nothing trained twice


def test_a_sweep_folder_refuses_runs_from_another_data_config_or_overrides(tmp_path):
    """Its finished runs were reused and labelled with the new settings: 1 epoch on run A passed for 3 on run B."""
    from model.config import ConfigError
    from tests.model.shards import product_rows, write_run

    run = write_run(tmp_path / "run", product_rows(120))
    other = write_run(tmp_path / "other", product_rows(120))
    chosen = settings(load_config("tiny"), values={"alpha": [1.0]})
    (tmp_path / "sweep" / "config-s0").mkdir(parents=True)  # a run started on the recorded basis
    check_basis(tmp_path / "sweep", {"data": str(run.resolve()), "config": "tiny", "overrides": {"train.epochs": 1}})
    for data, overrides, says in ((other, {"train.epochs": 1}, f'data "{run.resolve()}" -> "{other.resolve()}"'),
                                  (run, {"train.epochs": 3}, 'overrides {"train.epochs": 1} -> {"train.epochs": 3}')):
        with pytest.raises(ConfigError) as refused:
            run_sweep(str(data), "tiny", overrides, tmp_path / "sweep", [0], chosen)
        assert str(refused.value) == (f"{tmp_path / 'sweep'} holds a sweep of other runs ({says}): its finished runs "
                                      "would be reused under the new settings; choose another --output, or run it "
                                      "with the same data, config, --set and --epochs")


def test_a_sweep_with_too_few_held_out_products_is_refused_before_training(tmp_path):
    from model.config import ConfigError
    from tests.model.shards import product_rows, write_run

    run = write_run(tmp_path / "run", product_rows(20))
    with pytest.raises(ConfigError, match=r"^only \d held-out products with a usable image in .*: recall@10 would be "
                                          r"meaningless; raise data.eval_fraction \(--set\) to hold out 10 or more$"):
        run_sweep(str(run), "tiny", {}, tmp_path / "sweep", [0], settings(load_config("tiny")))
    with pytest.raises(ConfigError, match=r"^only \d+ held-out products"):  # the advice followed: no other refusal
        run_sweep(str(run), "tiny", {"data.eval_fraction": 0.3}, tmp_path / "sweep", [0], settings(load_config("tiny")))
