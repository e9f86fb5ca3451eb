"""Models are loaded once per worker process, not once per shard: augment.core.models and the stage chain.

The unit tests count loads through the cache directly. The slow ones run a job of six shards with the model
backends of enrich_title and background_prompts (transformers, one tiny random Llama built from config, which both
stages name) in this process and on Ray, and count the loads from the shards' manifest records: a load is charged
to exactly one shard (`timings.model_load`).
"""
from __future__ import annotations

import dataclasses

import pyarrow as pa
import pytest

from augment.core import models
from augment.core import schema as S
from augment.pipeline import LOAD_TIMING, StageChain, StageSpec
from augment.core.config import ConfigError
from augment.runner import _pool_sizes, no_gpus, no_node_fits, oversubscribed
from augment.config import Resources
from augment.stages import RunContext


@pytest.fixture(autouse=True)
def no_models_kept():
    models.release()
    yield
    models.release()


def test_a_model_is_loaded_once_per_key_and_process():
    built = []

    def load():
        built.append(object())
        return built[-1]

    first = models.shared(("kind", "/models/a", "cpu"), load, "a")
    again = models.shared(("kind", "/models/a", "cpu"), load, "a")
    other = models.shared(("kind", "/models/a", "cuda"), load, "a on cuda")
    assert first is again and other is not first
    assert len(built) == 2
    assert [entry.label for entry in models.loads()] == ["a", "a on cuda"]
    assert models.take_load_seconds() > 0.0
    assert models.take_load_seconds() == 0.0  # handed out once


def test_a_failed_load_is_not_kept_and_is_tried_again():
    calls = []

    def load():
        calls.append(1)
        if len(calls) == 1:
            raise OSError("disk gone")
        return "model"

    with pytest.raises(OSError):
        models.shared("key", load)
    assert models.shared("key", load) == "model" and len(calls) == 2 and len(models.loads()) == 1


def _spec_rows(n: int, shard: str) -> pa.Table:
    return pa.table({
        "product_id": [f"{shard}-{i}" for i in range(n)], S.SHARD_ID: [shard] * n,
        S.QUARANTINE_REASON: pa.nulls(n, pa.string()), S.QUARANTINE_STAGE: pa.nulls(n, pa.string()),
        S.QUARANTINE_DETAIL: pa.nulls(n, pa.string()),
    })


def test_the_chain_charges_a_load_to_the_first_row_of_the_next_batch_only():
    chain = StageChain([], RunContext())
    models.shared("m", lambda: "weights", "m")  # as a stage's setup() would, after the chain was built
    first = chain(_spec_rows(3, "s1"))
    second = chain(_spec_rows(3, "s2"))
    loaded = first.column(LOAD_TIMING).to_pylist()
    assert loaded[0] > 0.0 and loaded[1:] == [0.0, 0.0]
    assert second.column(LOAD_TIMING).to_pylist() == [0.0, 0.0, 0.0]  # every batch has the column


def test_a_small_job_starts_no_more_model_actors_than_it_has_batches():
    gpu_chain = ([StageSpec("image_variants", "diffusers", None)], Resources(num_cpus=4, num_gpus=1, batch_size=8))
    cpu_chain = ([StageSpec("validate", "default", None)], Resources(num_cpus=1))
    cluster = {"CPU": 4096.0, "GPU": 256.0}
    assert _pool_sizes([cpu_chain, gpu_chain], cluster) == [(1, 3072), (256, 256)]  # no job size: the cluster's
    # 2 shards of 64 rows: 2 first-chain batches, 16 batches of 8 rows for the GPU chain
    assert _pool_sizes([cpu_chain, gpu_chain], cluster, shards=2, rows=128) == [(1, 2), (16, 16)]
    assert _pool_sizes([cpu_chain, gpu_chain], cluster, shards=1, rows=3) == [(1, 1), (1, 1)]


def test_chains_whose_fewest_actors_need_more_cpus_than_the_cluster_are_named():
    # The worker-crash test's layout: a 0.5-CPU image_variants pool between two 1-CPU chains (2.5 CPUs at once).
    chains = [([StageSpec("validate", "default", None), StageSpec("ner", "spacy_rules", None)], Resources(num_cpus=1)),
              ([StageSpec("image_variants", "classic", None)], Resources(num_cpus=0.5, batch_size=4)),
              ([StageSpec("filter", "heuristic", None)], Resources(num_cpus=1))]
    two, four = {"CPU": 2.0}, {"CPU": 4.0}
    assert oversubscribed(chains, _pool_sizes(chains, four, shards=3, rows=24), four) is None
    sizes = _pool_sizes(chains, two, shards=3, rows=24)
    assert sizes == [(1, 1)] * 3
    assert oversubscribed(chains, sizes, two) == (
        "the stage chains need 2.5 CPUs to hold their fewest actors at once (validate+ner 1 x 1, image_variants "
        "1 x 0.5, filter 1 x 1) and the cluster has 2: they will wait for one another, and an actor restarted after a "
        "crash may wait for ever; give the stages less (stages.<name>.resources.num_cpus) or the cluster more")


