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


@pytest.mark.slow  # a child process
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



def test_train_queries_flag_and_label_columns_from_set():
    args = parse("train", "--data", "run", "--output", "ck", "--train-queries", "both",
                 "--set", 'data.query_attributes=["gender", "category_leaf"]')
    cfg = train_config(args)
    assert cfg.data.train_queries == "both" and cfg.data.query_attributes == ("gender", "category_leaf")

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
    argv = ["eval", "--data", str(run), "--bow", "--bow-trained", "--bow-epochs", "2", "--untrained", "tiny"]
    assert main(argv + ["--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "bag-of-words (TF-IDF)" in printed and "untrained:tiny" in printed
    assert "attribute queries (gender, base_colour, article_type)" in printed
    result = json.loads(out.read_text())
    untrained = result["results"]["untrained:tiny"]
    assert set(untrained) == {"t->mm", "i->mm", "mm->mm", "t->i", "i->t"}
    assert set(untrained["t->mm"]) == {"R@1", "R@5", "R@10", "nDCG@10", "queries"}
    assert set(result["results"]["bag-of-words (TF-IDF)"]) == {"t->mm"}
    assert set(result["results"]["bag-of-words, trained (attributes)"]) == {"t->mm"}
    held_out = [i for i in range(120) if is_held_out(f"p{i:04d}", 0.2)]
    assert result["held_out_products"] == untrained["i->mm"]["queries"] == len(held_out)
    # one text query per gender x colour x category among the held-out products
    assert untrained["t->mm"]["queries"] == len({(i // 24 % 2, i // 4 % 6, i % 4) for i in held_out})


@pytest.mark.slow
def test_eval_of_attribute_queries_without_labels_is_a_usage_error(tmp_path, capsys):
    from tests.model.shards import product_rows, write_run

    run = write_run(tmp_path / "run", product_rows(60, labels=False))
    assert main(["eval", "--data", str(run), "--bow"]) == 2
    assert "--queries title" in capsys.readouterr().err
    assert main(["eval", "--data", str(run), "--bow", "--queries", "title", "--out", str(tmp_path / "e.json")]) == 0
