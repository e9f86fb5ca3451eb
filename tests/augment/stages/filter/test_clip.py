"""The clip filter backend on a tiny random CLIP model saved like a checkpoint."""
from __future__ import annotations

import pyarrow as pa
import pytest

pytest.importorskip("transformers")

from augment.core import schema  # noqa: E402
from augment.stages import variants
from augment.stages.filter.clip import ClipFilterOptions, ClipFilterStage, combine  # noqa: E402
from testkit import diffusers_models  # noqa: E402
from augment.core.config import ConfigError  # noqa: E402
from testkit.photos import product_jpeg  # noqa: E402


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory):
    return str(diffusers_models.save_clip(tmp_path_factory.mktemp("clip") / "model"))


def scorer(clip_path, **options) -> ClipFilterStage:
    stage = ClipFilterStage(ClipFilterOptions(model_path=clip_path, **options))
    stage.setup()
    return stage


def rows_for(image: bytes, variant_images: list[bytes], statuses=None) -> dict:
    statuses = statuses or ["ok"] * len(variant_images)
    row = [
        variants.record(kind, image=data, fmt="jpeg", width=224, height=224, model="m", seed=i, status=status)
        for i, (kind, data, status) in enumerate(zip(schema.VARIANT_KINDS, variant_images, statuses))
    ]
    return {"product_id": ["p"], "title": ["Blue cotton shirt"], "_image": [image], "variants": [row]}


def test_scores_are_in_the_unit_interval_and_fit_the_contract(clip_path):
    source = product_jpeg()
    b = rows_for(source, [source, product_jpeg(shape="box")])
    out = scorer(clip_path).process(b).columns["variants"][0]
    pa.array([out], type=pa.list_(schema.VARIANT))
    assert all(0.0 <= v["score"] <= 1.0 and v["status"] in ("ok", "filtered") for v in out)


def test_the_source_itself_has_full_image_consistency(clip_path):
    source = product_jpeg()
    b = rows_for(source, [source, product_jpeg(colour=(220, 200, 40), shape="ellipse")])
    out = scorer(clip_path, image_weight=1.0, text_weight=0.0, heuristic_weight=0.0).process(b).columns["variants"][0]
    assert out[0]["score"] == pytest.approx(1.0, abs=1e-5)
    assert out[1]["score"] < out[0]["score"]


def test_threshold_marks_filtered_and_keeps_everything(clip_path):
    source = product_jpeg()
    b = rows_for(source, [source, product_jpeg(shape="box"), product_jpeg(shape="ellipse")])
    out = scorer(clip_path, threshold=1.0, image_weight=0.0, text_weight=1.0, heuristic_weight=0.0).process(b).columns["variants"][0]
    assert [v["status"] for v in out] == ["filtered"] * 3
    assert [v["image"] for v in out] == [v["image"] for v in b["variants"][0]]


def test_failed_variants_are_left_alone(clip_path):
    source = product_jpeg()
    b = rows_for(source, [source, source], statuses=["ok", "failed:runtime_error"])
    out = scorer(clip_path).process(b).columns["variants"][0]
    assert out[1]["status"] == "failed:runtime_error" and out[1]["score"] is None
    assert out[0]["score"] is not None


def test_a_row_without_a_usable_source_stays_unscored(clip_path):
    b = rows_for(b"garbage", [product_jpeg()])
    out = scorer(clip_path).process(b).columns["variants"][0]
    assert out[0]["status"] == "ok" and out[0]["score"] is None


def test_combine_maps_cosines_linearly_and_weights_them():
    o = ClipFilterOptions(model_path="/m", image_floor=0.5, text_floor=0.15, text_ceiling=0.35,
                          image_weight=0.5, text_weight=0.25, heuristic_weight=0.25)
    assert combine(0.75, 0.25, 1.0, o) == pytest.approx(0.5 * 0.5 + 0.25 * 0.5 + 0.25 * 1.0)
    assert combine(0.2, 0.0, 0.0, o) == 0.0
    assert combine(1.0, 0.9, 1.0, o) == pytest.approx(1.0)


def test_missing_model_path_is_a_config_error():
    with pytest.raises(ConfigError, match="model_path"):
        ClipFilterOptions()


def test_a_device_torch_cannot_name_is_a_config_error():
    with pytest.raises(ConfigError, match=r"stages\.filter\.options\.device: expected auto"):
        ClipFilterOptions(model_path="/m", device="gpu")
