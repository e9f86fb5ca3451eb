"""Values the run config refuses up front, by key and allowed range: stage resources, the limits of `run:`,
`input:` and `output:`, stage options that name files or sets, sections that are not mappings, and what `moon
plan` checks. Every refusal is one `config error:` line with status 2, before Ray starts or a folder is made."""
import dataclasses
import sys
import typing

import pytest

from augment import cli
from augment import config as C
from augment import runner
from augment.core.config import ConfigError


def load(*sets, **kwargs):
    return C.load_for_run(None, kwargs.pop("profile", None), sets=list(sets), **kwargs)


def refused(*sets, **kwargs) -> str:
    with pytest.raises(ConfigError) as caught:
        load(*sets, **kwargs)
    return str(caught.value)


def moon(capsys, *argv):
    try:
        code = cli.main(list(argv))
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


@pytest.fixture
def no_execution(monkeypatch):
    """`moon run` fails the test if it gets as far as running stages (and starting Ray)."""
    def execute(plan, config, use_ray):
        raise AssertionError("the run was not refused before its stages")

    monkeypatch.setattr(runner, "execute", execute)


# -- stage resources ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("item, message", [
    ("num_cpus=-1", "stages.filter.resources.num_cpus: must be a number of at least 0, got -1"),
    ("num_gpus=-0.5", "stages.filter.resources.num_gpus: must be a number of at least 0, got -0.5"),
    ("num_gpus=1.5", "stages.filter.resources.num_gpus: must be a share of one GPU (at most 1) or a whole number "
                     "of GPUs, got 1.5"),
    ("num_cpus=0.00001", "stages.filter.resources.num_cpus: must be 0 or at least 0.0001, got 1e-05"),
    ("batch_size=0", "stages.filter.resources.batch_size: must be at least 1, got 0"),
    ("concurrency=0", "stages.filter.resources.concurrency: must be at least 1, got 0"),
    ('custom={"a100_node": -1}', "stages.filter.resources.custom.a100_node: must be a number of at least 0, got -1"),
    ('custom={"GPU": 1}', "stages.filter.resources.custom.GPU: give CPUs and GPUs as stages.filter.resources.num_gpus"),
])
def test_stage_resources_out_of_range_name_the_key(item, message):
    assert refused(f"stages.filter.resources.{item}") == message


@pytest.mark.parametrize("item", ["num_gpus=0.25", "num_gpus=1", "num_gpus=2", "num_cpus=0", "num_cpus=2.5",
                                  "concurrency=null", "concurrency=3", "batch_size=1", 'custom={"a100_node": 0.5}'])
def test_stage_resources_ray_accepts_pass(item):
    load(f"stages.filter.resources.{item}")


@pytest.mark.parametrize("extra", [(), ("--dry-run",), ("--no-ray",)])
def test_moon_run_refuses_bad_resources_before_ray_and_names_the_key(capsys, no_execution, tmp_path, extra):
    out = tmp_path / "run"
    code, err = moon(capsys, "run", "--limit", "3", "--output", str(out), "--no-progress", *extra,
                     "--set", "stages.filter.resources.batch_size=0")
    assert (code, err) == (2, "config error: stages.filter.resources.batch_size: must be at least 1, got 0\n")
    assert not out.exists()


def test_moon_config_refuses_negative_cpus(capsys):
    code, err = moon(capsys, "config", "--set", "stages.filter.resources.num_cpus=-1")
    assert (code, err) == (2, "config error: stages.filter.resources.num_cpus: must be a number of at least 0, "
                              "got -1\n")


# -- run, input and output limits -----------------------------------------------------------------------------------
@pytest.mark.parametrize("item, message", [
    ("input.work_image_side=0", "input.work_image_side: must be at least 1, got 0"),
    ("input.max_title_chars=-1", "input.max_title_chars: must be at least 1, got -1"),
    ("input.max_image_bytes=0", "input.max_image_bytes: must be at least 1, got 0"),
    ("input.max_image_pixels=0", "input.max_image_pixels: must be at least 1, got 0"),
    ("input.min_image_side=0", "input.min_image_side: must be at least 1, got 0"),
    ("output.image_quality=500", "output.image_quality: must be between 1 and 100, got 500"),
    ("output.image_quality=0", "output.image_quality: must be between 1 and 100, got 0"),
    ("run.num_cpus=0", "run.num_cpus: must be at least 1, got 0"),
    ("run.writer_threads=0", "run.writer_threads: must be at least 1, got 0"),
    ("run.worker_retries=-2", "run.worker_retries: must be at least -1, got -2"),
    ("run.shard_size=0", "run.shard_size: must be at least 1, got 0"),
])
def test_limits_out_of_range_name_the_key_and_the_range(item, message):
    assert refused(item) == message


def test_input_limits_must_leave_an_image_acceptable():
    assert refused("input.min_image_side=100", "input.max_image_pixels=9999") == (
        "input.max_image_pixels: must be at least input.min_image_side squared (10000), got 9999")
    assert refused("input.min_image_side=64", "input.work_image_side=32") == (
        "input.work_image_side: must be at least input.min_image_side (64), got 32")


