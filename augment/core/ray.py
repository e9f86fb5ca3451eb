"""Starting Ray, the same way for `moon run`, `moon train` and the benchmarks.

With an address (argument, `run.ray_address`, or RAY_ADDRESS) the process joins that cluster. Without one it
starts a private local Ray (`address="local"`): it never attaches to another local instance that happens to be
running on the machine, its dashboard is off, and its workers import the project from this checkout (also when it
is not installed), run one OpenMP thread each unless told otherwise, and never download model weights.
"""
from __future__ import annotations

import logging
import os
import socket
import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]


def local_ray_runtime_env() -> dict:
    """The runtime env of a local Ray started by `moon`: the checkout on PYTHONPATH, OMP_NUM_THREADS and
    HF_HUB_OFFLINE passed on (defaults 1 and 1)."""
    path = os.pathsep.join(p for p in (str(CHECKOUT), os.environ.get("PYTHONPATH", "")) if p)
    return {"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
                         "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}}


def plain_worker_lines() -> None:
    """Worker output that Ray copies to this process's stdout/stderr carries no colour codes where those go to a
    file or a pipe (a log, the DAG's task log): `RAY_COLOR_PREFIX=0` unless the user chose otherwise."""
    if not (sys.stdout.isatty() and sys.stderr.isatty()):
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")


class RayUnreachable(ConnectionError):
    """Nothing answers at the Ray address given: the run stops at once instead of waiting on it for ever."""


PROBE_SECONDS = 10.0


def reachable(address: str) -> None:
    """Raise RayUnreachable, in one line, when nothing listens at a `host:port` or `ray://host:port` address (Ray
    itself retries such an address without end). Other addresses (`auto`, `local`) are left to Ray."""
    if address.startswith(("http://", "https://")):
        raise RayUnreachable(f"{address} is a Ray dashboard's address, which `ray job submit` takes: moon joins a "
                             "cluster at its control store, host:port (6379 unless `ray start --head --port` set "
                             "another), or ray://host:10001 through Ray Client; fix --ray-address / "
                             "run.ray_address / RAY_ADDRESS")
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_SECONDS).close()
    except OSError as exc:
        raise RayUnreachable(f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}): start it "
                             "(`ray start --head`), or fix --ray-address / run.ray_address / RAY_ADDRESS") from None


def _token_hint() -> str:
    """Why a cluster that answers may refuse this process, by what this machine has: Ray 2.60 turns token
    authentication on by default, and Ray names only a failed connection."""
    token = ("$RAY_AUTH_TOKEN" if os.environ.get("RAY_AUTH_TOKEN") else
             "$RAY_AUTH_TOKEN_PATH" if os.environ.get("RAY_AUTH_TOKEN_PATH") else
             "~/.ray/auth_token" if os.path.exists(os.path.expanduser("~/.ray/auth_token")) else None)
    if token is None:
        return ("if the cluster uses token authentication (Ray's default), this machine has no token: copy the "
                "cluster's ~/.ray/auth_token here, or set RAY_AUTH_TOKEN")
    return (f"if the cluster uses token authentication (Ray's default), check that this machine's token "
            f"({token}) is the cluster's; else check that the address is the cluster's")


def init_ray(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Join the cluster at `address` (or $RAY_ADDRESS; RayUnreachable when nothing answers there), else start a
    private local Ray with `num_cpus` CPUs (default: what Ray detects). Does nothing when this process is already connected. True when it started a
    private Ray: that one never gets more nodes, CPUs or GPUs than this machine has."""
    import ray

    if ray.is_initialized():
        return False
    plain_worker_lines()
    address = address or os.environ.get("RAY_ADDRESS")
    kwargs: dict = {"logging_level": logging.WARNING, "log_to_driver": True}
    if address:
        reachable(address)
        try:
            ray.init(address=address, **kwargs)
        except ConnectionError as exc:  # something answers there, and would not let this process join
            raise RayUnreachable(f"{exc}: {_token_hint()}") from None
        return False
    kwargs["include_dashboard"] = False
    ray.init(address="local", num_cpus=num_cpus, runtime_env=local_ray_runtime_env(), **kwargs)
    return True
