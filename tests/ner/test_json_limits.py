"""Valid JSON that Python cannot hold (an integer of over 4,300 digits, nesting past the stack) in the NER tools'
inputs: the line is named, as one that is not JSON, instead of a traceback."""
import pytest

from augment.core.config import ConfigError, parse_override
from augment.core.util import json_loads
from ner.cli import _read_titles
from ner.evaluate import read_jsonl
from ner.lexicon import LexiconError, read_lexicon

HUGE = '{"id": 2, "title": "Puma Cap", "n": ' + "1" * 5000 + "}"
DEEP = '{"id": 2, "title": "x", "n": ' + "[" * 100_000 + "]" * 100_000 + "}"
GOOD = '{"id": 1, "title": "Nike Men Black Shoes"}'


@pytest.mark.parametrize("line, says", [(HUGE, "Exceeds the limit (4300 digits)"), (DEEP, "nested too deep")])
def test_every_reader_names_the_line(tmp_path, line, says):
    import json

    with pytest.raises(json.JSONDecodeError, match=says.replace("(", r"\(").replace(")", r"\)")):
        json_loads(line)
    records = list(_read_titles([GOOD.encode() + b"\n", line.encode() + b"\n"]))
    assert records[0]["error"] is None and records[1]["line"] == 2
    assert records[1]["error"].startswith("not JSON (") and says in records[1]["error"]
    (tmp_path / "gold.jsonl").write_text(GOOD + "\n" + line + "\n")
    with pytest.raises(ValueError, match=f"^{tmp_path / 'gold.jsonl'}:2: not JSON "):
        list(read_jsonl(tmp_path / "gold.jsonl"))
    (tmp_path / "brands.jsonl").write_text('{"label": "BRAND", "pattern": "Foo", "n": ' + line.split('"n": ')[1] + "\n")
    with pytest.raises(LexiconError, match=f"^{tmp_path / 'brands.jsonl'}:1: not JSON "):
        read_lexicon(tmp_path / "brands.jsonl")


def test_a_set_value_python_cannot_hold_is_a_config_error():
    with pytest.raises(ConfigError, match=r"^override 'run.shard_size' is not a config value: Exceeds the limit"):
        parse_override("run.shard_size=" + "9" * 5000)