@pytest.mark.parametrize("item", ["run.worker_retries=-1", "run.num_cpus=null", "output.image_quality=100",
                                  "input.work_image_side=8"])
def test_limits_at_their_ends_pass(item):
    load(item)


def test_every_numeric_key_of_run_input_and_output_has_a_range():
    for section, cls in (("run", C.RunConfig), ("input", C.InputConfig), ("output", C.OutputConfig)):
        hints = typing.get_type_hints(cls)
        numeric = {f.name for f in dataclasses.fields(cls)
                   if {int, float} & {hints[f.name], *typing.get_args(hints[f.name])}}
        assert numeric == set(C.LIMITS[section]), section


# -- stage options that name files and sets -------------------------------------------------------------------------
@pytest.mark.parametrize("item, message", [
    ("stages.background_prompts.options.count=0", "stages.background_prompts.options.count: must be at least 1, got 0"),
    ("stages.background_prompts.options.count=15",
     "stages.background_prompts.options.count: must be between 1 and 14 for set backgrounds.v1, got 15"),
    ("stages.background_prompts.options.backgrounds=backgrounds.v9",
     "stages.background_prompts.options.backgrounds: unknown background set 'backgrounds.v9'; available: "
     "backgrounds.v1"),
    ("stages.ner.options.lang=xx",
     "stages.ner.options.lang: no NER configuration for language 'xx'; configurations: en, zh"),
])
def test_stage_options_the_run_would_refuse_are_refused_by_the_config(item, message):
    assert refused(item) == message


def test_a_count_past_64_bits_is_refused_by_the_config_and_the_command_line(capsys):
    """Parquet and Arrow hold counts in 64 bits: a shard size of 2^63 passed the config and crashed the plan."""
    from augment.cli import main

    assert refused(f"run.shard_size={2**63}") == (
        f"run.shard_size: must be at most {2**63 - 1} (2^63 - 1), got {2**63}")
    with pytest.raises(SystemExit):
        main(["run", "--dry-run", "--no-ray", "--shard-size", str(2**63)])
    assert "argument --shard-size: must be at most 9223372036854775807 (2^63 - 1)" in capsys.readouterr().err


@pytest.mark.parametrize("spec", ["", "BRAND="])
def test_a_lexicon_spec_naming_no_file_is_refused_by_the_config(spec):
    assert refused(f'stages.ner.options.lexicons=["{spec}"]') == (
        "stages.ner.options.lexicons[0]: a lexicon spec names no file (an empty path)")


@pytest.mark.parametrize("spec", ["/nonexistent.jsonl", "BRAND=/nonexistent.txt"])
def test_a_missing_lexicon_file_is_refused_by_the_config(spec):
    message = refused(f'stages.ner.options.lexicons=["{spec}"]')
    assert message.startswith("stages.ner.options.lexicons[0]: lexicon file /nonexistent.")
    assert "not found" in message


def test_a_lexicon_of_an_unknown_label_is_refused_by_the_config(tmp_path):
    phrases = tmp_path / "phrases.txt"
    phrases.write_text("Acme\n")
    assert refused(f'stages.ner.options.lexicons=["FOO={phrases}"]').startswith(
        f"stages.ner.options.lexicons[0]: lexicon FOO={phrases}: unknown label FOO")


@pytest.mark.parametrize("line, says", [
    ("not json", "2: not JSON (Expecting value)"),
    ('{"label": "BRAND", "pattern": [{"TEXT": {"REGEX": "("}}]}', '2: token spec 1: REGEX "(" does not compile'),
    ('{"label": "BRAND", "pattern": []}', "2: a token pattern needs at least one token spec"),
    ('{"label": "BRAND", "pattern": ["Foo"]}', "2: token spec 1 of the pattern is not an object of attributes"),
])
def test_a_lexicon_the_run_cannot_read_is_refused_by_the_config(tmp_path, line, says):
    """Before planning, so that no run folder is left half made by a stage that fails to set up."""
    lexicon = tmp_path / "brands.jsonl"
    lexicon.write_text('{"label": "BRAND", "pattern": "Foo"}\n' + line + "\n")
    assert refused(f'stages.ner.options.lexicons=["{lexicon}"]').startswith(
        f"stages.ner.options.lexicons[0]: {lexicon}:{says}")


def test_existing_lexicon_files_pass(tmp_path):
    brands = tmp_path / "brands.txt"
    brands.write_text("Acme\n")
    load(f'stages.ner.options.lexicons=["BRAND={brands}", "{brands}"]')


@pytest.mark.parametrize("argv", [("config",), ("run", "--dry-run", "--limit", "3")])
def test_moon_config_and_dry_run_refuse_a_background_count_the_set_cannot_fill(capsys, no_execution, argv):
    code, err = moon(capsys, *argv, "--set", "stages.background_prompts.options.count=0")
    assert (code, err) == (2, "config error: stages.background_prompts.options.count: must be at least 1, got 0\n")


