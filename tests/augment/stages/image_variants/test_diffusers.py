"""The diffusers image_variants backend on tiny random pipelines built from config, on the CPU, no network."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

pytest.importorskip("diffusers")

from augment.core import schema  # noqa: E402
from testkit import diffusers_models  # noqa: E402
from augment.stages.image_variants import diffusers_pipelines as pipelines  # noqa: E402
from augment.stages.image_variants.diffusers import DiffusersVariantsOptions, DiffusersVariantsStage  # noqa: E402
from augment.config import ConfigError, stage_options  # noqa: E402
from augment.imaging.codec import decode_rgb  # noqa: E402
from testkit.photos import product_jpeg  # noqa: E402
from augment.stages.base import RunContext  # noqa: E402
from augment.stages.filter.heuristic import HeuristicFilterOptions, HeuristicFilterStage  # noqa: E402

BACKGROUNDS = ["a warm beige studio backdrop", "white marble countertop", "sunlit garden bokeh"]
KINDS = ["subject", "background", "angle", "logo", "detail"]


@pytest.fixture(scope="module", params=diffusers_models.ARCHITECTURES)
def model(request, tmp_path_factory):
    """(pipeline class name, local model directory) of a tiny random pipeline saved like a checkpoint."""
    name = request.param
    path = diffusers_models.save(name, tmp_path_factory.mktemp(name) / "model")
    return diffusers_models.PIPELINE_CLASS[name], str(path)


def make_stage(model, context=None, **options) -> DiffusersVariantsStage:
    pipeline, path = model
    settings = dict(model_path=path, pipeline=pipeline, dtype="float32", device="cpu", resolution=32, steps=2)
    stage = DiffusersVariantsStage(DiffusersVariantsOptions(**{**settings, **options}), context or RunContext(image_format="png"))
    stage.setup()
    return stage


def batch(images, prompts=None):
    n = len(images)
    return {
        "product_id": [f"p{i}" for i in range(n)],
        "title": ["Nike Men Blue Running Shirt"] * n,
        "_image": images,
        "brand": [["Nike"]] * n,
        "background_prompts": prompts if prompts is not None else [BACKGROUNDS] * n,
    }


def pixels(variant) -> np.ndarray:
    return decode_rgb(variant["image"]).astype(np.int16)


def test_every_kind_is_an_image_of_the_resolution_with_its_prompt(model):
    row = make_stage(model).process(batch([product_jpeg()])).columns["variants"][0]
    pa.array([row], type=pa.list_(schema.VARIANT))
    assert [v["kind"] for v in row] == KINDS
    assert [v["prompt_id"] for v in row] == ["subject.v1", "background_render.v1", "angle.v1", "logo.v1", "detail.v1"]
    for v in row:
        assert v["status"] == "ok" and v["model"] == model[1] and v["format"] == "png"
        assert (v["width"], v["height"]) == (32, 32) and decode_rgb(v["image"]).shape == (32, 32, 3)
    assert row[1]["prompt"] in BACKGROUNDS
    assert all(v["prompt"] is None for v in row if v["kind"] != "background")


def test_same_seed_gives_identical_bytes_across_loads(model):
    images = [product_jpeg(), product_jpeg(colour=(200, 40, 40), shape="ellipse")]
    first = make_stage(model).process(batch(images)).columns["variants"]
    second = make_stage(model).process(batch(images)).columns["variants"]
    assert first == second


def test_a_batch_equals_the_same_items_one_by_one(model):
    images = [product_jpeg(), product_jpeg(colour=(30, 150, 60), shape="box")]
    batched = make_stage(model, max_batch=8).process(batch(images)).columns["variants"]
    single = make_stage(model, max_batch=1).process(batch(images)).columns["variants"]
    for row_b, row_s in zip(batched, single):
        for b, s in zip(row_b, row_s):
            assert b["seed"] == s["seed"]
            assert np.abs(pixels(b) - pixels(s)).max() <= 1, b["kind"]


def test_kinds_and_products_get_their_own_seeds_and_images(model):
    rows = make_stage(model).process(batch([product_jpeg(), product_jpeg()])).columns["variants"]
    seeds = [v["seed"] for row in rows for v in row]
    assert len(set(seeds)) == len(seeds)
    assert rows[0][2]["image"] != rows[0][3]["image"]  # angle vs logo
    assert rows[0][2]["image"] != rows[1][2]["image"]  # same picture, another product id


def test_several_backgrounds_render_distinct_prompts(model):
    row = make_stage(model, backgrounds=2).process(batch([product_jpeg()])).columns["variants"][0]
    backgrounds = [v for v in row if v["kind"] == "background"]
    assert len(backgrounds) == 2 and len({v["prompt"] for v in backgrounds}) == 2
    assert set(v["prompt"] for v in backgrounds) <= set(BACKGROUNDS)


def test_without_background_prompts_the_default_background_is_rendered(model):
    row = make_stage(model, kinds=["background"]).process(batch([product_jpeg()], prompts=[None])).columns["variants"][0]
    assert row[0]["status"] == "ok" and row[0]["prompt"] is None


def test_an_undecodable_image_fails_only_its_row(model):
    rows = make_stage(model).process(batch([b"broken", product_jpeg()])).columns["variants"]
    assert [v["status"] for v in rows[0]] == ["failed:image_undecodable"] * 5
    assert [v["status"] for v in rows[1]] == ["ok"] * 5


def test_a_failed_subject_fails_its_dependent_variants(model, monkeypatch):
    stage = make_stage(model)
    real = pipelines.edit

    def fail_subjects(pipe, name, images, instructions, seeds, settings):
        if any("retaining only the product" in text for text in instructions):
            raise RuntimeError("out of memory")
        return real(pipe, name, images, instructions, seeds, settings)

    monkeypatch.setattr(pipelines, "edit", fail_subjects)
    row = stage.process(batch([product_jpeg()])).columns["variants"][0]
    assert [v["status"] for v in row] == ["failed:runtime_error"] + ["failed:no_subject"] * 4


def test_without_the_subject_kind_variants_edit_the_source(model):
    row = make_stage(model, kinds=["angle", "detail"]).process(batch([product_jpeg()])).columns["variants"][0]
    assert [(v["kind"], v["status"]) for v in row] == [("angle", "ok"), ("detail", "ok")]


def test_uri_storage_keys_include_the_prompt_version(model, tmp_path):
    context = RunContext(object_store_uri=str(tmp_path), image_format="png")
    row = make_stage(model, context).process(batch([product_jpeg()])).columns["variants"][0]
    assert all(v["image"] is None and v["uri"].startswith(str(tmp_path)) for v in row)
    assert len({v["uri"] for v in row}) == 5


def test_random_weights_make_noise_that_the_filter_marks_filtered(model):
    b = batch([product_jpeg()])
    rows = make_stage(model).process(b).columns["variants"]
    scored = HeuristicFilterStage(HeuristicFilterOptions(threshold=0.35)).process({**b, "variants": rows}).columns["variants"][0]
    assert all(0.0 <= v["score"] <= 1.0 for v in scored)
    assert "filtered" in {v["status"] for v in scored}
    assert len(scored) == 5


@pytest.mark.parametrize(
    "options, key",
    [
        ({"model_path": ""}, "model_path"),
        ({"model_path": "/m", "pipeline": "StableDiffusionPipeline"}, "pipeline"),
        ({"model_path": "/m", "dtype": "int8"}, "dtype"),
        ({"model_path": "/m", "resolution": 500}, "resolution"),
        ({"model_path": "/m", "prompt_ids": {"subject": "subject.v9"}}, "subject.v9"),
        # another task's prompt passed the checks, then quarantined every product of the run (PromptError)
        ({"model_path": "/m", "prompt_ids": {"background": "background_prompts.v1"}},
         "prompt_ids.background: background_prompts.v1 is a prompt of the background_prompts task; the background "
         "variant takes a version of background_render"),
        ({"model_path": "/m", "prompt_ids": {"angle": "subject"}}, "prompt_ids.angle: subject.v1 is a prompt of"),
        # accepted, then every variant failed: FLUX's T5 takes 512 tokens at most
        ({"model_path": "/m", "max_sequence_length": 1024}, r"max_sequence_length: expected 1\.\.512"),
        ({"model_path": "/m", "guidance_scale": float("nan")}, "guidance_scale: expected a number"),
        ({"model_path": "/m", "image_guidance_scale": -1.0}, "image_guidance_scale: expected a number"),
        ({"model_path": "/m", "device": "gpu"}, r"device: expected auto \(cuda when there is one\), cpu, cuda or cuda:N"),
    ],
)
def test_bad_options_are_config_errors(options, key):
    with pytest.raises(ConfigError, match=key):
        stage_options(DiffusersVariantsStage, options, "stages.image_variants.options")


def test_a_cuda_device_this_machine_lacks_is_a_config_error_naming_the_option(model, monkeypatch):
    """device: cuda on a machine whose torch sees no GPU was a torch assertion mid-load, a traceback."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"stages\.image_variants\.options\.device: cuda:1, but torch sees "):
        make_stage(model, device="cuda:1")


