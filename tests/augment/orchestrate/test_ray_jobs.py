"""RayJobHook, RayJobTrigger and RayJobOperator against a real local Ray head (`ray start --head`, token auth)."""
from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.orchestration]


@pytest.fixture(scope="module")
def hook(ray_head):
    from augment.orchestrate.ray_jobs import RayJobHook

    return RayJobHook("ray_default")


def new_id(label: str) -> str:
    return f"test-{label}-{uuid.uuid4().hex[:8]}"


def wait_for(hook, sid: str, statuses: tuple[str, ...], timeout: float = 60.0) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = hook.status(sid)
        if status in statuses:
            return status
        time.sleep(0.5)
    raise AssertionError(f"job {sid} still {hook.status(sid)} after {timeout} s")


def first_event(trigger) -> dict:
    async def drain():
        async for event in trigger.run():
            return event.payload
    return asyncio.run(drain())


class TaskInstanceStandIn:
    """The attributes of a running task instance that the operator reads, and its XCom pushes."""

    def __init__(self, try_number: int, run_id: str, map_index: int = 0):
        self.dag_id, self.task_id, self.run_id = "test_dag", "run_batch", run_id
        self.map_index, self.try_number = map_index, try_number
        self.xcoms: dict = {}

    def xcom_push(self, key, value):
        self.xcoms[key] = value


def operator(entrypoint: str, **kwargs):
    from augment.orchestrate.operator import RayJobOperator

    return RayJobOperator(task_id="run_batch", entrypoint=entrypoint, poll_interval=0.5, **kwargs)


# -- hook ------------------------------------------------------------------------------------------------------
def test_hook_reads_address_and_token_from_the_connection(hook, ray_head):
    assert hook.endpoint.address == ray_head.dashboard_url
    assert hook.endpoint.request_headers() == {"Authorization": f"Bearer {ray_head.token}"}


def test_the_token_never_shows_in_the_endpoint_repr(hook, ray_head):
    assert ray_head.token not in repr(hook.endpoint)


def test_hook_without_the_token_is_refused_by_the_cluster(ray_head, monkeypatch):
    from ray.exceptions import AuthenticationError

    from augment.orchestrate.ray_jobs import RayJobHook

    conn = dict(ray_head.connection(), password="not-the-token")
    monkeypatch.setenv("AIRFLOW_CONN_RAY_WRONG", json.dumps(conn))
    with pytest.raises(AuthenticationError):
        RayJobHook("ray_wrong").status("anything")


def test_hook_submits_and_reports_a_job(hook):
    sid = hook.submit("echo moon-hook-ok", new_id("hook"), metadata={"moon_shards": "a,b"})
    assert wait_for(hook, sid, ("SUCCEEDED", "FAILED")) == "SUCCEEDED"
    assert "moon-hook-ok" in hook.logs(sid)
    assert hook.info(sid).metadata == {"moon_shards": "a,b"}


def test_hook_status_of_an_unknown_job_is_none(hook):
    assert hook.status(new_id("missing")) is None


def test_job_url_points_at_the_dashboard_job_page(hook, ray_head):
    assert hook.job_url("abc") == f"{ray_head.dashboard_url}/#/jobs/abc"


# -- trigger ---------------------------------------------------------------------------------------------------
def test_trigger_fires_once_the_job_succeeds_and_streams_its_log(hook, capfd):
    from augment.orchestrate.trigger import RayJobTrigger

    sid = hook.submit("echo first-line; sleep 2; echo last-line", new_id("trigger"))
    event = first_event(RayJobTrigger(sid, poll_interval=0.5))
    assert event == {"submission_id": sid, "status": "SUCCEEDED", "message": "Job finished successfully."}
    # Airflow's structured logging writes the trigger's records to the (task) log stream.
    logged = capfd.readouterr().out
    assert logged.count("[ray] first-line") == 1 and logged.count("[ray] last-line") == 1
    assert logged.index("[ray] first-line") < logged.index("[ray] last-line")


def test_trigger_learns_of_the_end_from_the_log_stream_not_the_next_poll(hook):
    from augment.orchestrate.trigger import RayJobTrigger

    sid = hook.submit("echo working; sleep 1", new_id("prompt"))
    started = time.monotonic()
    event = first_event(RayJobTrigger(sid, poll_interval=120.0))
    assert event["status"] == "SUCCEEDED"
    assert time.monotonic() - started < 60  # the log stream closed with the job, long before the next status poll


def test_trigger_reports_a_failed_job(hook):
    from augment.orchestrate.trigger import RayJobTrigger

    sid = hook.submit("exit 7", new_id("fail"))
    event = first_event(RayJobTrigger(sid, poll_interval=0.5, stream_logs=False))
    assert event["status"] == "FAILED"
    assert "exit code 7" in event["message"] or "7" in event["message"]


def test_trigger_stops_a_job_past_its_deadline(hook):
    from augment.orchestrate.trigger import TIMEOUT, RayJobTrigger

    sid = hook.submit("sleep 120", new_id("timeout"))
    wait_for(hook, sid, ("RUNNING",))
    event = first_event(RayJobTrigger(sid, poll_interval=0.5, deadline=time.time() + 1, stream_logs=False))
    assert event["status"] == TIMEOUT
    assert hook.status(sid) == "STOPPED"


