"""The classic image_variants backend: contract, kinds, determinism, failures and storage."""
from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pytest

from augment.core import schema
from augment.stages.image_variants.classic import ClassicOptions, ClassicVariantsStage
from augment.config import ConfigError, stage_options
from augment.imaging.codec import decode_rgb
from testkit.photos import product_jpeg
from augment.stages.base import RunContext

PROMPTS = [
    "a warm beige studio backdrop with a soft shadow",
    "white marble countertop in daylight",
    "pastel pink seamless paper",
    "light oak wooden floor against a cream wall",
]


def make_stage(context: RunContext | None = None, **options) -> ClassicVariantsStage:
    stage = ClassicVariantsStage(ClassicOptions(**{"size": 128, **options}), context or RunContext())
    stage.setup()
    return stage


def batch(images: list[bytes | None], ids: list[str] | None = None, prompts=None, brands=None) -> dict:
    n = len(images)
    return {
        "product_id": ids or [f"p{i}" for i in range(n)],
        "title": ["Blue cotton shirt"] * n,
        "_image": images,
        "brand": brands if brands is not None else [["Acme Sports"]] * n,
        "background_prompts": prompts if prompts is not None else [PROMPTS] * n,
    }


def test_variants_match_the_schema_struct():
    result = make_stage().process(batch([product_jpeg()]))
    column = pa.array(result.columns["variants"], type=pa.list_(schema.VARIANT))
    assert column.type == pa.list_(schema.VARIANT)
    assert set(result.columns["variants"][0][0]) == {f.name for f in schema.VARIANT}


def test_five_kinds_in_order_each_a_decodable_image_of_the_canvas_size():
    row = make_stage(size=160).process(batch([product_jpeg()])).columns["variants"][0]
    assert [v["kind"] for v in row] == ["subject", "background", "angle", "logo", "detail"]
    for v in row:
        assert v["status"] == "ok"
        assert v["format"] == "jpeg" and v["model"] == "classic" and v["uri"] is None
        assert (v["width"], v["height"]) == (160, 160)
        assert decode_rgb(v["image"]).shape == (160, 160, 3)


def test_the_five_images_differ_from_each_other():
    row = make_stage().process(batch([product_jpeg()])).columns["variants"][0]
    pixels = [decode_rgb(v["image"]).astype(np.int16) for v in row]
    for i in range(len(pixels)):
        for j in range(i + 1, len(pixels)):
            assert np.abs(pixels[i] - pixels[j]).mean() > 5.0, (row[i]["kind"], row[j]["kind"])


def test_same_product_and_config_give_identical_bytes():
    images = [product_jpeg(), product_jpeg(colour=(200, 40, 40), shape="ellipse")]
    first = make_stage().process(batch(images)).columns["variants"]
    second = make_stage().process(batch(images)).columns["variants"]
    assert first == second


def test_seeds_come_from_the_context_per_product_and_kind():
    context = RunContext(config_hash="abc123")
    row = make_stage(context).process(batch([product_jpeg()], ids=["sku-1"])).columns["variants"][0]
    assert [v["seed"] for v in row] == [context.seed("sku-1", k) for k in ("subject", "background", "angle", "logo", "detail")]


def test_different_products_get_different_variants():
    rows = make_stage().process(batch([product_jpeg(), product_jpeg(colour=(30, 150, 60), shape="box")])).columns["variants"]
    for a, b in zip(rows[0], rows[1]):
        assert a["image"] != b["image"], a["kind"]


def test_same_image_under_another_product_id_gets_other_seeded_variants():
    image = product_jpeg()
    rows = make_stage().process(batch([image, image], ids=["a", "b"])).columns["variants"]
    by_kind = {k: (x["image"], y["image"]) for k, x, y in zip(schema.VARIANT_KINDS, rows[0], rows[1])}
    assert by_kind["subject"][0] == by_kind["subject"][1]  # no randomness in the cut-out
    assert by_kind["background"][0] != by_kind["background"][1]
    assert by_kind["angle"][0] != by_kind["angle"][1]


def test_an_undecodable_image_fails_its_variants_and_the_batch_goes_on():
    rows = make_stage().process(batch([b"not an image", None, product_jpeg()])).columns["variants"]
    for row in rows[:2]:
        assert [v["status"] for v in row] == ["failed:image_undecodable"] * 5
        assert all(v["image"] is None and v["uri"] is None for v in row)
    assert [v["status"] for v in rows[2]] == ["ok"] * 5
    pa.array(rows, type=pa.list_(schema.VARIANT))  # failed records still fit the contract


def test_one_failing_operation_fails_only_its_variant(monkeypatch):
    stage = make_stage()

    def broken(*args):
        raise RuntimeError("warp exploded")

    monkeypatch.setattr(stage, "_angle", broken)
    row = stage.process(batch([product_jpeg()])).columns["variants"][0]
    assert {v["kind"]: v["status"] for v in row} == {
        "subject": "ok", "background": "ok", "angle": "failed:runtime_error", "logo": "ok", "detail": "ok",
    }


