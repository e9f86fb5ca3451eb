"""Extra links of the moon DAGs' own tasks (the Ray job link lives with `RayJobOperator`).

Airflow shows an extra link as a button on the task instance; its address is read from an XCom that the task
pushes while it runs, so a link always points at that run's own output.
"""
from __future__ import annotations

from airflow.sdk import BaseOperatorLink

REPORT_XCOM_KEY = "moon_report_url"


class RunReportLink(BaseOperatorLink):
    """The run's HTML report (`<run>/report/index.html`, written by `moon run`, or in the DAG by the publish task)."""

    name = "Run report"

    @property
    def xcom_key(self) -> str:
        return REPORT_XCOM_KEY

    def get_link(self, operator, *, ti_key) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        return XCom.get_value(ti_key=ti_key, key=REPORT_XCOM_KEY) or ""
