"""Ray job ids of Airflow task instances, and what a try does with the jobs of earlier tries."""
from __future__ import annotations

import pytest

from augment.orchestrate import submission as S


def test_base_id_is_readable_and_safe_for_urls():
    base = S.base_id("moon_augment", "manual__2026-01-01T00:00:00+00:00", "run_batch", 2)
    assert base == "moon_augment-manual__2026-01-01T00_00_00_00_00-run_batch-2"


def test_base_id_of_an_unmapped_task_has_no_map_index():
    assert S.base_id("moon_train", "asset_triggered__x", "train", -1) == "moon_train-asset_triggered__x-train"


def test_base_id_is_stable_and_distinct_per_map_index():
    ids = {S.base_id("d", "r", "t", i) for i in range(50)}
    assert len(ids) == 50
    assert S.base_id("d", "r", "t", 7) == S.base_id("d", "r", "t", 7)


def test_long_ids_are_cut_with_a_hash_that_keeps_them_distinct():
    long_run = "scheduled__" + "x" * 300
    a, b = S.base_id("dag", long_run + "a", "t", 0), S.base_id("dag", long_run + "b", "t", 0)
    assert len(a) == S.MAX_ID_CHARS and len(b) == S.MAX_ID_CHARS
    assert a != b


def test_attempt_id_names_the_try():
    assert S.attempt_id("base", 3) == "base-try3"
    assert S.attempt_id("base", 0) == "base-try1"  # a task that never ran counts as its first try


def test_first_try_submits_its_own_id():
    assert S.decide({"b-try1": None}, "b-try1") == ("submit", "b-try1")


def test_a_retry_follows_a_job_still_running_instead_of_submitting():
    statuses = {"b-try1": "RUNNING", "b-try2": None}
    assert S.decide(statuses, "b-try2") == ("attach", "b-try1")


def test_a_retry_follows_a_pending_job_too():
    assert S.decide({"b-try1": "PENDING", "b-try2": None}, "b-try2") == ("attach", "b-try1")


def test_a_retry_after_a_succeeded_job_runs_nothing():
    statuses = {"b-try1": "FAILED", "b-try2": "SUCCEEDED", "b-try3": None}
    assert S.decide(statuses, "b-try3") == ("done", "b-try2")


def test_a_retry_after_failed_or_stopped_jobs_submits_a_new_one():
    statuses = {"b-try1": "FAILED", "b-try2": "STOPPED", "b-try3": None}
    assert S.decide(statuses, "b-try3") == ("submit", "b-try3")


def test_a_resumed_try_follows_its_own_running_job():
    assert S.decide({"b-try1": "FAILED", "b-try2": "RUNNING"}, "b-try2") == ("attach", "b-try2")


def test_a_try_whose_own_job_already_failed_refuses_to_reuse_the_id():
    with pytest.raises(RuntimeError, match="b-try2 of this try already ended FAILED"):
        S.decide({"b-try1": "FAILED", "b-try2": "FAILED"}, "b-try2")


def test_a_job_server_that_never_answers_is_given_up_on_not_waited_for(monkeypatch):
    """A server that takes the connection and says nothing (a wedged dashboard, a proxy without a backend) held
    the task, its slot and its pool slot for ever: Ray's client sets no timeout, the job's timeout never began."""
    import socket
    import time

    from augment.orchestrate import ray_jobs

    monkeypatch.setattr(ray_jobs, "REQUEST_TIMEOUT", (0.5, 0.5))
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        address = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(ConnectionError, match=f"the Ray job server at {address} did not answer GET /api/version "
                                                  r"within \(0.5, 0.5\) s"):
            ray_jobs.make_client(ray_jobs.RayJobsEndpoint(address=address, dashboard_url=address))
        assert time.monotonic() - started < 30
