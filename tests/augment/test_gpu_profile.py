"""The gpu profile: it parses over the local profile and every class it names resolves."""
from __future__ import annotations

import pytest
import yaml

from augment import config
from augment.stages import resolve

GPU_YAML = config.PROFILE_DIR / "gpu.yaml"


def test_gpu_profile_extends_local_and_validates():
    cfg = config.load(profile="gpu")
    local = config.load(profile="local")
    assert cfg.profile == "gpu"
    assert cfg.stages["image_variants"].backend == "diffusers"
    assert cfg.stages["filter"].backend == "clip"
    assert cfg.stages["validate"] == local.stages["validate"]  # inherited unchanged
    assert cfg.hash() != local.hash()


def test_every_stage_backend_and_options_in_the_gpu_profile_resolve():
    raw = yaml.safe_load(GPU_YAML.read_text())
    assert raw["extends"] == "local"
    for stage, section in raw["stages"].items():
        cls = resolve(stage, section["backend"])
        assert cls.name == stage and cls.backend == section["backend"]
        config.stage_options(cls, section.get("options", {}), f"stages.{stage}.options")


@pytest.mark.parametrize("profile", ["gpu", "gpu-fast"])
def test_the_diffusers_pipeline_class_named_by_the_profile_exists(profile):
    diffusers = pytest.importorskip("diffusers")
    from augment.stages.image_variants import diffusers_pipelines as pipelines

    name = config.load(profile=profile).stages["image_variants"].options["pipeline"]
    assert pipelines.pipeline_class(name) is getattr(diffusers, name)
    for supported in pipelines.SUPPORTED:
        assert hasattr(diffusers, supported)


def test_gpu_fast_profile_is_the_gpu_profile_with_instruct_pix2pix():
    fast = config.load(profile="gpu-fast")
    gpu = config.load(profile="gpu")
    assert fast.stages["image_variants"].options["pipeline"] == "StableDiffusionInstructPix2PixPipeline"
    assert fast.stages["image_variants"].options["steps"] == 20
    assert {k: v for k, v in fast.stages.items() if k != "image_variants"} == {
        k: v for k, v in gpu.stages.items() if k != "image_variants"}


def test_the_clip_classes_the_filter_loads_exist():
    transformers = pytest.importorskip("transformers")
    assert hasattr(transformers, "CLIPModel") and hasattr(transformers, "AutoProcessor")


@pytest.mark.slow  # a child process
def test_resolving_the_gpu_backends_imports_no_torch():
    import subprocess
    import sys

    code = (
        "import sys; from augment import config; config.load(profile='gpu'); "
        "bad = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]; "
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
