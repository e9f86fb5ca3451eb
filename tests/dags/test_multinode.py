"""moon_augment on a Ray cluster of two nodes, with input, config and output on S3 only.

The cluster: a head and a worker node started with `ray start` (augment.dev.local_stack), each with its own temp
dir, object store and workers, and a custom resource of its own (`moon_head`, `moon_worker`). The run config, read
from S3 like the input, puts the first stages (validate .. background_prompts) on the worker node and the image
stages on the head, so every shard crosses from one node to the other through Ray's object store. The Ray jobs'
drivers run on the worker node too, not on the head: the worker node has a `moon_driver` resource, which the DAG
reserves for each driver (`MOON_JOB_DRIVER_RESOURCES`). S3 is moto's server on 127.0.0.1: nothing of the run is on
a path both nodes could read.

1. the run goes end to end through `dag.test()`; its stage actors ran on both nodes, its driver on the worker node;
2. the worker node, with the job's driver on it, is killed (SIGKILL to its process group, as a lost machine) once
   the first shard is committed, and a replacement node with the same resources joins, as an autoscaler would
   bring one: the job fails, and the task's retry resumes the run with a driver on the new node. The run
   succeeds, every shard is committed exactly once and rows in = rows out + rows quarantined.

CPU backends, shards of 8 rows: each DAG run takes well under a minute on two cores.
"""
from __future__ import annotations

import io
import json
import threading
import time
from datetime import timedelta

import pyarrow.parquet as pq
import pytest
import yaml

from tests.orchestration_fixtures import DAGS, RAY_TOKEN

pytestmark = [pytest.mark.slow, pytest.mark.orchestration]

BUCKET = "moon-multinode"
SHARD_SIZE = 8
ON_WORKER = {"custom": {"moon_worker": 1}, "concurrency": 1}
ON_HEAD = {"custom": {"moon_head": 1}, "concurrency": 1}
CONFIG = {
    "extends": "local",
    "run": {"shard_size": SHARD_SIZE},
    "stages": {name: {"resources": ON_WORKER} for name in ("validate", "ner", "enrich_title", "background_prompts")}
    | {name: {"resources": ON_HEAD} for name in ("image_variants", "filter")},
}
WORKER_NODE = {"moon_worker": 1, "moon_driver": 1}  # a worker node's custom resources


@pytest.fixture(scope="module")
def cluster(airflow_db, sample_path):
    """S3 (moto), the config and catalogue on it, and a two-node Ray cluster; the ray_default connection points
    at its head for this module. Every process started here is stopped by process group at the end."""
    from augment.dev.local_stack import RayHead, RayWorkerNode
    from testkit.s3 import moto_s3

    with moto_s3(BUCKET) as s3, pytest.MonkeyPatch.context() as patch:
        s3.put_object(Bucket=BUCKET, Key="in/catalogue.parquet", Body=open(sample_path, "rb").read())
        s3.put_object(Bucket=BUCKET, Key="in/multinode.yaml", Body=yaml.safe_dump(CONFIG).encode())
        head = RayHead(num_cpus=2, token=RAY_TOKEN, resources={"moon_head": 1})
        nodes: list[RayWorkerNode] = []
        try:
            head.start()
            nodes.append(RayWorkerNode(head, num_cpus=1, resources=WORKER_NODE).start())
            patch.setenv("AIRFLOW_CONN_RAY_DEFAULT", json.dumps(head.connection()))
            yield {"s3": s3, "head": head, "nodes": nodes}
        finally:
            for node in nodes:
                node.remove()
            head.stop()


@pytest.fixture(scope="module")
def dag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    with pytest.MonkeyPatch.context() as patch:  # read when the DAG file is parsed
        patch.setenv("MOON_JOB_DRIVER_RESOURCES", '{"moon_driver": 1}')
        bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    dag = bag.dags["moon_augment"]
    dag.task_dict["run_batch"].retry_delay = timedelta(seconds=1)  # the DAG's 30 s backoff, shortened
    return dag


