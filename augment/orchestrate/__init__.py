"""Orchestration of moon runs from Airflow: a thin Ray Jobs hook, operator and trigger, and the task bodies
of the moon DAGs.

`ray_jobs` (hook), `trigger` and `operator` import Airflow and Ray's job client and are only imported inside
Airflow processes. `submission` and `tasks` import neither Airflow nor Ray: they hold the pure logic (job ids,
batches, run checks) that the DAGs call and the tests exercise directly.
"""