def test_background_prompt_is_chosen_from_the_row_and_recorded():
    row = make_stage().process(batch([product_jpeg()])).columns["variants"][0]
    background = row[1]
    assert background["kind"] == "background" and background["prompt"] in PROMPTS


def test_several_backgrounds_use_distinct_prompts_and_seeds():
    row = make_stage(backgrounds=3).process(batch([product_jpeg()])).columns["variants"][0]
    backgrounds = [v for v in row if v["kind"] == "background"]
    assert len(backgrounds) == 3
    assert len({v["prompt"] for v in backgrounds}) == 3
    assert len({v["seed"] for v in backgrounds}) == 3
    assert len({v["image"] for v in backgrounds}) == 3


def test_no_background_prompts_picks_a_preset_by_seed():
    row = make_stage().process(batch([product_jpeg()], prompts=[None])).columns["variants"][0]
    assert row[1]["status"] == "ok" and row[1]["prompt"]  # the preset's description


def test_kinds_option_selects_variants():
    row = make_stage(kinds=["detail", "subject"]).process(batch([product_jpeg()])).columns["variants"][0]
    assert [v["kind"] for v in row] == ["subject", "detail"]


def test_image_format_and_quality_come_from_the_context():
    context = RunContext(image_format="png")
    row = make_stage(context).process(batch([product_jpeg()])).columns["variants"][0]
    assert all(v["format"] == "png" and v["image"][:4] == b"\x89PNG" for v in row)


def test_uri_storage_writes_objects_under_deterministic_keys(tmp_path):
    context = RunContext(object_store_uri=str(tmp_path / "images"))
    first = make_stage(context, image_storage="uri").process(batch([product_jpeg()])).columns["variants"][0]
    second = make_stage(context, image_storage="uri").process(batch([product_jpeg()])).columns["variants"][0]
    assert [v["uri"] for v in first] == [v["uri"] for v in second]
    assert len({v["uri"] for v in first}) == 5
    for v in first:
        assert v["image"] is None
        assert decode_rgb(open(v["uri"], "rb").read()).shape == (128, 128, 3)
    assert sorted(p.name for p in (tmp_path / "images").rglob("*") if p.is_file()) == sorted(
        v["uri"].rsplit("/", 1)[1] for v in first
    )


def test_auto_storage_follows_the_run_object_store(tmp_path):
    inline = make_stage().process(batch([product_jpeg()])).columns["variants"][0]
    stored = make_stage(RunContext(object_store_uri=str(tmp_path))).process(batch([product_jpeg()])).columns["variants"][0]
    assert all(v["image"] and v["uri"] is None for v in inline)
    assert all(v["image"] is None and v["uri"] for v in stored)


def test_uri_storage_without_an_object_store_is_a_clear_error():
    stage = ClassicVariantsStage(ClassicOptions(image_storage="uri"), RunContext())
    with pytest.raises(ValueError, match="object store"):
        stage.setup()


@pytest.mark.parametrize(
    "options, key",
    [
        ({"kinds": ["subject", "sketch"]}, "kinds"),
        ({"size": 10}, "size"),
        ({"detail_zoom": [3.0, 2.0]}, "detail_zoom"),
        ({"image_storage": "ftp"}, "image_storage"),
    ],
)
def test_bad_options_are_config_errors_naming_the_key(options, key):
    with pytest.raises(ConfigError, match=rf"stages\.image_variants\.options\.{key}"):
        stage_options(ClassicVariantsStage, options, "stages.image_variants.options")


def test_options_defaults_produce_five_kinds_at_512():
    options = ClassicOptions()
    assert options.size == 512 and options.backgrounds == 1 and options.kinds == list(schema.VARIANT_KINDS)
    assert dataclasses.replace(options, size=256).size == 256


def test_a_plain_product_gets_no_blank_detail_close_up():
    from augment.imaging.codec import encode

    plain = np.full((224, 224, 3), 255, np.uint8)
    plain[50:180, 60:170] = (236, 236, 238)  # a plain white product on white: nothing to zoom on
    row = make_stage().process(batch([encode(plain, "jpeg", 95)])).columns["variants"][0]
    statuses = {v["kind"]: v["status"] for v in row}
    assert statuses["detail"] == "failed:no_detail"
    assert statuses["subject"] == statuses["angle"] == "ok"


def test_the_logo_variant_carries_no_badge_unless_asked():
    assert ClassicOptions().logo_badge is False
    image = product_jpeg()
    plain = make_stage(kinds=["logo"]).process(batch([image])).columns["variants"][0][0]
    badged = make_stage(kinds=["logo"], logo_badge=True).process(batch([image])).columns["variants"][0][0]
    top = lambda v: decode_rgb(v["image"])[:24].astype(np.int16)  # noqa: E731 - the badge's corner band
    assert np.abs(top(plain) - top(badged)).max() > 100