def test_a_model_directory_that_cannot_load_leaves_no_run_folder_to_force_away(model, tmp_path, capsys):
    """An empty model directory is an OSError of diffusers: the run stopped, but its folder stayed, and the same
    command with the path corrected was refused as a run of another config."""
    import json

    from augment.cli import main

    (tmp_path / "a.jpg").write_bytes(product_jpeg())
    (tmp_path / "in.jsonl").write_text(json.dumps({"product_id": "1", "title": "red shirt", "image_uri": "a.jpg"}))
    (tmp_path / "empty").mkdir()
    pipeline, path = model
    out = tmp_path / "run"
    command = ["run", "--input", str(tmp_path / "in.jsonl"), "--output", str(out), "--no-ray", "--no-progress",
               "--stages", "validate,image_variants"] + [
        arg for key, value in (("backend", "diffusers"), ("options.pipeline", pipeline), ("options.device", "cpu"),
                               ("options.dtype", "float32"), ("options.resolution", 32), ("options.steps", 1),
                               ("options.kinds", '["subject"]'))
        for arg in ("--set", f"stages.image_variants.{key}={value}")]
    assert main([*command, "--set", f"stages.image_variants.options.model_path={tmp_path / 'empty'}"]) == 1
    assert "error:" in capsys.readouterr().err and not out.exists()
    assert main([*command, "--set", f"stages.image_variants.options.model_path={path}"]) == 0
