"""`RayJobHook`: the Ray Jobs API (`ray.job_submission.JobSubmissionClient`) behind an Airflow connection.

The connection (default id `ray_default`) gives the job server of the Ray head, i.e. its dashboard:
- host (`127.0.0.1`, `ray-head.ray.svc`, or a full `https://...` address) and port (default 8265);
  schema `https` for TLS (default `http`);
- password: the cluster's auth token (Ray token authentication, on by default since Ray 2.5x). It is sent as
  an `Authorization: Bearer` header and never logged; Airflow masks connection passwords in task logs too.
  Without one, Ray's own lookup applies (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token);
- extra (JSON, all optional): `dashboard_url`, the address people open in a browser when it differs from the
  one Airflow reaches (a proxy or an ingress); `verify` (false, or a CA bundle path) for TLS; `headers`.

Example: AIRFLOW_CONN_RAY_DEFAULT='{"conn_type": "http", "host": "127.0.0.1", "port": 8265, "password": "..."}'.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from airflow.sdk import BaseHook

DEFAULT_CONN_ID = "ray_default"
DEFAULT_PORT = 8265


@dataclass(frozen=True)
class RayJobsEndpoint:
    """Where the job server is and how to authenticate: plain data, so that a trigger can carry it."""

    address: str
    dashboard_url: str
    token: str | None = field(default=None, repr=False)  # repr=False: never printed with the endpoint
    verify: bool | str = True
    headers: dict[str, str] = field(default_factory=dict)

    def request_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def job_url(self, submission_id: str) -> str:
        return f"{self.dashboard_url.rstrip('/')}/#/jobs/{submission_id}"


def endpoint_from_connection(conn: Any) -> RayJobsEndpoint:
    """Build the endpoint from an Airflow Connection (host, port, schema, password, extra)."""
    extra = conn.extra_dejson or {}
    host = (conn.host or "127.0.0.1").rstrip("/")
    if "://" in host:
        address = host if conn.port is None or host.count(":") >= 2 else f"{host}:{conn.port}"
    else:
        scheme = conn.schema or "http"
        address = f"{scheme}://{host}:{conn.port or DEFAULT_PORT}"
    verify = extra.get("verify", True)
    return RayJobsEndpoint(
        address=address,
        dashboard_url=extra.get("dashboard_url") or address,
        token=conn.password or None,
        verify=verify,
        headers={str(k): str(v) for k, v in (extra.get("headers") or {}).items()},
    )


# Seconds to connect to the job server, and to wait for each read of its answer. Ray's client sets none: a server
# that accepts the connection and never answers (a wedged dashboard, a proxy without a backend) held the task, its
# worker or triggerer slot and its pool slot for ever, whatever the job's timeout.
REQUEST_TIMEOUT = (10.0, 120.0)


def make_client(endpoint: RayJobsEndpoint):
    """A JobSubmissionClient for the endpoint whose every request is bounded by REQUEST_TIMEOUT (a ConnectionError
    naming the server once it passes). Imports Ray's job client, ~1 s: only call inside tasks."""
    # Ray reads the token from RAY_AUTH_* only when this process runs in token mode; with a token of our own we
    # pass the header explicitly and Ray leaves it alone.
    return _timed_client_class()(endpoint.address, headers=endpoint.request_headers(), verify=endpoint.verify)


@functools.lru_cache(maxsize=1)
def _timed_client_class():
    import requests
    from ray.job_submission import JobSubmissionClient

    class TimedJobSubmissionClient(JobSubmissionClient):
        """Every HTTP request of the client (the version check on creation included) with REQUEST_TIMEOUT."""

        def _do_request(self, method, endpoint, **kwargs):
            kwargs.setdefault("timeout", REQUEST_TIMEOUT)
            try:
                return super()._do_request(method, endpoint, **kwargs)
            except requests.Timeout as exc:
                raise ConnectionError(f"the Ray job server at {self._address} did not answer {method} {endpoint} "
                                      f"within {kwargs['timeout']} s (connect, read): {exc}") from None

    return TimedJobSubmissionClient


class RayJobHook(BaseHook):
    """Submit, inspect, stop and read the logs of Ray jobs on the cluster named by an Airflow connection."""

    conn_name_attr = "ray_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "http"
    hook_name = "Ray Jobs"

    def __init__(self, ray_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ray_conn_id = ray_conn_id
        self._endpoint: RayJobsEndpoint | None = None
        self._client = None

    @property
    def endpoint(self) -> RayJobsEndpoint:
        if self._endpoint is None:
            self._endpoint = endpoint_from_connection(self.get_connection(self.ray_conn_id))
        return self._endpoint

    def get_conn(self):
        if self._client is None:
            self._client = make_client(self.endpoint)
        return self._client

    # -- jobs ---------------------------------------------------------------------------------------------------
    def submit(self, entrypoint: str, submission_id: str, runtime_env: dict | None = None,
               metadata: dict[str, str] | None = None, entrypoint_num_cpus: float | None = None,
               entrypoint_num_gpus: float | None = None, entrypoint_memory: int | None = None,
               entrypoint_resources: dict[str, float] | None = None) -> str:
        """Submit a job; the entrypoint_* resources are reserved for its driver, and place it on a node that has
        them (with none, Ray runs the driver on the head node)."""
        wanted = {"entrypoint_num_cpus": entrypoint_num_cpus, "entrypoint_num_gpus": entrypoint_num_gpus,
                  "entrypoint_memory": entrypoint_memory, "entrypoint_resources": entrypoint_resources or None}
        kwargs: dict[str, Any] = {k: v for k, v in wanted.items() if v is not None}
        return self.get_conn().submit_job(
            entrypoint=entrypoint, submission_id=submission_id, runtime_env=runtime_env or None,
            metadata={k: str(v) for k, v in (metadata or {}).items()}, **kwargs,
        )

    def status(self, submission_id: str) -> str | None:
        """The job's status name (PENDING, RUNNING, SUCCEEDED, FAILED, STOPPED), or None if there is no such job."""
        info = self.info(submission_id)
        return None if info is None else str(info.status)

    def info(self, submission_id: str):
        """The job's JobDetails, or None if the cluster has no job with this submission id."""
        try:
            return self.get_conn().get_job_info(submission_id)
        except RuntimeError as exc:
            if "status code 404" in str(exc) or "does not exist" in str(exc):
                return None
            raise

    def stop(self, submission_id: str) -> bool:
        return bool(self.get_conn().stop_job(submission_id))

    def logs(self, submission_id: str) -> str:
        return self.get_conn().get_job_logs(submission_id)

    def job_url(self, submission_id: str) -> str:
        return self.endpoint.job_url(submission_id)

