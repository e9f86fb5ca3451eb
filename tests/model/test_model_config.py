"""Named configs, config files with `extends`, strict keys and types."""
import json

import pytest

from model.config import ConfigError, from_dict, load_config, named_configs, parse_override


def test_named_configs():
    assert {"tiny", "base", "paper"} <= set(named_configs())
    assert load_config("tiny").name == "tiny"


def test_a_named_config_copied_with_the_name_of_another_is_refused(tmp_path, monkeypatch):
    """A copy of tiny.json saved as small.json trained, evaluated and was recorded as "tiny"."""
    from model import config

    for name in ("tiny", "base"):
        (tmp_path / f"{name}.json").write_text((config.CONFIG_DIR / f"{name}.json").read_text())
    (tmp_path / "small.json").write_text((config.CONFIG_DIR / "tiny.json").read_text())
    (tmp_path / "wide.json").write_text('{"extends": "tiny", "text": {"width": 128}}')
    (tmp_path / "narrow.json").write_text('{"extends": "tiny", "name": "narrow"}')
    monkeypatch.setattr(config, "CONFIG_DIR", tmp_path)
    with pytest.raises(ConfigError, match=r"small\.json: name 'tiny' is not the file's name: .* set \"name\": "
                                          r"\"small\" or leave it out"):
        load_config("small")
    assert (load_config("wide").name, load_config("narrow").name, load_config("tiny").name) == ("wide", "narrow",
                                                                                                "tiny")


def test_config_file_extends_a_named_config(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("extends: tiny\nmoe:\n  num_experts: 8\nloss:\n  alpha: 0.1\n")
    cfg = load_config(str(path))
    assert (cfg.name, cfg.moe.num_experts, cfg.moe.top_k, cfg.loss.alpha) == ("mine", 8, 2, 0.1)


def test_a_file_extends_a_file_beside_it_whatever_the_working_directory(tmp_path, monkeypatch):
    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / "wide.yaml").write_text("extends: tiny\nmoe:\n  num_experts: 8\n")
    (folder / "wide-fast.yaml").write_text("extends: wide.yaml\nloss:\n  alpha: 0.1\n")
    monkeypatch.chdir(tmp_path)  # not the folder of the files
    cfg = load_config(str(folder / "wide-fast.yaml"))
    assert (cfg.name, cfg.moe.num_experts, cfg.loss.alpha) == ("wide-fast", 8, 0.1)


def test_unknown_key_names_its_dotted_path(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"extends": "tiny", "moe": {"experts": 8}}))
    with pytest.raises(ConfigError, match="moe.experts"):
        load_config(str(path))


def test_wrong_type_is_refused():
    with pytest.raises(ConfigError, match="train.epochs: expected an integer"):
        load_config("tiny", {"train.epochs": "ten"})


def test_inconsistent_dimensions_are_refused():
    with pytest.raises(ConfigError, match="moe.layers"):
        load_config("tiny", {"moe.layers": 9})


def test_overrides_parse_json_values():
    assert parse_override("moe.layers=0") == ("moe.layers", 0)
    assert parse_override("data.query_ratio=[1,1,1]") == ("data.query_ratio", [1, 1, 1])
    assert parse_override("text.tokenizer=/models/clip") == ("text.tokenizer", "/models/clip")
    assert load_config("tiny", {"data.query_ratio": [1, 1, 1]}).data.query_ratio == (1, 1, 1)


def test_query_attributes_take_a_list_of_any_length():
    cfg = load_config("tiny", {"data.query_attributes": ["gender", "usage", "base_colour", "category_leaf"]})
    assert cfg.data.query_attributes == ("gender", "usage", "base_colour", "category_leaf")
    assert from_dict(cfg.to_dict()).data.query_attributes == cfg.data.query_attributes


def test_query_protocol_names_are_checked():
    with pytest.raises(ConfigError, match="train_queries"):
        load_config("tiny", {"data.train_queries": "logs"})
    with pytest.raises(ConfigError, match="eval_queries"):
        load_config("tiny", {"data.eval_queries": "entities"})
    with pytest.raises(ConfigError, match="query_attributes"):
        load_config("tiny", {"data.query_attributes": []})


@pytest.mark.parametrize("key, value, says", [
    ("loss.tau", 0.0, "loss.tau must be > 0"),
    ("loss.intra_tau", -0.05, "loss.intra_tau must be > 0"),
    ("train.num_workers", 0, "train.num_workers must be at least 1"),
    ("train.log_every", 0, "train.log_every must be at least 1"),
    ("train.cpus_per_worker", 0, "train.cpus_per_worker must be at least 1 (0 only with train.use_gpu"),
    ("train.epochs", 0, "train.epochs must be at least 1"),
    ("train.lr", 0.0, "train.lr must be > 0"),
    ("train.grad_clip", 0.0, "train.grad_clip must be > 0"),
    ("train.warmup", 1.5, "train.warmup must be in [0, 1]"),
    ("text.heads", 0, "text.heads must be at least 1"),  # used to divide by zero inside validate
    ("vision.patch_size", 0, "vision.patch_size must be at least 1"),
    ("text.vocab_size", 2, "text.vocab_size must be at least 3"),
    ("moe.num_experts", 0, "moe.num_experts must be at least 1"),
    ("loss.omega_min", 2.0, "loss.omega_min must be in [0, 1]"),
    ("data.keyword_keep", 0.0, "data.keyword_keep must be in (0, 1]"),
])
def test_numbers_out_of_range_are_refused_naming_the_key(key, value, says):
    with pytest.raises(ConfigError) as refused:
        load_config("tiny", {key: value})
    assert str(refused.value).startswith(says)


def test_a_gpu_worker_may_ask_for_no_cpu():
    assert load_config("tiny", {"train.use_gpu": True, "train.cpus_per_worker": 0}).train.cpus_per_worker == 0


def test_a_yaml_number_with_an_exponent_and_no_point_is_a_number(tmp_path):
    # YAML 1.1 (PyYAML's default) reads `5e-5` as a string; a learning rate written that way must still load.
    path = tmp_path / "lr.yaml"
    path.write_text("extends: tiny\ntrain:\n  lr: 5e-5\n  epochs: 3\nname: 1e3x\n")
    cfg = load_config(str(path))
    assert cfg.train.lr == 5e-5 and cfg.train.epochs == 3 and cfg.name == "1e3x"
