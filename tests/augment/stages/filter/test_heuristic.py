"""The heuristic filter stage: scores in [0, 1], `filtered` below the threshold, nothing deleted."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from augment.core import schema
from augment.stages import variants
from augment.stages.image_variants.classic import ClassicOptions, ClassicVariantsStage
from augment.core.config import ConfigError
from augment.imaging.codec import encode
from testkit.photos import product_jpeg
from augment.stages.base import RunContext
from augment.stages.filter.heuristic import HeuristicFilterOptions, HeuristicFilterStage, mark


def classic_rows(images, context=None, **options):
    stage = ClassicVariantsStage(ClassicOptions(size=128, **options), context or RunContext())
    stage.setup()
    n = len(images)
    b = {
        "product_id": [f"p{i}" for i in range(n)],
        "title": ["Blue shirt"] * n,
        "_image": images,
        "brand": [["Acme"]] * n,
        "background_prompts": [["soft grey studio backdrop"]] * n,
    }
    return b, stage.process(b).columns["variants"]


def run_filter(b, rows, threshold=0.35):
    stage = HeuristicFilterStage(HeuristicFilterOptions(threshold=threshold), RunContext())
    stage.setup()
    return stage.process({**b, "variants": rows}).columns["variants"]


def test_genuine_variants_score_high_and_stay_ok():
    b, rows = classic_rows([product_jpeg()])
    scored = run_filter(b, rows)[0]
    assert [v["status"] for v in scored] == ["ok"] * 5
    assert all(0.6 <= v["score"] <= 1.0 for v in scored), [(v["kind"], v["score"]) for v in scored]
    pa.array([scored], type=pa.list_(schema.VARIANT))


def test_a_variant_showing_another_product_is_filtered_and_kept():
    b, rows = classic_rows([product_jpeg()])
    other = product_jpeg(colour=(220, 200, 40), shape="ellipse", mark=None)
    _, other_rows = classic_rows([other])
    swapped = list(rows[0])
    swapped[2] = other_rows[0][2]  # another product's angle view in place of this one's
    scored = run_filter(b, [swapped])[0]
    assert len(scored) == 5
    assert scored[2]["status"] == "filtered" and scored[2]["score"] < 0.35
    assert scored[2]["image"] == other_rows[0][2]["image"]  # marked, never deleted
    assert [v["status"] for i, v in enumerate(scored) if i != 2] == ["ok"] * 4


def test_a_blank_generation_is_filtered():
    b, rows = classic_rows([product_jpeg()])
    blank = encode(np.full((128, 128, 3), 255, np.uint8))
    broken = [dict(v, image=blank) for v in rows[0]]
    scored = run_filter(b, [broken])[0]
    assert [v["status"] for v in scored] == ["filtered"] * 5, [(v["kind"], v["score"]) for v in scored]


def test_failed_variants_keep_their_status_and_no_score():
    b, rows = classic_rows([b"broken"])
    scored = run_filter(b, rows)[0]
    assert [v["status"] for v in scored] == ["failed:image_undecodable"] * 5
    assert all(v["score"] is None for v in scored)


def test_threshold_decides_the_status():
    variant = variants.record("subject", image=b"x", status="ok")
    assert mark(variant, 0.5, 0.5)["status"] == "ok"
    assert mark(variant, 0.49, 0.5)["status"] == "filtered"
    assert mark(variant, 0.49, 0.5)["score"] == pytest.approx(0.49)


def test_rescoring_is_idempotent():
    b, rows = classic_rows([product_jpeg()])
    once = run_filter(b, rows, threshold=0.9)
    twice = run_filter(b, once, threshold=0.9)
    assert once == twice


def test_variants_stored_by_uri_are_scored_from_the_object_store(tmp_path):
    b, rows = classic_rows([product_jpeg()], context=RunContext(object_store_uri=str(tmp_path)))
    scored = run_filter(b, rows)[0]
    assert all(v["image"] is None and v["uri"] for v in scored)
    assert [v["status"] for v in scored] == ["ok"] * 5


def test_a_product_without_a_usable_source_keeps_unscored_variants():
    b, rows = classic_rows([product_jpeg()])
    scored = run_filter({**b, "_image": [b"garbage"]}, rows)[0]
    assert scored == rows[0]


def test_threshold_outside_unit_interval_is_a_config_error():
    with pytest.raises(ConfigError, match="threshold"):
        HeuristicFilterOptions(threshold=1.5)
