"""`moon plan` arithmetic on the fixture figures in fixtures/bench/ and the config fixtures/plan.yaml.

Figures (per device): validate 500 products/s and ner 250 products/s per CPU core; enrich_title/vllm 600 products
in 60 s on 2 H100 = 5 products/s per GPU; image_variants/diffusers 2 images/s on an H100, 1 image/s on an A100.
The config asks for 5 kinds with 2 backgrounds = 6 images per product, and a filter backend with no figure.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from augment.ops import capacity
from augment import config as C

HERE = Path(__file__).parent
BENCH = HERE / "fixtures" / "bench"
CONFIG = HERE / "fixtures" / "plan.yaml"
ROOT = HERE.parents[2]


@pytest.fixture(scope="module")
def figures():
    return capacity.load_figures([str(BENCH)])


@pytest.fixture(scope="module")
def config():
    return C.load(CONFIG, check_stages=False)


def plan(config, figures, **kwargs):
    args = {"products": 10_000, "gpus": 4, "gpu_type": "h100", "cpus": 8} | kwargs
    return capacity.estimate(config, args.pop("products"), figures, **args)


def test_images_per_product_counts_each_background(config):
    assert capacity.images_per_product(config) == 6.0


def test_device_hours_per_stage(config, figures):
    e = plan(config, figures)
    hours = {s.stage: s.device_hours for s in e.stages}
    assert hours == pytest.approx({"validate": 20 / 3600, "ner": 40 / 3600, "enrich_title": 2000 / 3600,
                                   "image_variants": 30_000 / 3600})


def test_gpu_and_cpu_hours_sum_their_stages(config, figures):
    e = plan(config, figures)
    assert (e.gpu_hours, e.cpu_core_hours) == pytest.approx((32_000 / 3600, 60 / 3600))


def test_wall_time_overlaps_stages_or_adds_them(config, figures):
    e = plan(config, figures)
    assert e.wall_hours == pytest.approx(32_000 / 4 / 3600)  # the GPUs are the bottleneck
    assert e.wall_hours_sequential == pytest.approx((32_000 / 4 + 60 / 8) / 3600)


def test_more_gpus_shorten_the_wall_time_not_the_gpu_hours(config, figures):
    small, large = plan(config, figures, gpus=4), plan(config, figures, gpus=16)
    assert large.gpu_hours == pytest.approx(small.gpu_hours)
    assert large.wall_hours == pytest.approx(small.wall_hours / 4)


def test_the_asked_gpu_type_picks_its_figure(config, figures):
    e = plan(config, figures, gpu_type="a100")
    variants = next(s for s in e.stages if s.stage == "image_variants")
    assert variants.rate_per_device == 1.0 and variants.device_hours == pytest.approx(60_000 / 3600)
    assert "measured on a100" not in " ".join(variants.warnings)


def test_another_gpus_figure_is_used_with_a_warning(config, figures):
    e = plan(config, figures, gpu_type="l4")
    variants = next(s for s in e.stages if s.stage == "image_variants")
    assert variants.rate_per_device == 2.0  # the most recent of the two
    assert "measured on h100, not l4" in variants.warnings


def test_a_differing_option_is_warned(config, figures):
    variants = next(s for s in plan(config, figures).stages if s.stage == "image_variants")
    assert "measured with resolution=512, planned resolution=768" in variants.warnings


def figure_files(tmp_path, *figures):
    """Bench files of image_variants/diffusers, each the H100 fixture with (config, GPU name) of its own."""
    base = json.loads((BENCH / "image_variants-diffusers-h100.json").read_text())
    for i, (config, gpu) in enumerate(figures):
        data = base | {"config": config, "hardware": base["hardware"] | {"name": gpu}}
        (tmp_path / f"image_variants-diffusers-{i}.json").write_text(json.dumps(data))
    return capacity.load_figures([str(tmp_path)])


def variants_plan(figures, steps, gpu_type="h100", pipeline="FluxKontextPipeline"):
    config = C.load(CONFIG, check_stages=False)
    config.stages["image_variants"].options = {"pipeline": pipeline, "steps": steps, "backgrounds": 2}
    return next(s for s in plan(config, figures, gpu_type=gpu_type).stages if s.stage == "image_variants")


def test_a_figure_of_other_steps_is_scaled_to_the_planned_steps(tmp_path):
    figures = figure_files(tmp_path, ({"pipeline": "FluxKontextPipeline", "steps": 4}, "NVIDIA H100 80GB HBM3"))
    variants = variants_plan(figures, steps=28)
    assert variants.rate_per_device == pytest.approx(2.0 * 4 / 28)  # the fixture's 2 images/s at 4 steps
    assert variants.device_hours == pytest.approx(10_000 * 6 / (2.0 * 4 / 28) / 3600)
    assert "measured with steps=4, planned steps=28 (rate scaled by 4/28)" in variants.warnings


def test_the_same_pipeline_then_the_asked_gpu_then_the_closest_step_count(tmp_path):
    figures = figure_files(
        tmp_path,
        ({"pipeline": "FluxKontextPipeline", "steps": 3}, "NVIDIA H100 80GB HBM3"),
        ({"pipeline": "FluxKontextPipeline", "steps": 4}, "NVIDIA H100 80GB HBM3"),
        ({"pipeline": "StableDiffusionInstructPix2PixPipeline", "steps": 28}, "NVIDIA H100 80GB HBM3"),
        ({"pipeline": "FluxKontextPipeline", "steps": 28}, "NVIDIA H200"),
    )
    # on the asked GPU, the FLUX figure nearest in steps; never the other editor's figure with the planned steps
    assert variants_plan(figures, steps=28).warnings == ["measured with steps=4, planned steps=28 (rate scaled by 4/28)"]
    assert variants_plan(figures, steps=28, gpu_type="h200").warnings == []
    # on a GPU with no figure: the one nearest in steps, wherever it was measured
    assert variants_plan(figures, steps=20, gpu_type="l4").warnings == [
        "measured on h200, not l4", "measured with steps=28, planned steps=20 (rate scaled by 28/20)"]
    ip2p = variants_plan(figures, steps=28, pipeline="StableDiffusionInstructPix2PixPipeline")
    assert ip2p.warnings == [] and ip2p.rate_per_device == 2.0


def test_a_stage_without_figures_is_named_and_left_out(config, figures):
    e = plan(config, figures)
    assert e.missing == ["filter/clip"] and not e.complete
    assert "background_prompts" not in {s.stage for s in e.stages}  # disabled in the config


def test_utilisation_divides_the_throughput(config, figures):
    assert plan(config, figures, utilisation=0.5).gpu_hours == pytest.approx(2 * 32_000 / 3600)


def test_output_size_adds_rows_and_generated_images(config, figures):
    e = plan(config, figures)
    assert e.output_bytes == 10_000 * 50_000 + 10_000 * 6 * 40_000
    assert e.output_bytes_from == ["validate", "image_variants"]


def test_objects_count_shards_and_images_stored_as_objects(figures):
    inline = C.load(CONFIG, check_stages=False)
    as_files = C.load(CONFIG, overrides={"output": {"image_storage": "uri"}}, check_stages=False)
    assert plan(inline, figures).objects["data_shards"] == 100
    assert plan(inline, figures).objects["variant_images"] == 0
    assert plan(as_files, figures).objects["variant_images"] == 60_000


def test_paper_reference_is_scaled_to_the_products(config, figures):
    e = plan(config, figures, products=5_000_000, gpus=256)
    assert e.paper_reference["a100_seconds_per_product"] == 15.67
    assert e.paper_reference["a100_hours_for_products"] == 21_760.0
    assert e.paper_reference["hours_on_these_gpus_at_a100_speed"] == 85.0


def test_gpu_stages_without_gpus_are_an_error(config, figures):
    with pytest.raises(capacity.PlanError, match="image_variants run on GPUs"):
        plan(config, figures, gpus=0)


def test_default_cpus_are_sixteen_per_gpu(config, figures):
    assert plan(config, figures, cpus=None, gpus=4).cpus == 64


@pytest.mark.slow  # a child process
def test_moon_plan_prints_json(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "augment.cli", "plan", "--products", "10000", "--config", str(CONFIG), "--gpus", "4",
         "--cpus", "8", "--bench", str(BENCH), "--json"], cwd=ROOT, capture_output=True, text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["gpu_hours"] == pytest.approx(32_000 / 3600) and data["missing"] == ["filter/clip"]


@pytest.mark.slow  # a child process
def test_moon_plan_text_names_every_stage_and_the_reference():
    out = subprocess.run(
        [sys.executable, "-m", "augment.cli", "plan", "--products", "10000", "--config", str(CONFIG), "--bench",
         str(BENCH)], cwd=ROOT, capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    for word in ("validate", "ner", "enrich_title", "image_variants", "filter", "no figure", "MOON2.0"):
        assert word in out.stdout


def test_the_catalogues_image_size_replaces_the_measured_one(config, figures):
    # the fixture row: 50,000 bytes, of which 30,000 are the source image; the plan's images are 200 KB
    e = plan(config, figures, image_kb=200)
    assert e.output_bytes == 10_000 * (50_000 - 30_000 + 200_000) + 10_000 * 6 * 40_000


def test_the_papers_figure_in_the_repository_gives_its_85_hours_on_256_a100(config):
    figures = capacity.load_figures()  # bench/results/: the paper's figure for the GPU image backend among them
    e = capacity.estimate(config, 5_000_000, figures, gpus=256, gpu_type="a100", cpus=4096)
    variants = next(s for s in e.stages if s.stage == "image_variants")
    assert variants.source == "paper" and variants.device_hours == pytest.approx(256 * 85)
    assert "a paper figure, not a measurement" in variants.warnings


# -- job start and model load ---------------------------------------------------------------------------------
def test_job_overhead_is_jobs_times_gpus_times_start_and_load(config, figures):
    # 10,000 products in shards of 100 = 100 shards; 10 shards per job = 10 jobs, each with all 4 GPUs.
    e = plan(config, figures, jobs={"shards_per_job": 10, "job_start_s": 30.0, "model_load_s": 60.0})
    o = e.overhead
    assert (o["shards"], o["jobs"], o["gpus_per_job"]) == (100, 10, 4)
    assert o["gpu_hours"] == pytest.approx(10 * 4 * 90 / 3600)
    assert o["share"] == pytest.approx(o["gpu_hours"] / (o["gpu_hours"] + e.gpu_hours))
    assert e.wall_hours == pytest.approx((e.gpu_hours + o["gpu_hours"]) / 4)
    without = plan(config, figures)
    assert without.overhead == {} and without.wall_hours < e.wall_hours


def test_bigger_jobs_and_shared_clusters_cut_the_overhead(config, figures):
    small = plan(config, figures, jobs={"shards_per_job": 1}).overhead
    big = plan(config, figures, jobs={"shards_per_job": 50}).overhead
    shared = plan(config, figures, jobs={"shards_per_job": 1, "concurrent_jobs": 4}).overhead
    assert big["share"] < small["share"] and shared["gpus_per_job"] == 1 and shared["share"] < small["share"]
    needed = small["shards_per_job_for_target"]
    assert needed is not None
    at_needed = plan(config, figures, jobs={"shards_per_job": needed}).overhead
    below = plan(config, figures, jobs={"shards_per_job": max(1, needed - 1)}).overhead
    assert at_needed["share"] < 0.05 and (needed == 1 or below["share"] >= 0.05)


def test_by_default_the_run_is_cut_as_the_dag_cuts_it_for_that_many_gpus(config, figures):
    # 100 shards: 4 GPUs make 16 batches (BATCHES_PER_GPU), as moon_augment's form with gpus 4 does; 256 GPUs would
    # make 1,024, more than the shards, so every shard is a job of its own
    from augment.orchestrate.tasks import RunRequest
    from augment.plan import batch_layout

    four = plan(config, figures, gpus=4, jobs={"job_start_s": 30.0}).overhead
    form = RunRequest(input_uri="/in", output_uri="/out", gpus=4)
    assert form.max_batches() == 16 and four["shards_per_job"] == batch_layout(100, form.max_batches()) == 7
    assert four["jobs"] == 15  # 14 of 7 shards and one of 2
    assert plan(config, figures, gpus=256, jobs={"job_start_s": 30.0}).overhead["jobs"] == 100


def test_a_job_never_counts_more_gpus_than_it_has_gpu_batches(config, figures):
    # one shard of 100 products per job; no stage of the fixture config asks for GPUs in its resources, so a GPU
    # batch counts as one product: 100 batches, 100 GPU actors at most
    o = plan(config, figures, gpus=256, jobs={"shards_per_job": 1}).overhead
    assert o["gpus_per_job"] == 100


def test_jobs_that_cannot_use_the_cluster_leave_its_gpus_idle_in_the_wall_time(config, figures):
    """The wall time was all GPU-hours over all GPUs, whatever the jobs: 625 jobs of 4 GPUs, one at a time on 256
    GPUs, took as long as 64 at a time, and a run of one small job less than its own start and model load."""
    jobs = {"shards_per_job": 1, "job_start_s": 30.0, "model_load_s": 30.0}
    one = plan(config, figures, gpus=256, jobs=jobs)
    o = one.overhead
    assert (o["jobs"], o["gpus_per_job"]) == (100, 100)  # 100 products a job, one GPU batch each: 100 GPUs of 256
    per_job_s = 60 + one.gpu_hours * 3600 / 100 / 100
    assert one.wall_hours == pytest.approx(100 * per_job_s / 3600)  # one job at a time
    two = plan(config, figures, gpus=256, jobs=jobs | {"concurrent_jobs": 2})
    assert two.overhead["gpus_per_job"] == 100 and two.wall_hours == pytest.approx(50 * per_job_s / 3600)
    tiny = plan(config, figures, products=10, gpus=256, jobs=jobs)
    assert tiny.wall_hours * 3600 >= 60  # no run is shorter than its one job's start and load


def test_moon_plan_prints_the_overhead_share_and_the_jobs_it_takes():
    done = subprocess.run([sys.executable, "-m", "augment.cli", "plan", "--products", "5000000", "--gpus", "256",
                           "--profile", "gpu", "--gpu-type", "h200", "--bench", str(ROOT / "bench" / "results")],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("job overhead"))
    assert "% of GPU time" in line and "jobs of" in line and "30 s model load" in line


def test_a_bench_folder_without_results_is_named_instead_of_planning_zero_seconds(tmp_path):
    with pytest.raises(capacity.PlanError, match=f"^no bench result files in {tmp_path}: pass --bench with a folder"):
        capacity.load_figures([str(tmp_path)])