def gpu_profile_chains(image_gpus: float | None = None):
    from augment import config as C
    from augment.runner import group_stages, stage_specs

    config = C.load(profile="gpu", check_stages=False)
    if image_gpus is not None:
        config.stages["image_variants"].resources.num_gpus = image_gpus
    return group_stages(stage_specs(config, "catalogue.parquet"))


def test_the_gpu_stages_share_the_gpus_and_one_of_each_fits_on_one_gpu():
    chains = gpu_profile_chains()
    names = ["+".join(spec.name for spec in specs) for specs, _ in chains]
    assert names == ["validate+ner", "enrich_title+background_prompts", "image_variants", "filter"]
    one = {"CPU": 16.0, "GPU": 1.0}
    sizes = _pool_sizes(chains, one, shards=100, rows=10_000)
    assert sizes[2:] == [(1, 1), (1, 1)]  # 0.75 + 0.25 GPU: side by side on the one GPU
    assert oversubscribed(chains, sizes, one) is None
    # eight GPUs: eight of each (6 + 2 GPUs), not eight image actors and 32 filter actors (16 GPUs)
    eight = {"CPU": 128.0, "GPU": 8.0}
    sizes = _pool_sizes(chains, eight, shards=1000, rows=100_000)
    assert sizes[2:] == [(8, 8), (8, 8)] and oversubscribed(chains, sizes, eight) is None
    # too few CPUs for a GPU's worth of actors (4 + 2 CPUs each, 2 kept for the CPU chains): fewer actors
    small = {"CPU": 16.0, "GPU": 8.0}
    sizes = _pool_sizes(chains, small, shards=1000, rows=100_000)
    assert sizes[2:] == [(2, 2), (2, 2)] and oversubscribed(chains, sizes, small) is None
    # a chain's concurrency is kept; the others share what it leaves
    chains[3][1].concurrency = 4
    assert _pool_sizes(chains, eight, shards=1000, rows=100_000)[2:] == [(9, 9), (4, 4)]


def test_gpu_stages_that_cannot_run_side_by_side_are_named():
    chains = gpu_profile_chains(image_gpus=1.0)
    one = {"CPU": 16.0, "GPU": 1.0}
    sizes = _pool_sizes(chains, one, shards=100, rows=10_000)
    assert sizes[2:] == [(1, 1), (1, 1)]
    assert oversubscribed(chains, sizes, one) == (
        "the stage chains need 1.25 GPUs to hold their fewest actors at once (image_variants 1 x 1 GPU, filter "
        "1 x 0.25 GPU) and the cluster has 1: they will wait for one another, and an actor restarted after a crash "
        "may wait for ever; give the stages less (stages.<name>.resources.num_gpus) or the cluster more")
    # a cluster whose GPU nodes have not joined yet (an autoscaler brings them): nothing to say about GPUs
    assert oversubscribed(chains, sizes, {"CPU": 16.0}) is None


def test_gpu_stages_on_a_ray_without_gpus_stop_the_run_before_it_starts_or_warn_on_a_cluster():
    chains = gpu_profile_chains()
    asking = "stages.image_variants.resources.num_gpus 0.75, stages.filter.resources.num_gpus 0.25"
    with pytest.raises(ConfigError) as refused:  # a local Ray started for the run never gets a GPU
        no_gpus(chains, {"CPU": 16.0}, private=True)
    assert str(refused.value).startswith(f"{asking}, but this machine has no GPU")
    waiting = no_gpus(chains, {"CPU": 16.0}, private=False)
    assert waiting.startswith(f"{asking}, and the cluster has no GPU yet")
    assert waiting.endswith("their pools are sized now, at one actor each: set stages.<name>.resources.concurrency "
                            "to the GPU actors this job should use, and an autoscaling cluster adds nodes for them")
    assert _pool_sizes(chains, {"CPU": 16.0}, shards=100, rows=10_000)[2:] == [(1, 1), (1, 1)]  # what it says
    sized = [(specs, dataclasses.replace(res, concurrency=8) if res.num_gpus else res) for specs, res in chains]
    assert no_gpus(sized, {"CPU": 16.0}, private=False).endswith("(an autoscaling cluster adds them; any other never "
                                                                "runs them)")
    assert no_gpus(chains, {"CPU": 16.0, "GPU": 1.0}, private=True) is None
    assert no_gpus(chains[:2], {"CPU": 16.0}, private=True) is None  # the CPU stages alone


