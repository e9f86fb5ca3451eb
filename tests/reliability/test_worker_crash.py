"""Ray worker processes die mid-batch (SIGKILL from inside a stage); Ray restarts the actor, retries the batch,
and the run completes with every row, as a clean run would have it."""
from __future__ import annotations

import pytest

from augment import config as C
from augment import plan as P, runner
from tests.reliability.helpers import SAMPLE, assert_complete_and_clean, deterministic_rows, moon

pytestmark = pytest.mark.slow
LIMIT, SHARD_SIZE, SHARDS = 24, 8, 3
# image_variants in an actor pool of its own (other resources than the CPU chain): a "model stage" pool.
CONFIG = """\
extends: local
run:
  num_cpus: 4
stages:
  image_variants:
    resources:
      num_cpus: 0.5
      batch_size: 4
"""


def test_killed_workers_are_restarted_and_their_batches_retried(tmp_path, ray_local):
    # A private Ray of 4 CPUs (run.num_cpus): the three chains' actors need 2.5 CPUs at once, and on the session's
    # 2-CPU head a restarted actor waits for a CPU that the others hold.
    config_file = tmp_path / "config.yaml"
    config_file.write_text(CONFIG)
    out = tmp_path / "run"
    # The CPU chain (which reads the shards) dies on its 2nd batch; the image_variants pool on its 2nd batch and
    # again on its 4th (after the restart).
    faults = "stage:ner=2:kill,stage:image_variants=2:kill,stage:image_variants=4:kill"
    proc = moon("run", "--input", str(SAMPLE), "--output", str(out), "--config", str(config_file),
                "--limit", str(LIMIT), "--shard-size", str(SHARD_SIZE), "--no-progress",
                env={"MOON_FAULTS": faults, "MOON_FAULTS_STATE": str(tmp_path / "faults")})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # every armed fault fired: the workers really died
    hits = {p.name: p.stat().st_size for p in (tmp_path / "faults").iterdir()}
    assert hits["stage_ner"] >= 2 and hits["stage_image_variants"] >= 4
    assert_complete_and_clean(out, SHARDS, LIMIT)

    clean = tmp_path / "clean"
    config = C.load(str(config_file), overrides={"run": {"shard_size": SHARD_SIZE, "progress": False}})
    runner.execute(P.plan_run(str(SAMPLE), str(clean), config, limit=LIMIT), config, use_ray=False)
    assert deterministic_rows(out) == deterministic_rows(clean)
    # and Ray readers see exactly the committed rows
    import ray.data

    assert ray.data.read_parquet(str(out / "data")).count() == LIMIT


def test_worker_retries_are_bounded(tmp_path, ray_head):
    # A batch that kills its worker every time must end the run with an error, not loop for ever. The run joins the
    # session's Ray head, as on a cluster: the armed faults reach its actors through their runtime env
    # (augment.core.faults.armed).
    config_file = tmp_path / "config.yaml"
    config_file.write_text(CONFIG.replace("run:\n", "run:\n  worker_retries: 1\n"))
    proc = moon("run", "--input", str(SAMPLE), "--output", str(tmp_path / "run"), "--config", str(config_file),
                "--limit", "8", "--shard-size", "8", "--no-progress", "--ray-address", ray_head.address,
                env={"MOON_FAULTS": "stage:image_variants=1+:kill", "MOON_FAULTS_STATE": str(tmp_path / "faults")})
    assert proc.returncode == 1
    assert "error: the stages failed on Ray" in proc.stderr and "run the same command again to resume" in proc.stderr
    assert (tmp_path / "faults" / "stage_image_variants").stat().st_size == 2  # first try + 1 retry
