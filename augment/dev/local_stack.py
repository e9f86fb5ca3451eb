"""A local Ray head and `airflow standalone` for development and tests: `make airflow` / `make airflow-stop`.

`python -m augment.dev.local_stack start` starts, bound to 127.0.0.1 where the programs allow it:
- a Ray head with its dashboard (the Jobs API) on a free port, token authentication on with a fresh random
  token, its files in a private temp dir;
- `airflow standalone` with this checkout's dags/ folder, AIRFLOW_HOME in .airflow/ (sqlite), the Ray
  connection `ray_default` (address + token) set through the environment, and the `moon_gpu` pool;
then prints the URL and the login that standalone generated, and waits. Ctrl-C, SIGTERM or `... stop` (which
reads the state file the start wrote) stops both: each was started in its own process group, which is what is
signalled; Ray processes that left it are found by the private temp dir in their command line. Nothing else on
the machine is touched. The test suite uses the same classes.

Development only: standalone runs SQLite and the LocalExecutor. docs/operations.md says what to run instead.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from augment.orchestrate import GPU_POOL

ROOT = Path(__file__).resolve().parents[2]
POOL = (GPU_POOL, 2, "Ray jobs that may use GPUs: one slot per concurrent moon job (deferred tasks count)")
STATE_FILE = "local_stack.json"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _bin(name: str) -> str:
    """A console script of this Python's environment (the venv's `ray`, `airflow`), else from PATH."""
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else (shutil.which(name) or name)


def _wait(what: str, ready, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if ready():
            return
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"{what} exited with code {proc.returncode} while starting:\n{tail}")
        time.sleep(0.5)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s" + (f"; see {log}" if log else ""))


def _http_ok(url: str, headers: dict[str, str] | None = None) -> bool:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def stop_group(pgid: int, marker: str | None = None, grace: float = 5.0) -> None:
    """SIGTERM a process group we started, SIGKILL what is left after `grace`; then the strays carrying `marker`."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.time() + wait
        while time.time() < deadline and _group_alive(pgid):
            time.sleep(0.2)
        if not _group_alive(pgid):
            break
    if marker:
        for pid in _pids_with(marker):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return any(group == pgid for group, _ in _processes().values())  # zombies count as gone


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _processes() -> dict[int, tuple[int, int]]:
    """{pid: (process group, parent pid)} of the live processes (zombies left out), from /proc/<pid>/stat."""
    table = {}
    for pid in _all_pids():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            table[pid] = (int(fields[2]), int(fields[1]))
    return table


def _group_and_descendants(pgid: int) -> list[int]:
    """The live processes of group `pgid` and every process descended from one of them, in whatever session or
    group it runs (Ray starts a job's driver in a session of its own, under the node's job supervisor)."""
    table = _processes()
    found = {pid for pid, (group, _) in table.items() if group == pgid}
    for pid in table:
        chain, up = [], pid
        while up > 1 and up not in found and up in table:
            chain.append(up)
            up = table[up][1]
        if up in found:
            found.update(chain)
    return sorted(found)


def _pids_with(marker: str) -> list[int]:
    """Processes whose command line contains `marker` (our private temp dir), excluding this one."""
    found = []
    for pid in _all_pids():
        if pid == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            found.append(pid)
    return found