def test_a_chain_that_no_single_node_can_hold_is_named_not_waited_for_in_silence():
    """Two 1-CPU nodes hold 2 CPUs between them, and a 2-CPU actor on neither: moon run waited for ever, and its
    only warning, if any, was about the cluster's total CPUs."""
    chains = gpu_profile_chains()
    gpu_nodes = [{"CPU": 8.0, "GPU": 1.0}, {"CPU": 8.0, "GPU": 1.0}]
    assert no_node_fits(chains, gpu_nodes, private=False) is None
    small = [{"CPU": 2.0, "GPU": 1.0}, {"CPU": 2.0, "GPU": 1.0}]  # 4 CPUs between them; image_variants asks 4
    assert no_node_fits(chains, small, private=False) == (
        "stages image_variants ask 4 CPU, 0.75 GPU per actor, and no node has that (the most any node has: 2 CPU, "
        "1 GPU): those stages wait until a node that can hold one joins (an autoscaling cluster may add one; any "
        "other never runs them); lower stages.<name>.resources (num_cpus, num_gpus, custom), or add such a node")
    assert no_node_fits(chains, [{"CPU": 16.0}], private=False) is None  # no GPU at all: no_gpus says so
    chains[1][1].custom["llm_node"] = 1.0
    with pytest.raises(ConfigError, match=r"^stages enrich_title\+background_prompts ask 1 CPU, 1 llm_node per "
                                          r"actor, and no node has that \(the most any node has: 8 CPU, 0 llm_node\)"
                                          r".*: this machine's local Ray has one node and never gets another"):
        no_node_fits(chains, [{"CPU": 8.0, "GPU": 1.0}], private=True)
    assert no_node_fits(chains, [*gpu_nodes, {"CPU": 1.0, "llm_node": 1.0}], private=False) is None


# ---------------------------------------------------------------------------------------------------------------
# A job of six shards with a real (tiny) model, in this process and on Ray
# ---------------------------------------------------------------------------------------------------------------
SHARDS, SHARD_SIZE = 6, 4


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    pytest.importorskip("transformers")
    from testkit.tiny_models import build_llama

    return str(build_llama(tmp_path_factory.mktemp("llama") / "tiny-llama"))


def model_config(llama_dir: str):
    from augment import config as C

    model = {"model": llama_dir, "send_image": False, "max_tokens": 8, "cache": False}
    one_actor = {"concurrency": 1, "batch_size": 16}
    config = C.load(overrides={
        "run": {"shard_size": SHARD_SIZE, "progress": False},
        "stages": {
            "enrich_title": {"backend": "transformers", "options": model, "resources": one_actor},
            "background_prompts": {"backend": "transformers", "options": model, "resources": one_actor},
            "image_variants": {"enabled": False}, "filter": {"enabled": False},
        },
    })
    return config


def run_job(sample_path, out, llama_dir, use_ray):
    from augment import plan as P
    from augment import runner

    config = model_config(llama_dir)
    plan = P.plan_run(sample_path, str(out), config, limit=SHARDS * SHARD_SIZE)
    assert len(plan.pending) == SHARDS
    return runner.execute(plan, config, use_ray=use_ray, progress=False)


def loads_charged(records) -> list[float]:
    return [r.timings["model_load"] for r in records if r.timings.get("model_load", 0.0) > 0.0]


@pytest.mark.slow
def test_in_process_six_shards_and_two_stages_load_the_model_once(sample_path, tmp_path, llama_dir):
    result = run_job(sample_path, tmp_path / "run", llama_dir, use_ray=False)
    assert len(result.records) == SHARDS
    assert len(models.loads()) == 1  # enrich_title and background_prompts share the one copy
    assert len(loads_charged(result.records)) == 1
    for record in result.records:
        assert record.rows_in == record.rows_out + record.rows_quarantined == SHARD_SIZE


@pytest.mark.slow
def test_on_ray_a_job_of_six_shards_loads_the_model_once_per_actor(sample_path, tmp_path, llama_dir, ray_local):
    result = run_job(sample_path, tmp_path / "run", llama_dir, use_ray=True)
    records = result.records
    assert len(records) == SHARDS
    assert sum(r.rows_out + r.rows_quarantined for r in records) == SHARDS * SHARD_SIZE
    assert all("model_load" in r.timings for r in records)
    # One actor (concurrency 1) for the model chain: one load, charged to one of the six shards.
    assert len(loads_charged(records)) == 1
    assert models.loads() == []  # the driver never loads a model