def conf(name: str, rows: int) -> dict:
    return {"input_uri": f"s3://{BUCKET}/in/catalogue.parquet", "output_uri": f"s3://{BUCKET}/runs/{name}",
            "config_file": f"s3://{BUCKET}/in/multinode.yaml", "limit": rows, "shards_per_task": rows // SHARD_SIZE}  # one Ray job


def keys(s3, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def product_ids(s3, prefix: str) -> list[str]:
    ids = []
    for key in keys(s3, prefix):
        if key.endswith(".parquet"):
            body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
            ids += pq.read_table(io.BytesIO(body), columns=["product_id"]).column("product_id").to_pylist()
    return ids


def check_committed_once(s3, name: str, rows: int) -> dict:
    """Every shard committed once: one commit record, one data/quarantine file per shard, every input row in
    exactly one of them; rows in = out + quarantined per shard and in total."""
    from augment.core import manifest

    run = f"runs/{name}/"
    shards = -(-rows // SHARD_SIZE)
    records = manifest.load(f"s3://{BUCKET}/{run}")
    assert len(records) == shards
    assert len(keys(s3, run + manifest.MANIFEST_DIR + "/")) == shards
    lines = s3.get_object(Bucket=BUCKET, Key=run + manifest.MANIFEST)["Body"].read().decode().splitlines()
    assert sorted(json.loads(line)["shard_id"] for line in lines) == sorted(records)
    for record in records.values():
        assert record.rows_in == record.rows_out + record.rows_quarantined == SHARD_SIZE
    data = product_ids(s3, run + "data/")
    quarantined = product_ids(s3, run + "quarantine/")
    assert len(data) == sum(r.rows_out for r in records.values())
    assert len(quarantined) == sum(r.rows_quarantined for r in records.values())
    assert len(set(data + quarantined)) == len(data) + len(quarantined) == rows
    assert not [k for k in keys(s3, run) if ".tmp" in k]  # no temp object left behind
    return records


def stage_actor_nodes(head) -> set[str]:
    from ray.util.state import list_actors

    actors = list_actors(address=head.dashboard_url, detail=True, limit=10_000, raise_on_missing_output=False)
    return {a.node_id for a in actors if "StageChain" in (a.class_name or "")}


def run_jobs(head, dag_run_id: str) -> list:
    """The Ray jobs of a DAG run's batch tasks, oldest first."""
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(head.dashboard_url, headers={"Authorization": f"Bearer {head.token}"})
    jobs = [j for j in client.list_jobs() if (j.metadata or {}).get("airflow_run_id") == dag_run_id]
    return sorted(jobs, key=lambda j: j.start_time or 0)


def head_node_id(head) -> str:
    from ray.util.state import list_nodes

    return next(n.node_id for n in list_nodes(address=head.dashboard_url) if n.is_head_node)


def test_moon_augment_runs_across_two_nodes_with_everything_on_s3(cluster, dag):
    started = time.perf_counter()
    dag_run = dag.test(run_conf=conf("two-nodes", rows=32))
    assert dag_run.state == "success", f"moon_augment ended {dag_run.state}"
    check_committed_once(cluster["s3"], "two-nodes", rows=32)
    nodes = stage_actor_nodes(cluster["head"])
    assert {head_node_id(cluster["head"]), cluster["nodes"][0].node_id} <= nodes
    jobs = run_jobs(cluster["head"], dag_run.run_id)
    assert [(str(j.status), j.driver_node_id) for j in jobs] == [("SUCCEEDED", cluster["nodes"][0].node_id)]
    print(f"two-node run: {time.perf_counter() - started:.1f} s")


def test_a_worker_node_lost_mid_run_costs_no_shard_and_no_duplicate(cluster, dag):
    from augment.dev.local_stack import RayWorkerNode

    s3, head, nodes = cluster["s3"], cluster["head"], cluster["nodes"]
    name, rows = "node-lost", 48
    lost_node_id = nodes[-1].node_id
    seen: dict[str, int] = {}

    def lose_the_worker_node():
        deadline = time.time() + 300
        while time.time() < deadline and not keys(s3, f"runs/{name}/_manifest.d/"):
            time.sleep(0.2)
        seen["committed_when_lost"] = len(keys(s3, f"runs/{name}/_manifest.d/"))
        nodes[-1].stop()  # SIGKILL: raylet, object store and workers of the node go at once
        time.sleep(2)
        nodes.append(RayWorkerNode(head, num_cpus=1, resources=WORKER_NODE).start())

    killer = threading.Thread(target=lose_the_worker_node, daemon=True)
    killer.start()
    dag_run = dag.test(run_conf=conf(name, rows=rows))
    killer.join(timeout=120)
    assert 1 <= seen.get("committed_when_lost", 0) < rows // SHARD_SIZE, seen  # the node went mid-run
    assert dag_run.state == "success", f"moon_augment ended {dag_run.state}"
    check_committed_once(s3, name, rows=rows)
    assert len(nodes) == 2 and nodes[0].proc is None  # the first worker node is gone, its replacement joined
    jobs = run_jobs(head, dag_run.run_id)  # the first try's driver went with its node; a retry's driver resumed
    assert [(str(j.status), j.driver_node_id) for j in (jobs[0], jobs[-1])] == [
        ("FAILED", lost_node_id), ("SUCCEEDED", nodes[1].node_id)]
