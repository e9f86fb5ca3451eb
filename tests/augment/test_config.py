import pytest

from augment import config as C


def write(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_default_profile_is_local_with_every_stage():
    config = C.load(check_stages=False)
    assert config.profile == "local"
    assert list(config.stages) == ["validate", "ner", "enrich_title", "background_prompts", "image_variants", "filter"]
    assert config.stages["image_variants"].backend == "classic"


def test_unknown_top_level_key_names_the_key(tmp_path):
    with pytest.raises(C.ConfigError, match=r"unknown key shard_sise"):
        C.load(write(tmp_path, "shard_sise: 3\n"), check_stages=False)


def test_unknown_nested_key_names_the_dotted_path(tmp_path):
    with pytest.raises(C.ConfigError, match=r"unknown key run\.shard_sise"):
        C.load(write(tmp_path, "run:\n  shard_sise: 3\n"), check_stages=False)


def test_wrong_type_names_key_and_expected_type(tmp_path):
    with pytest.raises(C.ConfigError, match=r"run\.shard_size: expected an integer, got str \('ten'\)"):
        C.load(write(tmp_path, "run:\n  shard_size: ten\n"), check_stages=False)


def test_bool_is_not_accepted_as_int(tmp_path):
    with pytest.raises(C.ConfigError, match=r"run\.shard_size: expected an integer, got bool"):
        C.load(write(tmp_path, "run:\n  shard_size: true\n"), check_stages=False)


def test_unknown_profile_lists_profiles():
    with pytest.raises(C.ConfigError, match=r"unknown profile 'nope'; profiles are .*local"):
        C.load(profile="nope")


def test_unknown_stage_is_an_error(tmp_path):
    with pytest.raises(C.ConfigError, match=r"unknown key stages\.resize"):
        C.load(write(tmp_path, "stages:\n  resize:\n    backend: x\n"), check_stages=True)


def test_unknown_backend_lists_available(tmp_path):
    with pytest.raises(C.ConfigError, match=r"stages\.image_variants\.backend: stage 'image_variants' has no backend 'magic'; available: .*classic"):
        C.load(write(tmp_path, "stages:\n  image_variants:\n    backend: magic\n"))


def test_override_merges_over_profile(tmp_path):
    config = C.load(write(tmp_path, "run:\n  shard_size: 7\n"), check_stages=False)
    assert config.run.shard_size == 7
    assert config.stages["ner"].backend == "spacy_rules"


def test_hash_ignores_resources_and_ray_address(tmp_path):
    base = C.load(check_stages=False)
    tuned = C.load(write(tmp_path, "run:\n  ray_address: ray://x:10001\nstages:\n  ner:\n    resources:\n      batch_size: 99\n"),
                   check_stages=False)
    assert tuned.hash() == base.hash()


def test_hash_changes_with_output_relevant_fields(tmp_path):
    base = C.load(check_stages=False)
    other = C.load(write(tmp_path, "output:\n  image_quality: 80\n"), check_stages=False)
    assert other.hash() != base.hash()


def test_hash_ignores_how_a_model_server_is_reached_but_not_which_model(tmp_path):
    served = "stages:\n  enrich_title:\n    backend: openai\n    options:\n      model: qwen\n"
    base = C.load(write(tmp_path, served))
    moved = C.load(write(tmp_path, served + "      base_url: http://vllm.moon.svc:8000/v1\n      timeout_s: 30\n"
                                           "      max_concurrency: 64\n      max_retries: 1\n"))
    assert moved.hash() == base.hash()
    assert C.load(write(tmp_path, served.replace("qwen", "llama"))).hash() != base.hash()
    assert C.load(write(tmp_path, served + "      temperature: 0.7\n")).hash() != base.hash()


def test_hash_ignores_where_a_vllm_engine_runs(tmp_path):
    served = "stages:\n  enrich_title:\n    backend: vllm\n    options:\n      model: /models/qwen\n"
    base = C.load(write(tmp_path, served), check_stages=False)
    placed = C.load(write(tmp_path, served + "      replicas: 4\n      accelerator_type: H100\n"), check_stages=False)
    assert placed.hash() == base.hash()


def test_shard_size_does_not_change_content_hash(tmp_path):
    assert C.load(write(tmp_path, "run:\n  shard_size: 5\n"), check_stages=False).hash() == C.load(check_stages=False).hash()


def test_disabled_stage_options_do_not_change_hash(tmp_path):
    off = C.load(write(tmp_path, "stages:\n  filter:\n    enabled: false\n"), check_stages=False)
    off2 = C.load(write(tmp_path, "stages:\n  filter:\n    enabled: false\n    options:\n      threshold: 0.9\n"), check_stages=False)
    assert off.hash() == off2.hash()


def test_input_columns_must_name_contract_columns(tmp_path):
    with pytest.raises(C.ConfigError, match=r"input\.columns\.sku: not an input column"):
        C.load(write(tmp_path, "input:\n  columns:\n    sku: id\n"), check_stages=False)


def test_invalid_yaml_is_a_config_error(tmp_path):
    with pytest.raises(C.ConfigError, match="not valid YAML"):
        C.load(write(tmp_path, "run: [\n"), check_stages=False)


def test_validate_takes_no_stage_options_and_points_to_input(tmp_path):
    with pytest.raises(C.ConfigError, match=r"stages\.validate\.options\.max_image_bytes: .* input\.max_image_bytes"):
        C.load(write(tmp_path, "stages:\n  validate:\n    options:\n      max_image_bytes: 5\n"))


def test_validate_cannot_be_turned_off(tmp_path):
    """Without it, duplicates and unparsable rows would be committed as data, and still add up."""
    with pytest.raises(C.ConfigError, match=r"^stages\.validate\.enabled: every run validates its input"):
        C.load(write(tmp_path, "stages:\n  validate:\n    enabled: false\n"))
    with pytest.raises(C.ConfigError, match=r"^stages\.validate\.enabled"):
        C.load_for_run(sets=["stages.validate.enabled=false"])


def test_set_overrides_any_key_and_the_flags_win(tmp_path):
    config = C.load_for_run(sets=["stages.enrich_title.backend=openai", "stages.enrich_title.options.model=qwen",
                                  "run.shard_size=8", "stages.image_variants.options.backgrounds=1"])
    assert config.stages["enrich_title"].backend == "openai"
    assert config.stages["enrich_title"].options == {"model": "qwen"}  # another backend: the template's options go
    assert config.run.shard_size == 8 and config.stages["image_variants"].options["backgrounds"] == 1
    assert C.load_for_run(sets=["run.shard_size=8"], shard_size=4).run.shard_size == 4
    # with --stages, a stage the --set disables stays chosen by --stages
    chosen = C.load_for_run(sets=["stages.ner.enabled=false", "run.shard_size=8"], stages="ner")
    assert [name for name, _ in chosen.enabled_stages()] == ["validate", "ner"] and chosen.run.shard_size == 8
    assert C.load_for_run(sets=["run.shard_size=8"]).hash() == C.load_for_run(
        write(tmp_path, "run:\n  shard_size: 8\n")).hash()  # the same run as a file that says it


def test_a_bad_set_names_the_key():
    with pytest.raises(C.ConfigError, match=r"override 'run\.shard_size' is not of the form key=value"):
        C.load_for_run(sets=["run.shard_size"])
    with pytest.raises(C.ConfigError, match=r"unknown key stages\.filter\.options\.nope"):
        C.load_for_run(sets=["stages.filter.options.nope=1"])


def test_profile_and_a_files_other_extends_are_refused(tmp_path):
    path = write(tmp_path, "extends: gpu\n")
    with pytest.raises(C.ConfigError, match=r"extends the profile 'gpu' and --profile asks for 'local'; give one"):
        C.load(path, "local", check_stages=False)
    assert C.load(path, "gpu", check_stages=False).profile == C.load(path, check_stages=False).profile == "gpu"


def test_an_unknown_key_of_a_section_without_keys_says_so():
    import dataclasses

    from augment.core.config import from_dict

    @dataclasses.dataclass
    class NoOptions:
        pass

    with pytest.raises(C.ConfigError, match=r"^unknown key stages\.x\.options\.foo; this section takes no keys$"):
        from_dict(NoOptions, {"foo": 1}, "stages.x.options")


def test_moon_config_run_and_plan_take_set(capsys):
    import json

    from augment import cli

    assert cli.main(["config", "--set", "stages.enrich_title.backend=openai", "--set", "stages.enrich_title.options.model=m",
                     "--set", "run.shard_size=8"]) == 0
    printed = json.loads(capsys.readouterr().out)
    resolved, effective = printed["config"], printed["effective_options"]
    assert resolved["stages"]["enrich_title"]["backend"] == "openai" and resolved["run"]["shard_size"] == 8
    # what was written, and beside it what the backend runs with: its defaults filled in
    assert resolved["stages"]["enrich_title"]["options"] == {"model": "m"}
    assert effective["enrich_title"]["model"] == "m" and effective["enrich_title"]["max_retries"] == 5
    assert effective["background_prompts"] == {"count": 10, "backgrounds": "backgrounds.v1"}
    assert "validate" not in effective  # its options are the input: section
    parser = cli.build_parser()
    assert parser.parse_args(["run", "--set", "a.b=1", "--set", "c=2"]).set == ["a.b=1", "c=2"]
    def images_per_product(*argv):
        assert cli.main(["plan", "--products", "1000", "--json", *argv]) == 0
        stages = json.loads(capsys.readouterr().out)["stages"]
        return next(s["units_per_product"] for s in stages if s["stage"] == "image_variants")

    assert images_per_product() == 5.0  # the local profile: one background
    assert images_per_product("--set", "stages.image_variants.options.backgrounds=3") == 7.0


@pytest.mark.parametrize("text, problem", [
    ("run:\n  shard_size: 4\n  shard_size: 8\n", "found the key 'shard_size' twice in one mapping"),
    ("run:\n  shard_size: 4\nrun:\n  progress: false\n", "found the key 'run' twice in one mapping"),
    ("a: " + "[" * 5000 + "]" * 5000 + "\n", "not a config: nested too deep"),
])
def test_a_yaml_file_whose_value_cannot_be_meant_is_a_config_error(tmp_path, text, problem):
    with pytest.raises(C.ConfigError, match=problem):
        C.load(write(tmp_path, text), check_stages=False)


@pytest.mark.parametrize("item, problem", [
    ('run={"shard_size": 4, "shard_size": 8}', "override 'run': the key 'shard_size' is written twice"),
    ("run.shard_size=" + "[" * 20000 + "]" * 20000, "override 'run.shard_size' is not a config: nested too deep"),
])
def test_a_set_value_whose_json_cannot_be_meant_is_a_config_error(item, problem):
    with pytest.raises(C.ConfigError, match=problem):
        C.load_for_run(sets=[item])


def test_a_config_file_is_yaml_unless_named_json_and_never_read_past_its_limit(tmp_path, monkeypatch):
    for name in ("config.YAML", "config"):
        (tmp_path / name).write_text("run:\n  shard_size: 3\n")
        assert C.load(tmp_path / name, check_stages=False).run.shard_size == 3
    from augment.core import config as loader

    monkeypatch.setattr(loader, "MAX_CONFIG_BYTES", 64)
    with pytest.raises(C.ConfigError, match="cannot be read: over 64 bytes: not a config"):
        C.load("/dev/zero", check_stages=False)  # a file that never ends


def test_profile_in_a_file_or_a_set_names_the_profile_as_extends_and_profile_do(tmp_path):
    assert C.load(write(tmp_path, "profile: gpu\n"), check_stages=False).stages["image_variants"].backend == "diffusers"
    assert C.load(overrides={"profile": "gpu"}, check_stages=False).stages["image_variants"].backend == "diffusers"
    with pytest.raises(C.ConfigError, match="names the profile 'gpu' and extends 'local'"):
        C.load(write(tmp_path, "extends: local\nprofile: gpu\n"), check_stages=False)


@pytest.mark.parametrize("key, value, problem", [
    ("output.compression", "lzma", "output.compression: expected one of zstd, snappy, gzip, brotli, lz4, none"),
    ("stages.enrich_title.options.max_concurrency", 0, "max_concurrency must be at least 1, got 0"),
    ("stages.enrich_title.options.timeout_s", -1, "timeout_s must be over 0, got -1"),
    ("stages.enrich_title.options.max_retries", -5, "max_retries must be at least 0, got -5"),
    ("stages.enrich_title.options.backoff_s", -1, "backoff_s must be at least 0, got -1"),
    ("stages.enrich_title.options.base_url", "notaurl", "base_url must be an http:// or https:// URL"),
])
def test_values_that_would_hang_or_fail_a_run_are_refused_by_key(key, value, problem):
    with pytest.raises(C.ConfigError, match=problem):
        C.load_for_run(profile="gpu", sets=[f"{key}={value}"])


def test_stages_naming_no_stage_is_refused():
    with pytest.raises(C.ConfigError, match="--stages ',' names no stage"):
        C.load_for_run(stages=",")