class RayHead:
    """`ray start --head --block` in its own process group, on free ports, with a fresh auth token."""

    def __init__(self, num_cpus: int = 2, env: dict[str, str] | None = None, temp_dir: str | None = None,
                 token: str | None = None, resources: dict[str, float] | None = None, num_gpus: int = 0):
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus  # GPUs the head declares (Ray schedules by them; a bench may declare absent ones)
        self.resources = dict(resources or {})  # Ray custom resources of the head node
        self.extra_env = dict(env or {})
        # Short path: Ray puts unix sockets under it (107-byte limit).
        self.temp_dir = temp_dir or tempfile.mkdtemp(prefix="moonray-", dir="/tmp")
        self.token = token or secrets.token_hex(24)  # a fresh one unless the caller holds one already
        self.port = free_port()
        self.dashboard_port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = Path(self.temp_dir) / "ray-start.log"

    @property
    def address(self) -> str:
        """The GCS address that drivers (`ray.init(address=...)`, `moon run --ray-address`) and nodes join."""
        return f"127.0.0.1:{self.port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def connection(self) -> dict:
        """The Airflow connection (as AIRFLOW_CONN_* JSON) for this head."""
        return {"conn_type": "http", "host": "127.0.0.1", "port": self.dashboard_port, "password": self.token,
                "description": "local Ray head (augment.dev.local_stack)"}

    def start(self, timeout: float = 120.0) -> "RayHead":
        cmd = [
            _bin("ray"), "start", "--head", "--block", "--disable-usage-stats",
            "--node-ip-address", "127.0.0.1", "--port", str(self.port),
            "--dashboard-host", "127.0.0.1", "--dashboard-port", str(self.dashboard_port),
            "--ray-client-server-port", str(free_port()), "--dashboard-agent-listen-port", str(free_port()),
            "--num-cpus", str(self.num_cpus), "--temp-dir", self.temp_dir,
        ] + (["--resources", json.dumps(self.resources)] if self.resources else []) + (
            ["--num-gpus", str(self.num_gpus)] if self.num_gpus else [])
        self.proc = _start_node(cmd, _node_env(self.token, self.extra_env), self.log_path)
        headers = {"Authorization": f"Bearer {self.token}"}
        _wait("ray head", lambda: _http_ok(f"{self.dashboard_url}/api/jobs/", headers), timeout, self.proc, self.log_path)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc.pid, marker=self.temp_dir)
            self.proc.wait(timeout=10)
            self.proc = None

    def __enter__(self) -> "RayHead":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class RayWorkerNode:
    """Another Ray node (`ray start --address ... --block`) joined to a head started here: in its own process group,
    with its own temp dir, CPUs and custom resources. On one machine this is what a second machine of a cluster
    is to Ray: its own raylet, object store and workers. `stop()` takes it down at once (SIGKILL), as a lost
    machine goes, unless `graceful`."""

    def __init__(self, head: RayHead, num_cpus: int = 1, resources: dict[str, float] | None = None,
                 env: dict[str, str] | None = None):
        self.head = head
        self.num_cpus = num_cpus
        self.resources = dict(resources or {})
        self.extra_env = dict(env or {})
        self.temp_dir = tempfile.mkdtemp(prefix="moonnode-", dir="/tmp")
        self.proc: subprocess.Popen | None = None
        self.log_path = Path(self.temp_dir) / "ray-start.log"
        self.node_id = ""

    def start(self, timeout: float = 120.0) -> "RayWorkerNode":
        cmd = [
            _bin("ray"), "start", "--address", self.head.address, "--block", "--disable-usage-stats",
            "--node-ip-address", "127.0.0.1", "--num-cpus", str(self.num_cpus), "--temp-dir", self.temp_dir,
            "--dashboard-agent-listen-port", str(free_port()), "--metrics-export-port", str(free_port()),
            "--runtime-env-agent-port", str(free_port()),
        ] + (["--resources", json.dumps(self.resources)] if self.resources else [])
        before = set(self.node_ids())
        self.proc = _start_node(cmd, _node_env(self.head.token, self.extra_env), self.log_path)
        _wait("ray worker node", lambda: bool(set(self.node_ids()) - before), timeout, self.proc, self.log_path)
        self.node_id = next(iter(set(self.node_ids()) - before))
        return self

    def node_ids(self) -> list[str]:
        """Ids of the cluster's live nodes other than the head (the head's state API, as `ray list nodes`)."""
        from ray.util.state import list_nodes

        try:
            nodes = list_nodes(address=self.head.dashboard_url, filters=[("state", "=", "ALIVE")],
                               raise_on_missing_output=False)
        except Exception:  # noqa: BLE001 - the API answers once the head is up; until then: none
            return []
        return [n.node_id for n in nodes if not n.is_head_node]

    def stop(self, graceful: bool = False) -> None:
        """Stop the node: at once (SIGKILL to its process group and to every process it started, such as a job's
        driver in a session of its own, as a machine that is lost), or `graceful`."""
        if self.proc is not None:
            if not graceful:
                doomed = _group_and_descendants(self.proc.pid)  # listed first: killed, their children reparent
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                for pid in doomed:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            stop_group(self.proc.pid, marker=self.temp_dir)  # what is left, and strays carrying its temp dir
            self.proc.wait(timeout=10)
            self.proc = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _node_env(token: str, extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, "RAY_USAGE_STATS_ENABLED": "0",
        "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "1"),
        # Job drivers run `python -m augment.cli`: this checkout first, then the venv's packages.
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p),
        "PATH": os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", ""))),
    })
    env.pop("RAY_ADDRESS", None)
    env.update(extra)
    return env


