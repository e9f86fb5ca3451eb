"""augment.dev.local_stack: what stopping a node as a lost machine takes down."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from augment.dev import local_stack

pytestmark = pytest.mark.slow  # starts processes

# A group leader whose child runs in a session of its own, as Ray's job supervisor starts a job's driver.
LEADER = ("import subprocess, sys, time; "
          "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], start_new_session=True); "
          "print(child.pid, flush=True); time.sleep(120)")


def test_a_nodes_processes_include_what_it_started_in_other_sessions():
    leader = subprocess.Popen([sys.executable, "-c", LEADER], start_new_session=True, stdout=subprocess.PIPE,
                              text=True)
    child = int(leader.stdout.readline())
    try:
        assert os.getpgid(child) != leader.pid  # out of reach of a kill of the node's process group
        found = local_stack._group_and_descendants(leader.pid)
        assert leader.pid in found and child in found
        assert os.getpid() not in found
    finally:
        for pid in (child, leader.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        leader.wait(timeout=30)