def test_the_dags_plan_task_refuses_them_before_planning(tmp_path):
    from augment.orchestrate import tasks as T

    path = tmp_path / "run.yaml"
    path.write_text("stages:\n  background_prompts:\n    options: {count: 15}\n")
    request = T.RunRequest.from_params({
        "input_uri": str(tmp_path / "in.parquet"), "output_uri": str(tmp_path / "out"), "profile": None,
        "config_file": str(path), "stages": [], "shards_per_task": None, "max_tasks": 4, "gpus": None,
        "limit": None, "ray_conn_id": "ray_default", "env_vars": {}}, "r")
    with pytest.raises(T.RunRequestError, match=r"^config: stages\.background_prompts\.options\.count: must be "
                                                r"between 1 and 14"):
        request.config()


def test_checking_stage_options_imports_neither_spacy_nor_torch(monkeypatch):
    for name in ("spacy", "torch", "diffusers", "transformers"):
        monkeypatch.setitem(sys.modules, name, None)  # importing it now raises ImportError
    for profile in ("local", "gpu", "gpu-fast"):
        load(profile=profile)
    assert refused("stages.ner.options.lang=xx").startswith("stages.ner.options.lang:")


# -- sections that are not mappings ---------------------------------------------------------------------------------
@pytest.mark.parametrize("text, message", [
    ("run: 5\n", "run: expected a mapping, got int (5)"),
    ("run:\n", "run: expected a mapping, got NoneType (None)"),
    ("stages:\n  filter: 5\n", "stages.filter: expected a mapping, got int (5)"),
    ("stages:\n  filter:\n    resources: [1]\n", "stages.filter.resources: expected a mapping, got list ([1])"),
])
def test_a_section_that_is_not_a_mapping_is_refused_not_dropped(tmp_path, text, message):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    for stages in (None, "ner"):  # --stages merges a mapping over every stage section
        with pytest.raises(ConfigError) as caught:
            C.load_for_run(path, shard_size=3, stages=stages)
        assert str(caught.value) == message


def test_set_of_a_section_to_a_scalar_is_a_config_error():
    assert refused("run=5", shard_size=3) == "run: expected a mapping, got int (5)"


def test_moon_config_refuses_a_run_section_that_is_not_a_mapping(capsys, tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("run: 5\n")
    assert moon(capsys, "config", "--config", str(path)) == (2, "config error: run: expected a mapping, got int (5)\n")


# -- moon plan ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (("--profile", "gpu", "--set", "stages.image_variants.options.steps=abc"),
     "config error: stages.image_variants.options.steps: expected an integer, got str ('abc')"),
    (("--profile", "gpu", "--set", "stages.image_variants.backend=nosuch"),
     "config error: stages.image_variants.backend: stage 'image_variants' has no backend 'nosuch'; available: "
     "classic, diffusers"),
    (("--profile", "gpu", "--set", "stages.image_variants.options.stpes=4"),
     "config error: unknown key stages.image_variants.options.stpes; allowed keys here: "),
    (("--set", "stages.image_variants.options.backgrounds=-2"),
     "config error: stages.image_variants.options.backgrounds: expected 0..10, got -2"),  # as moon config says
    (("--set", "stages.filter.resources.batch_size=0"),
     "config error: stages.filter.resources.batch_size: must be at least 1, got 0"),
    (("--profile", "gpu", "--set", "stages.image_variants.options.steps=0"),  # a range, with no model_path given
     "config error: stages.image_variants.options.steps: expected 1..1000, got 0"),
    (("--image-kb", "-1"), "error: --image-kb must be more than 0, got -1"),
    (("--shards-per-job", "0"), "error: --shards-per-job must be at least 1, got 0"),
    (("--concurrent-jobs", "0"), "error: --concurrent-jobs must be at least 1, got 0"),
    (("--model-load-s", "-5"), "error: --model-load-s must be 0 or more, got -5"),
])
def test_moon_plan_refuses_bad_options_and_flags(capsys, argv, message):
    code, err = moon(capsys, "plan", "--products", "1000", "--json", *argv)
    assert code == 2 and err.startswith(message) and err.count("\n") == 1, err


def test_moon_plan_does_not_need_model_or_data_files(capsys):
    code, err = moon(capsys, "plan", "--products", "1000", "--json", "--profile", "gpu",
                     "--set", "stages.ner.options.lexicons=[\"/nonexistent.jsonl\"]")
    assert code == 0, err


# -- what ships must validate ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("profile", sorted(p.stem for p in C.PROFILE_DIR.glob("*.yaml")))
def test_bundled_profiles_validate(profile):
    C.load(profile=profile)


def test_the_compose_stack_config_validates():
    from pathlib import Path

    C.load(Path(__file__).resolve().parents[2] / "docker" / "stack-run.yaml")


@pytest.mark.parametrize("backend", ["openai", "vllm", "transformers"])
def test_a_model_backends_fallback_background_set_is_checked_by_the_config(backend):
    message = refused(f"stages.background_prompts.backend={backend}",
                      "stages.background_prompts.options.backgrounds=backgrounds.v9",
                      "stages.background_prompts.options.model=m")
    assert message == ("stages.background_prompts.options.backgrounds: unknown background set 'backgrounds.v9'; "
                       "available: backgrounds.v1")
