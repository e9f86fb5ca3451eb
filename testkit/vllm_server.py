"""Start and stop a real vLLM OpenAI-compatible server (CPU build, its own venv) for tests and benchmarks.

The venv is `.venv-vllm/` at the repository root (built by `make vllm-venv`), or the Python named by the
MOON_VLLM_PYTHON environment variable. `vllm_python()` says why it cannot be used, for the test's skip message.
"""
from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv-vllm"
BUILD_LOG = ROOT / ".venv-vllm.log"


def vllm_python() -> tuple[str | None, str]:
    """(python executable, '') when a usable vLLM venv exists, else (None, why not)."""
    python = os.environ.get("MOON_VLLM_PYTHON") or str(VENV / "bin" / "python")
    if not Path(python).exists():
        hint = f" (last build log: {BUILD_LOG})" if BUILD_LOG.exists() else ""
        return None, f"no vLLM CPU venv at {Path(python).parent.parent}: build it with `make vllm-venv`{hint}"
    # Found, not imported (an import costs ~10 s): `make vllm-venv` imports it once when it builds the venv, and a
    # server that then fails to start raises with its log.
    found = "import importlib.util, sys; sys.exit(importlib.util.find_spec('vllm') is None)"
    probe = subprocess.run([python, "-c", found], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        return None, f"{python} has no vllm package: rebuild it with `make vllm-venv` {probe.stderr.strip()[-300:]}"
    return python, ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class VllmServer:
    """`python -m vllm.entrypoints.openai.api_server` on 127.0.0.1 serving `model_dir`, logs to `log_path`."""

    def __init__(self, python: str, model_dir: str | Path, log_path: str | Path, ready_timeout_s: float = 300,
                 enforce_eager: bool = True):
        self.python = python
        # Eager mode skips vLLM's torch.compile warm-up: on 2 CPU cores that is ~50 s of a ~60 s start, for a tiny
        # model whose speed no test measures. bench/bench_enrich.py compiles, as a production server does.
        self.enforce_eager = enforce_eager
        self.model_dir = str(model_dir)
        self.port = free_port()
        self.log_path = Path(log_path)
        self.ready_timeout_s = ready_timeout_s
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "VllmServer":
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_NO_USAGE_STATS": "1",
               "DO_NOT_TRACK": "1"}
        cmd = [self.python, "-m", "vllm.entrypoints.openai.api_server", "--model", self.model_dir,
               "--host", "127.0.0.1", "--port", str(self.port), "--gpu-memory-utilization", "0.1",
               "--max-model-len", "4096"] + (["--enforce-eager"] if self.enforce_eager else [])
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"vLLM server exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.base_url}/models", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(1)
        self.stop()
        raise RuntimeError(f"vLLM server not ready after {self.ready_timeout_s} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(line for line in text if not line.startswith("WARNING: Location"))[-4000:]

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if getattr(self, "_log", None):
            self._log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
