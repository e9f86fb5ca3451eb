"""Orchestration of moon runs from Airflow: a thin Ray Jobs hook, operator and trigger, and the task bodies
of the moon DAGs.

`ray_jobs` (hook), `trigger` and `operator` import Airflow and Ray's job client and are only imported inside
Airflow processes. `submission` and `tasks` import neither Airflow nor Ray: they hold the pure logic (job ids,
batches, run checks) that the DAGs call and the tests exercise directly.
"""
from __future__ import annotations

# The Airflow pool the moon DAGs' Ray jobs run in: one slot per Ray job in flight. Create it with deferred tasks
# counted (`airflow pools set moon_gpu N "..." --include-deferred`), so that jobs waiting on Ray hold their slot.
GPU_POOL = "moon_gpu"
