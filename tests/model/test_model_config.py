"""Named configs, config files with `extends`, strict keys and types."""
import json

import pytest

from model.config import ConfigError, load_config, named_configs, parse_override


def test_named_configs():
    assert {"tiny", "base", "paper"} <= set(named_configs())
    assert load_config("tiny").name == "tiny"


def test_config_file_extends_a_named_config(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("extends: tiny\nmoe:\n  num_experts: 8\nloss:\n  alpha: 0.1\n")
    cfg = load_config(str(path))
    assert (cfg.name, cfg.moe.num_experts, cfg.moe.top_k, cfg.loss.alpha) == ("mine", 8, 2, 0.1)


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
