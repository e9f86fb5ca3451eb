"""The language-model stages send the prompt versions they pin, whatever newer versions lie beside them."""
from __future__ import annotations

import pytest

import prompts
from augment.stages.background_prompts import requests as background
from augment.stages.enrich_title import requests as enrich

ENTITIES = [{"label": "BRAND", "text": "Nike", "start": 0, "end": 4}]


@pytest.mark.parametrize("pins", [enrich.PROMPT_IDS, background.PROMPT_IDS])
def test_every_pinned_prompt_is_released(pins):
    assert all(prompts.resolve(pid) == pid for pid in pins.values())


@pytest.fixture
def newer_versions(monkeypatch, tmp_path):
    """Every released template again as version 9, as a new release would add one."""
    index = dict(prompts._index())
    for pid, path in list(index.items()):
        task, _ = prompts.parse_id(pid)
        newer = tmp_path / f"{task}.v9.txt"
        newer.write_text("NEWER " + path.read_text())
        index[f"{task}.v9"] = newer
    monkeypatch.setattr(prompts, "_index", lambda: index)
    assert prompts.latest("enrich_title") == "enrich_title.v9"


@pytest.mark.parametrize("title,problem,expected", [
    ("Nike Men Navy Track Pants", None, ("enrich_title.v1", "system.v1")),
    ("Nike Men Navy Track Pants", "guard_dropped_entity", ("enrich_title_strict.v1", "system.v1")),
    ("耐克男士运动裤 藏青色", None, ("enrich_title_zh.v1", "system_zh.v1")),
    ("耐克男士运动裤 藏青色", "guard_dropped_entity", ("enrich_title_zh_strict.v1", "system_zh.v1")),
])
def test_a_newer_release_changes_no_enrichment_request(newer_versions, title, problem, expected):
    request = enrich.enrich_request(title, None, ENTITIES, None, seed=1, problem=problem)
    assert (request.prompt_id, request.system_id) == expected
    assert "NEWER" not in str(request.messages)


def test_a_newer_release_changes_no_background_request(newer_versions):
    request = background.background_request("Nike Track Pants", None, seed=1, reference_urls=["data:image/jpeg;base64,"])
    assert (request.prompt_id, request.system_id) == ("background_refs.v1+background_prompts.v1", "system.v1")
    assert "NEWER" not in str(request.messages)
