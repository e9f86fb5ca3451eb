"""What both image-variant backends share: planning, background choice, storage keys, reason codes."""
from __future__ import annotations

import pytest

from augment.stages import variants


def test_plan_orders_kinds_and_repeats_backgrounds():
    assert variants.plan(["detail", "background", "subject"], 2) == [
        ("subject", 0), ("background", 0), ("background", 1), ("detail", 0),
    ]


def test_seed_keys_distinguish_repeated_backgrounds():
    assert [variants.seed_key("background", i) for i in range(3)] == ["background", "background.1", "background.2"]


def test_background_choice_is_seeded_distinct_and_skips_blanks():
    prompts = ["a", "b", "", "c", "d"]
    first = variants.backgrounds_to_render(prompts, 3, seed=7)
    assert first == variants.backgrounds_to_render(prompts, 3, seed=7)
    assert len(set(first)) == 3 and set(first) <= {"a", "b", "c", "d"}
    picks = {tuple(variants.backgrounds_to_render(prompts, 1, seed=s)) for s in range(30)}
    assert len(picks) == 4


def test_background_choice_without_prompts_is_none_per_variant():
    assert variants.backgrounds_to_render(None, 2, seed=1) == [None, None]
    assert variants.backgrounds_to_render(["only"], 2, seed=1) == ["only", "only"]


def test_unknown_or_repeated_kinds_are_rejected():
    with pytest.raises(ValueError, match="unknown variant kind 'sketch'"):
        variants.check_kinds(["subject", "sketch"], "kinds")
    with pytest.raises(ValueError, match="twice"):
        variants.check_kinds(["subject", "subject"], "kinds")


def test_storage_keys_are_deterministic_and_separate_every_input():
    sink = variants.ImageSink("uri", "/tmp/objects")
    base = dict(product_id="p1", kind="angle", seed=5, model="classic", version="classic.v1", fmt="jpeg")
    key = sink.key(**base)
    assert key == sink.key(**base) and key.endswith(".jpg") and key[:2] == key[3:5]
    for field, value in [("product_id", "p2"), ("kind", "logo"), ("seed", 6), ("model", "m"), ("version", "v2")]:
        assert sink.key(**{**base, field: value}) != key


def test_inline_sink_keeps_bytes_and_reads_them_back():
    where = variants.ImageSink("inline", None).put(b"abc", product_id="p", kind="subject", seed=1, model="m", version="v", fmt="png")
    assert where == {"image": b"abc", "uri": None}
    assert variants.variant_bytes(variants.record("subject", **where)) == b"abc"


def test_uri_sink_round_trips_through_storage(tmp_path):
    sink = variants.ImageSink("auto", str(tmp_path))
    where = sink.put(b"img", product_id="p", kind="subject", seed=1, model="m", version="v", fmt="webp")
    assert where["image"] is None and where["uri"].startswith(str(tmp_path)) and where["uri"].endswith(".webp")
    assert variants.variant_bytes(variants.record("subject", **where)) == b"img"
    assert variants.variant_bytes(variants.record("subject")) is None


def test_reason_codes_are_snake_case_class_names():
    assert variants.reason_code(ValueError("x")) == "value_error"
    assert variants.reason_code(MemoryError()) == "memory_error"