def test_trigger_on_kill_stops_the_job(hook):
    from augment.orchestrate.trigger import RayJobTrigger

    sid = hook.submit("sleep 120", new_id("kill"))
    wait_for(hook, sid, ("RUNNING",))
    asyncio.run(RayJobTrigger(sid).on_kill())
    assert wait_for(hook, sid, ("STOPPED",)) == "STOPPED"


def test_trigger_round_trips_through_serialize(hook):
    from augment.orchestrate.trigger import RayJobTrigger

    trigger = RayJobTrigger("sid-1", "ray_x", poll_interval=2.0, deadline=123.0, stream_logs=False)
    classpath, kwargs = trigger.serialize()
    assert classpath == "augment.orchestrate.trigger.RayJobTrigger"
    assert RayJobTrigger(**kwargs).serialize() == (classpath, kwargs)


# -- operator --------------------------------------------------------------------------------------------------
def test_operator_submits_under_the_try_id_and_defers(hook, ray_head):
    from airflow.sdk.exceptions import TaskDeferred

    ti = TaskInstanceStandIn(try_number=1, run_id=new_id("run"))
    with pytest.raises(TaskDeferred) as deferred:
        operator("echo deferred", job_metadata={"moon_shards": "s1"}).execute({"ti": ti})
    sid = f"test_dag-{ti.run_id}-run_batch-0-try1"
    assert deferred.value.trigger.submission_id == sid
    assert deferred.value.method_name == "execute_complete"
    info = hook.info(sid)
    assert info.metadata == {"airflow_dag_id": "test_dag", "airflow_run_id": ti.run_id, "airflow_task_id": "run_batch",
                             "airflow_map_index": "0", "airflow_try_number": "1", "moon_shards": "s1"}
    assert ti.xcoms["ray_job_url"] == f"{ray_head.dashboard_url}/#/jobs/{sid}"


def test_a_retry_follows_the_running_job_of_the_earlier_try(hook):
    from airflow.sdk.exceptions import TaskDeferred

    run_id = new_id("run")
    with pytest.raises(TaskDeferred):
        operator("sleep 30").execute({"ti": TaskInstanceStandIn(1, run_id)})
    first = f"test_dag-{run_id}-run_batch-0-try1"
    wait_for(hook, first, ("RUNNING",))
    with pytest.raises(TaskDeferred) as deferred:
        operator("sleep 30").execute({"ti": TaskInstanceStandIn(2, run_id)})
    assert deferred.value.trigger.submission_id == first
    assert hook.status(f"test_dag-{run_id}-run_batch-0-try2") is None  # no second job
    hook.stop(first)


def test_a_retry_after_a_failed_job_submits_a_replacement(hook):
    run_id = new_id("run")
    first = operator("exit 3", deferrable=False)
    with pytest.raises(Exception, match="ended FAILED"):
        first.execute({"ti": TaskInstanceStandIn(1, run_id)})
    assert operator("echo replaced", deferrable=False).execute({"ti": TaskInstanceStandIn(2, run_id)}) == \
        f"test_dag-{run_id}-run_batch-0-try2"
    assert hook.status(f"test_dag-{run_id}-run_batch-0-try1") == "FAILED"
    assert hook.status(f"test_dag-{run_id}-run_batch-0-try2") == "SUCCEEDED"


def test_a_retry_after_a_succeeded_job_submits_nothing(hook):
    run_id = new_id("run")
    operator("echo once", deferrable=False).execute({"ti": TaskInstanceStandIn(1, run_id)})
    assert operator("echo once", deferrable=False).execute({"ti": TaskInstanceStandIn(2, run_id)}) == \
        f"test_dag-{run_id}-run_batch-0-try1"
    assert hook.status(f"test_dag-{run_id}-run_batch-0-try2") is None


def test_operator_job_timeout_fails_the_try_and_stops_the_job(hook):
    run_id = new_id("run")
    with pytest.raises(Exception, match="ended TIMEOUT"):
        operator("sleep 120", deferrable=False, job_timeout=2).execute({"ti": TaskInstanceStandIn(1, run_id)})
    assert hook.status(f"test_dag-{run_id}-run_batch-0-try1") == "STOPPED"


def test_operator_on_kill_stops_its_job(hook):
    from airflow.sdk.exceptions import TaskDeferred

    op = operator("sleep 120")
    run_id = new_id("run")
    with pytest.raises(TaskDeferred):
        op.execute({"ti": TaskInstanceStandIn(1, run_id)})
    sid = f"test_dag-{run_id}-run_batch-0-try1"
    wait_for(hook, sid, ("RUNNING",))
    op.on_kill()
    assert wait_for(hook, sid, ("STOPPED",)) == "STOPPED"


def test_execute_complete_returns_the_id_on_success_and_raises_otherwise():
    op = operator("true")
    assert op.execute_complete({}, {"submission_id": "j", "status": "SUCCEEDED", "message": ""}) == "j"
    with pytest.raises(Exception, match="Ray job j ended STOPPED: stopped by user"):
        op.execute_complete({}, {"submission_id": "j", "status": "STOPPED", "message": "stopped by user"})
