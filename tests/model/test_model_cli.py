"""`moon train` / `moon eval` arguments, and the promise that the CLI module imports nothing heavy."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from augment.cli import build_parser, main
from model.cli import train_config

ROOT = Path(__file__).resolve().parents[2]


def parse(*argv):
    return build_parser().parse_args(list(argv))


def test_cli_module_imports_no_torch_ray_or_pyarrow():
    code = "import sys, model.cli; print(sorted(m for m in ('torch', 'ray', 'pyarrow') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_ablation_flags_set_their_config_keys():
    args = parse("train", "--data", "run", "--output", "ck", "--no-wstar", "--no-dsf", "--no-coaug",
                 "--epochs", "3", "--query-mode", "ratio", "--set", "moe.num_experts=8")
    cfg = train_config(args)
    assert cfg.moe.use_wstar is False and cfg.loss.dsf is False and cfg.data.coaug is False
    assert (cfg.train.epochs, cfg.data.query_mode, cfg.moe.num_experts) == (3, "ratio", 8)


def test_default_train_config_is_tiny_with_everything_on():
    cfg = train_config(parse("train", "--data", "run", "--output", "ck"))
    assert cfg.name == "tiny" and cfg.moe.use_wstar and cfg.loss.dsf and cfg.data.coaug


def test_eval_without_a_model_is_a_usage_error(capsys):
    assert main(["eval", "--data", "run"]) == 2
    assert "--checkpoint" in capsys.readouterr().err


@pytest.mark.slow
def test_eval_writes_table_and_json_for_baselines(tmp_path, capsys):
    from model.data import is_held_out
    from tests.model.shards import product_rows, write_run

    run = write_run(tmp_path / "run", product_rows(120))
    out = tmp_path / "eval.json"
    assert main(["eval", "--data", str(run), "--bow", "--untrained", "tiny", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "bag-of-words" in printed and "untrained:tiny" in printed
    result = json.loads(out.read_text())
    assert set(result["results"]["untrained:tiny"]) == {"t->mm", "i->mm", "mm->mm", "t->i", "i->t"}
    assert set(result["results"]["bag-of-words"]) == {"t->mm"}
    assert result["held_out_products"] == sum(is_held_out(f"p{i:04d}", 0.2) for i in range(120))
