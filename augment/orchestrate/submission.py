"""Ray job submission ids for Airflow task instances, and what a retry does with the jobs it finds.

One Airflow task instance (DAG, run, task, map index) owns a family of Ray jobs, one per try:
`<base>-try<N>`. The base is derived from the task instance key only, so a retry, a resumed deferral or a
worker restarted by the scheduler finds the jobs of earlier tries by id, without listing the cluster. Ray
never reuses a submission id (not even after `delete_job`), which is why a replacement job gets the new try's
id rather than the old one's.

No Airflow and no Ray imports here: this is plain logic, tested directly.
"""
from __future__ import annotations

import hashlib
import re

ACTIVE = ("PENDING", "RUNNING")
SUCCEEDED = "SUCCEEDED"
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
MAX_ID_CHARS = 120  # the dashboard puts ids in URLs and file names; long DAG and run ids are hashed down
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def base_id(dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str:
    """The stable id prefix of a task instance's Ray jobs, e.g. `moon_augment-manual__2026-01-01T00_00_00-run_batch-2`."""
    parts = [dag_id, run_id, task_id] + ([str(map_index)] if map_index is not None and map_index >= 0 else [])
    readable = "-".join(_UNSAFE.sub("_", p).strip("_") for p in parts)
    if len(readable) <= MAX_ID_CHARS:
        return readable
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]
    return f"{readable[: MAX_ID_CHARS - len(digest) - 1]}-{digest}"


def attempt_id(base: str, try_number: int) -> str:
    return f"{base}-try{max(1, int(try_number))}"


def decide(statuses: dict[str, str | None], current: str) -> tuple[str, str]:
    """What a try does, given the status of each earlier attempt's job (None: no such job) and its own id.

    Returns (action, submission_id), action being:
    - "attach": a job of this task instance is still pending or running: follow it, submit nothing;
    - "done": a job of this task instance already succeeded: nothing to run again;
    - "submit": every earlier job failed or was stopped (or none exists): submit `current`.
    A job under `current` itself (a try resumed after its worker died) is attached to or reused likewise.
    """
    ids = list(statuses)
    for sid in ids:
        if statuses[sid] in ACTIVE:
            return "attach", sid
    for sid in ids:
        if statuses[sid] == SUCCEEDED:
            return "done", sid
    if statuses.get(current) is not None:
        raise RuntimeError(
            f"Ray job {current} of this try already ended {statuses[current]}; clear the task to retry it under a new id"
        )
    return "submit", current
