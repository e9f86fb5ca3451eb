"""The real thing: `airflow standalone` (scheduler, triggerer, API server) and a Ray head, driven over the REST API
and through a headless Chromium.

A moon_augment run on the bundled sample is triggered through the API and goes through the scheduler, the
LocalExecutor and the triggerer; its Asset event starts moon_train, and marking that run failed stops its training
job on Ray; a browser logs in with the password that standalone generated, opens the run's grid view, saves a
screenshot and reads the task states off the page.

Needs Debian's `chromium` (`apt-get install -y chromium`) and the Python package `playwright` (no browser
download: the system Chromium is used). Takes 3-6 minutes on 2 cores. The screenshot is written to
$MOON_TEST_OUTPUT/airflow_ui/ (default build/test-output/airflow_ui/).
"""
from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from augment.orchestrate import submission
from tests.orchestration_fixtures import DAGS, ROOT

pytestmark = [pytest.mark.slow, pytest.mark.external, pytest.mark.orchestration]
OUTPUT = Path(os.environ.get("MOON_TEST_OUTPUT", ROOT / "build" / "test-output")) / "airflow_ui"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
STAGES = ["validate", "ner", "enrich_title", "background_prompts"]


class Api:
    """The Airflow REST API (v2) with a bearer token from the generated login."""

    def __init__(self, standalone):
        self.url = standalone.url
        self.token = standalone.api_token()

    def call(self, method: str, path: str, body: dict | None = None):
        request = urllib.request.Request(
            self.url + path, method=method, data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(request, timeout=60) as resp:
            return json.loads(resp.read() or b"null")

    def wait(self, what: str, probe, timeout: float, every: float = 3.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                value = probe()
            except urllib.error.HTTPError as exc:
                if exc.code != 404:
                    raise
                value = None
            if value:
                return value
            time.sleep(every)
        raise AssertionError(f"{what}: not after {timeout:.0f} s")


TERMINAL_JOB_STATES = ("SUCCEEDED", "FAILED", "STOPPED")


def job_status(client, submission_id: str, ended: bool = False) -> str | None:
    """The Ray job's status, None while no job has that id (with `ended`, also while it has not ended)."""
    try:
        status = str(client.get_job_status(submission_id))
    except RuntimeError:  # the Jobs API's "not found"
        return None
    return None if ended and status not in TERMINAL_JOB_STATES else status


@pytest.fixture(scope="module")
def standalone(ray_head, airflow_db, tmp_path_factory):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    from augment.dev.local_stack import AirflowStandalone

    base = tmp_path_factory.mktemp("standalone")
    # The Asset-triggered moon_train run trains $MOON_TRAIN_CONFIG: here one that runs until the test stops it, so
    # that stopping it does not race its natural end.
    train_config = base / "tiny-until-stopped.json"
    train_config.write_text('{"extends": "tiny", "train": {"epochs": 1000}}')
    env = {"MOON_RUNS_ROOT": str(base / "runs"), "MOON_TRAIN_CONFIG": str(train_config)}
    instance = AirflowStandalone(base / "home", DAGS, ray_head.connection(), env=env)
    try:
        instance.start(timeout=600)
        yield instance
    finally:
        instance.stop()


@pytest.fixture(scope="module")
def api(standalone):
    return Api(standalone)


@pytest.fixture(scope="module")
def finished_run(api, tmp_path_factory):
    api.wait("moon_augment parsed", lambda: api.call("GET", "/api/v2/dags/moon_augment"), timeout=300)
    run = api.call("POST", "/api/v2/dags/moon_augment/dagRuns",
                   {"logical_date": None, "conf": {"stages": STAGES, "shards_per_task": 2}})
    path = f"/api/v2/dags/moon_augment/dagRuns/{urllib.parse.quote(run['dag_run_id'], safe='')}"

    def ended():
        state = api.call("GET", path)
        return state if state["state"] in ("success", "failed") else None

    return api.wait("moon_augment run finished", ended, timeout=900, every=5.0)


def test_the_run_succeeds_through_scheduler_and_triggerer(finished_run):
    assert finished_run["state"] == "success"


def test_a_batch_task_log_holds_the_ray_job_log(api, finished_run):
    run_id = urllib.parse.quote(finished_run["dag_run_id"], safe="")
    log = api.call("GET", f"/api/v2/dags/moon_augment/dagRuns/{run_id}/taskInstances/run_batch/logs/1?map_index=0")
    events = [entry.get("event", "") for entry in log["content"] if isinstance(entry, dict)]
    assert any(e.startswith("submitted Ray job moon_augment-") for e in events)
    assert any(e.startswith("[ray] ") and "rows in 64" in e for e in events)  # moon run's summary, from the job


def test_extra_links_open_the_ray_job_and_the_run_report(api, standalone, finished_run, ray_head):
    from augment.orchestrate.tasks import safe_name

    run_id = urllib.parse.quote(finished_run["dag_run_id"], safe="")
    base = f"/api/v2/dags/moon_augment/dagRuns/{run_id}/taskInstances"
    ray_link = api.call("GET", f"{base}/run_batch/links?map_index=1")["extra_links"]
    job_id = submission.attempt_id(submission.base_id("moon_augment", finished_run["dag_run_id"], "run_batch", 1), 1)
    assert ray_link == {"Ray job": f"{ray_head.dashboard_url}/#/jobs/{job_id}"}
    report_link = api.call("GET", f"{base}/publish/links")["extra_links"]
    run_dir = Path(standalone.env["MOON_RUNS_ROOT"], safe_name(finished_run["dag_run_id"]))
    assert report_link == {"Run report": (run_dir / "report" / "index.html").as_uri()}


def test_the_asset_event_starts_moon_train_on_the_published_run(api, standalone, finished_run, ray_client):
    from augment.orchestrate.tasks import safe_name

    def asset_triggered():
        runs = api.call("GET", "/api/v2/dags/moon_train/dagRuns")["dag_runs"]
        return [r for r in runs if r["run_type"] == "asset_triggered"]

    runs = api.wait("an asset-triggered moon_train run", asset_triggered, timeout=180)
    assert len(runs) == 1
    run_path = f"/api/v2/dags/moon_train/dagRuns/{urllib.parse.quote(runs[0]['dag_run_id'], safe='')}"
    pick_run = f"{run_path}/taskInstances/pick_run"
    api.wait("moon_train picked its run", lambda: api.call("GET", pick_run)["state"] == "success", timeout=300)
    entrypoint = api.call("GET", f"{pick_run}/xcomEntries/entrypoint")["value"]
    run_dir = str(Path(standalone.env["MOON_RUNS_ROOT"], safe_name(finished_run["dag_run_id"])))
    assert f"train --data {run_dir} --config {standalone.env['MOON_TRAIN_CONFIG']}" in entrypoint

    # Marking the run failed, as an operator does from the UI, stops its training job on Ray (the trigger's
    # on_kill), which would otherwise train its 1,000 epochs. The triggerer calls on_kill only on a trigger it
    # runs: the run is marked failed once the task log shows the job's own lines, which the trigger streams.
    job_id = submission.attempt_id(submission.base_id("moon_train", runs[0]["dag_run_id"], "train"), 1)
    api.wait("the training job submitted", lambda: job_status(ray_client, job_id), timeout=180, every=1.0)

    def streaming():
        log = api.call("GET", f"{run_path}/taskInstances/train/logs/1")
        return any(entry.get("event", "").startswith("[ray] ") for entry in log["content"] if isinstance(entry, dict))

    try:
        api.wait("the trigger streaming the training job's log", streaming, timeout=180, every=1.0)
        api.call("PATCH", run_path, {"state": "failed"})
        ended = api.wait("the training job ended", lambda: job_status(ray_client, job_id, ended=True), timeout=120,
                         every=1.0)
    finally:  # a job this test failed to stop must not train on beside the rest of the session
        if job_status(ray_client, job_id, ended=True) is None:
            ray_client.stop_job(job_id)
    assert ended == "STOPPED"


def test_the_grid_view_shows_every_task_of_the_run_successful(standalone, finished_run):
    from playwright.sync_api import sync_playwright

    OUTPUT.mkdir(parents=True, exist_ok=True)
    screenshot = OUTPUT / "moon_augment_run.png"
    user, password = standalone.login()
    run_url = f"{standalone.url}/dags/moon_augment/runs/{urllib.parse.quote(finished_run['dag_run_id'], safe='')}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1600, "height": 1000}).new_page()
            page.set_default_timeout(180_000)
            # 1. Log in with the password standalone generated.
            page.goto(standalone.url + "/", wait_until="load")
            page.fill("input[name=username]", user)
            page.fill("input[name=password]", password)
            page.click("button[type=submit]")
            page.wait_for_url(lambda url: "/auth/login" not in url)
            # 2. The run's grid view with its task instance list.
            page.goto(run_url, wait_until="load")
            page.wait_for_selector("tbody tr >> text=publish")
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(screenshot))
            headers = [h.strip() for h in page.locator("thead th").all_inner_texts()]
            rows = [[c.strip() for c in row.locator("td").all_inner_texts()] for row in page.locator("tbody tr").all()]
        finally:
            browser.close()
    task, index, state = (headers.index(name) for name in ("Task ID", "Map Index", "State"))
    assert sorted((r[task], r[index], r[state]) for r in rows) == sorted([
        ("plan", "", "Success"), ("run_batch", "0", "Success"), ("run_batch", "1", "Success"),
        ("validate", "", "Success"), ("publish", "", "Success")])
    assert screenshot.stat().st_size > 10_000
    print(f"screenshot: {screenshot}")
