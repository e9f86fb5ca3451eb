"""`moon eval`: which products are evaluated (--split), the protocol config (--config, --set), where the trained
bag-of-words baseline learns (--bow-data), and one-line errors for mistakes in any config."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from augment.cli import main
from model.data import is_held_out
from tests.model.shards import product_rows, write_run

ROOT = Path(__file__).resolve().parents[2]


def rows_with_prefix(count: int, prefix: str) -> list[dict]:
    rows = product_rows(count)
    for row in rows:
        row["product_id"] = prefix + row["product_id"][1:]
    return rows


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("eval-runs")
    return write_run(base / "a", rows_with_prefix(120, "a")), write_run(base / "b", rows_with_prefix(80, "b"))


def evaluate(capsys, *argv) -> tuple[int, dict | None, str]:
    code = main(["eval", *argv])
    captured = capsys.readouterr()
    out = next((a.split("=", 1)[1] if "=" in a else argv[i + 1] for i, a in enumerate(argv) if a.startswith("--out")),
               None)
    result = json.loads(Path(out).read_text()) if code == 0 and out else None
    return code, result, captured.out + captured.err


@pytest.mark.parametrize("split, expected", [
    ("all", 120), ("held-out", sum(is_held_out(f"a{i:04d}", 0.2) for i in range(120))),
    ("train", sum(not is_held_out(f"a{i:04d}", 0.2) for i in range(120)))])
def test_split_chooses_the_evaluated_products(runs, tmp_path, capsys, split, expected):
    code, result, printed = evaluate(capsys, "--data", str(runs[0]), "--bow", "--split", split,
                                     "--out", str(tmp_path / "e.json"))
    assert code == 0, printed
    assert result["split"] == split and result["products"] == expected
    if split == "all":
        assert f"120 products of {runs[0]}" in printed


def test_set_changes_the_protocol_of_a_checkpoint(runs, tmp_path, capsys):
    from model.checkpoint import build_model, save_checkpoint
    from model.config import load_config

    model, cfg = build_model(load_config("tiny"))
    save_checkpoint(tmp_path / "ckpt", model, cfg)
    code, result, printed = evaluate(capsys, "--data", str(runs[0]), "--checkpoint", str(tmp_path / "ckpt"),
                                     "--set", "data.eval_fraction=0.15", "--set", "data.eval_queries=title",
                                     "--out", str(tmp_path / "e.json"))
    assert code == 0, printed
    assert result["eval_fraction"] == 0.15 and result["eval_queries"] == "title"
    assert result["products"] == sum(is_held_out(f"a{i:04d}", 0.15) for i in range(120))
    # --config defines the protocol even when a checkpoint is given
    (tmp_path / "protocol.yaml").write_text("extends: tiny\ndata: {eval_queries: title, query_text: keywords}\n")
    code, result, printed = evaluate(capsys, "--data", str(runs[0]), "--checkpoint", str(tmp_path / "ckpt"),
                                     "--config", str(tmp_path / "protocol.yaml"), "--out", str(tmp_path / "e2.json"))
    assert code == 0, printed
    assert (result["eval_queries"], result["query_text"]) == ("title", "keywords")


def test_a_held_out_split_larger_than_a_checkpoints_is_refused(runs, tmp_path, capsys):
    """The held-out products at 0.5 hold those at 0.2 and as many again, which a checkpoint trained at 0.2 saw."""
    from model.checkpoint import build_model, save_checkpoint
    from model.config import load_config

    model, cfg = build_model(load_config("tiny", {"data.eval_fraction": 0.2}))
    save_checkpoint(tmp_path / "ckpt", model, cfg)
    for argv in (["--set", "data.eval_fraction=0.5"], ["--config", "tiny", "--set", "data.eval_fraction=0.3"]):
        code, _, printed = evaluate(capsys, "--data", str(runs[0]), "--checkpoint", str(tmp_path / "ckpt"), *argv)
        fraction = argv[-1].split("=")[1]
        assert code == 2 and printed.strip() == (
            f"moon eval: data.eval_fraction {fraction} would score {tmp_path / 'ckpt'} on products it trained on: it "
            "held out 0.2 of its data and trained on the rest; evaluate at 0.2 or less, or with --split all on a "
            "run it never saw")
    code, result, printed = evaluate(capsys, "--data", str(runs[0]), "--checkpoint", str(tmp_path / "ckpt"),
                                     "--split", "all", "--set", "data.eval_fraction=0.5", "--out",
                                     str(tmp_path / "e.json"))
    assert code == 0 and result["products"] == 120, printed


@pytest.mark.slow
def test_bow_baseline_trains_on_a_named_run_folder(runs, tmp_path, capsys):
    a, b = runs
    code, result, printed = evaluate(capsys, "--data", str(a), "--split", "all", "--bow-trained", "--bow-data", str(b),
                                     "--bow-epochs", "2", "--out", str(tmp_path / "e.json"))
    assert code == 0, printed
    training_b = sum(not is_held_out(f"b{i:04d}", 0.2) for i in range(80))
    assert result["bow_trained"] == {"data": str(b), "products": training_b}
    assert f"trained bag-of-words baseline: {training_b} training products of {b}" in printed
    assert result["results"]["bag-of-words, trained (attributes)"]["t->mm"]["R@10"] > 0


def test_bow_baseline_without_training_products_is_refused(runs, tmp_path, capsys):
    a, _ = runs
    code, _, printed = evaluate(capsys, "--data", str(a), "--split", "all", "--bow-trained",
                                "--out", str(tmp_path / "e.json"))
    assert code == 2
    assert printed.strip() == (f"error: the trained bag-of-words baseline has 0 training products in {a}: every "
                               "product of it is evaluated (--split all): name another run folder with --bow-data RUN")
    assert not (tmp_path / "e.json").exists()
    # the same catalogue as training data: every product is evaluated, none left to learn from
    code, _, printed = evaluate(capsys, "--data", str(a), "--split", "all", "--bow-trained", "--bow-data", str(a))
    assert code == 2 and "0 training products" in printed


def test_bow_data_needs_bow_trained(runs, capsys):
    code, _, printed = evaluate(capsys, "--data", str(runs[0]), "--bow", "--bow-data", str(runs[1]))
    assert code == 2 and "add --bow-trained" in printed


def test_catalogue_candidates_without_a_checkpoint_say_they_need_one(runs, tmp_path, capsys):
    code, _, printed = evaluate(capsys, "--data", str(runs[0]), "--bow", "--candidates", "catalogue",
                                "--out", str(tmp_path / "e.json"))
    assert code == 0 and "--candidates catalogue ranks checkpoints' embeddings" in printed and "t->mm" in printed


def test_an_out_that_is_a_folder_is_refused_before_evaluating(runs, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    for out in (tmp_path, tmp_path / "file" / "eval.json"):
        code, _, printed = evaluate(capsys, "--data", str(runs[0]), "--bow", "--out", str(out))
        assert code == 2 and f"--out {out} must be a file path" in printed and "t->mm" not in printed


def test_a_catalogue_colour_column_carried_as_input_color_is_a_label(tmp_path, capsys):
    rows = product_rows(60)
    for row in rows:
        row["input_color"] = row.pop("base_colour")  # what `moon run` makes of a catalogue's `color` column
    run = write_run(tmp_path / "run", rows)
    code, _, printed = evaluate(capsys, "--data", str(run), "--bow", "--split", "all",
                                "--query-attributes", "gender,color,article_type")
    assert code == 2
    assert printed.strip() == (
        "config error: data.query_attributes: 'color' is a list<element: string> column the pipeline writes, not a "
        "label with one value per product; the catalogue's own 'color' column is carried as 'input_color': name that")
    code, result, printed = evaluate(capsys, "--data", str(run), "--bow", "--split", "all",
                                     "--query-attributes", "gender,input_color,article_type",
                                     "--out", str(tmp_path / "e.json"))
    assert code == 0, printed
    assert result["query_attributes"] == ["gender", "input_color", "article_type"]
    assert result["results"]["bag-of-words (TF-IDF)"]["t->mm"]["queries"] == len(
        {(r["gender"], r["input_color"], r["article_type"]) for r in rows})


@pytest.mark.parametrize("argv, message", [
    (("eval", "--data", "RUN", "--bow", "--set", "data.eval_fraction=1.0"),
     "config error: data.eval_fraction must be in (0, 1) (`moon eval --split all` evaluates every product)"),
    (("eval", "--data", "RUN", "--bow", "--set", "train.nope=1"), "config error: unknown key train.nope"),
    (("train", "--data", "RUN", "--output", "OUT", "--set", "data.eval_fraction=1.0"),
     "config error: data.eval_fraction"),
    (("train", "--data", "RUN", "--output", "OUT", "--config", "BAD.json"),
     "config error: config file BAD.json is not valid JSON"),
    (("run", "--config", "BAD.yaml", "--dry-run"), "config error: config file BAD.yaml is not valid YAML"),
    (("config", "--config", "TYPO.yaml"), "config error: unknown key run.shard_sise"),
])
def test_config_mistakes_end_in_one_line(runs, tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "BAD.json").write_text("{bad")
    (tmp_path / "BAD.yaml").write_text("run: [\n")
    (tmp_path / "TYPO.yaml").write_text("run:\n  shard_sise: 3\n")
    argv = [str(runs[0]) if a == "RUN" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1, err


@pytest.mark.slow  # a child process
def test_verbose_shows_the_traceback_of_a_config_mistake(tmp_path):
    def moon(*argv):
        return subprocess.run([sys.executable, "-m", "augment.cli", *argv], cwd=ROOT, capture_output=True, text=True)

    argv = ("eval", "--data", str(tmp_path), "--bow", "--set", "data.eval_fraction=1.0")
    quiet, verbose = moon(*argv), moon("-v", *argv)
    assert quiet.returncode == verbose.returncode == 2
    assert "Traceback" not in quiet.stderr and len(quiet.stderr.strip().splitlines()) == 1
    assert "Traceback" in verbose.stderr and "ConfigError" in verbose.stderr


def test_set_reaches_an_untrained_model_and_a_search_needs_the_catalogue(runs, tmp_path, capsys):
    plain = evaluate(capsys, "--data", str(runs[0]), "--untrained", "tiny", "--out", str(tmp_path / "a.json"))
    other = evaluate(capsys, "--data", str(runs[0]), "--untrained", "tiny", "--set", "moe.layers=0",
                     "--out", str(tmp_path / "b.json"))
    assert plain[0] == other[0] == 0, plain[2] + other[2]
    assert plain[1]["results"]["untrained:tiny"] != other[1]["results"]["untrained:tiny"]
    code, _, printed = evaluate(capsys, "--data", str(runs[0]), "--bow", "--search", "hnsw")
    assert code == 2 and printed.strip() == ("moon eval: --search hnsw searches the catalogue's embeddings; add "
                                             "--candidates catalogue (the held-out products are ranked exactly)")