def _start_node(cmd: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    log = open(log_path, "wb")
    # From the checkout: Ray workers start in the node's working directory, where relative input paths resolve.
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, cwd=ROOT)


def stop_group_if_any(pgid: int | None, marker: str | None) -> None:
    if pgid:
        stop_group(pgid, marker)
    elif marker:
        for pid in _pids_with(marker):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def airflow_env(home: Path, dags_folder: Path, port: int, ray_conn: dict, extra: dict[str, str] | None = None) -> dict:
    """The environment of `airflow standalone` and of the `airflow` CLI calls made next to it."""
    env = dict(os.environ)
    venv_bin = str(Path(sys.executable).parent)
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
        # SQLite and a small machine: the task supervisors' calls to the execution API can take seconds.
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW_CONN_RAY_DEFAULT": json.dumps(ray_conn),
        "PATH": os.pathsep.join((venv_bin, env.get("PATH", ""))),
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p),
        "HF_HUB_OFFLINE": "1",
        "RAY_USAGE_STATS_ENABLED": "0",
        "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "1"),
    })
    env.update(extra or {})
    return env


class AirflowStandalone:
    """`airflow standalone` in its own process group; knows its URL and the login it generated."""

    def __init__(self, home: Path, dags_folder: Path, ray_conn: dict, port: int | None = None,
                 env: dict[str, str] | None = None):
        self.home = Path(home)
        self.port = port or free_port()
        self.env = airflow_env(self.home, Path(dags_folder), self.port, ray_conn, env)
        self.proc: subprocess.Popen | None = None
        self.log_path = self.home / "standalone.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def airflow(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run an `airflow` CLI command against this instance's home."""
        return subprocess.run([_bin("airflow"), *args], env=self.env, check=check, capture_output=True, text=True,
                              timeout=300)

    def start(self, timeout: float = 300.0) -> "AirflowStandalone":
        self.home.mkdir(parents=True, exist_ok=True)
        # 1. The database and the pool before the scheduler runs, so that no task waits on a missing pool.
        self.airflow("db", "migrate")
        name, slots, description = POOL
        self.airflow("pools", "set", name, str(slots), description, "--include-deferred")
        # 2. The components: api-server, scheduler, dag-processor, triggerer.
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([_bin("airflow"), "standalone"], env=self.env, cwd=self.home, stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        _wait("airflow standalone", lambda: _http_ok(f"{self.url}/api/v2/monitor/health") and self.login()[1],
              timeout, self.proc, self.log_path)
        return self

    def login(self) -> tuple[str, str]:
        """(username, password) generated by standalone's simple auth manager; ("admin", "") until written."""
        path = self.home / "simple_auth_manager_passwords.json.generated"
        try:
            users = json.loads(path.read_text())
        except (OSError, ValueError):
            return "admin", ""
        user = "admin" if "admin" in users else next(iter(users), "admin")
        return user, users.get(user, "")

    def api_token(self) -> str:
        """A bearer token for the REST API, from the generated login."""
        user, password = self.login()
        request = urllib.request.Request(f"{self.url}/auth/token", method="POST",
                                         data=json.dumps({"username": user, "password": password}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            return json.loads(resp.read())["access_token"]

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc.pid)
            self.proc.wait(timeout=10)
            self.proc = None

    def __enter__(self) -> "AirflowStandalone":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------------------------------
# make airflow / make airflow-stop
# ---------------------------------------------------------------------------------------------------------------
def cmd_start(args) -> int:
    home = Path(args.home).absolute()
    home.mkdir(parents=True, exist_ok=True)
    state_path = home / STATE_FILE
    if state_path.exists():
        cmd_stop(args)  # a previous stack that was not stopped cleanly
    ray_head = RayHead(num_cpus=args.num_cpus)
    standalone = AirflowStandalone(home, Path(args.dags).absolute(), ray_head.connection(), port=args.port)
    stopping = {"now": False}

    def _terminate(signum, frame):
        stopping["now"] = True

    signal.signal(signal.SIGTERM, _terminate)
    try:
        print(f"starting a Ray head (files in {ray_head.temp_dir}) ...", flush=True)
        ray_head.start()
        state = {"ray_pgid": ray_head.proc.pid, "ray_temp_dir": ray_head.temp_dir, "airflow_pgid": None,
                 "pid": os.getpid()}
        state_path.write_text(json.dumps(state))
        print(f"starting airflow standalone (log: {standalone.log_path}) ...", flush=True)
        standalone.start()
        state["airflow_pgid"] = standalone.proc.pid
        state_path.write_text(json.dumps(state))
        user, password = standalone.login()
        print("\n".join([
            "",
            f"Airflow UI:     {standalone.url}",
            f"login:          {user} / {password}   (generated by airflow standalone; kept in {home})",
            f"Ray dashboard:  {ray_head.dashboard_url}   (token auth on; the token is in the ray_default connection)",
            f"DAGs folder:    {Path(args.dags).absolute()}",
            "stop with Ctrl-C or `make airflow-stop`",
        ]), flush=True)
        while not stopping["now"] and standalone.proc.poll() is None and ray_head.proc.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        print("stopping airflow and the Ray head ...", flush=True)
        standalone.stop()
        ray_head.stop()
        shutil.rmtree(ray_head.temp_dir, ignore_errors=True)
        state_path.unlink(missing_ok=True)
    return 0


def cmd_stop(args) -> int:
    state_path = Path(args.home).absolute() / STATE_FILE
    if not state_path.exists():
        print("no local stack is recorded as running")
        return 0
    state = json.loads(state_path.read_text())
    owner = state.get("pid")
    if owner and owner != os.getpid() and Path(f"/proc/{owner}").exists():
        os.kill(owner, signal.SIGTERM)  # the start command stops both itself and removes the state file
        deadline = time.time() + 60
        while time.time() < deadline and state_path.exists():
            time.sleep(0.5)
    if state_path.exists():
        stop_group_if_any(state.get("airflow_pgid"), None)
        stop_group_if_any(state.get("ray_pgid"), state.get("ray_temp_dir"))
        shutil.rmtree(state.get("ray_temp_dir") or "/nonexistent", ignore_errors=True)
        state_path.unlink(missing_ok=True)
    print("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m augment.dev.local_stack", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("start", "stop"))
    parser.add_argument("--home", default=str(ROOT / ".airflow"), help="AIRFLOW_HOME (default: .airflow/)")
    parser.add_argument("--dags", default=str(ROOT / "dags"), help="DAGs folder (default: dags/)")
    parser.add_argument("--port", type=int, default=8080, help="Airflow UI / API port (default 8080)")
    parser.add_argument("--num-cpus", type=int, default=os.cpu_count() or 2, help="CPUs of the Ray head")
    args = parser.parse_args(argv)
    return cmd_start(args) if args.command == "start" else cmd_stop(args)


if __name__ == "__main__":
    sys.exit(main())
