"""Ray's noise on stderr: which lines are hidden, and the filter on file descriptor 2 that hides them."""
import subprocess
import sys
from pathlib import Path

import pytest

from augment.core.raylog import LineFilter, is_noise

ROOT = Path(__file__).resolve().parents[2]

# Lines as a local Ray 2.60 prints them in `moon run` and `moon train` (colour codes included).
NOISE_LINES = [
    "2026-12-04 14:53:10,888\tWARNING authentication_token_setup.py:85 -- Token authentication is enabled for this "
    "Ray cluster. Set RAY_AUTH_MODE=disabled to opt out.",
    "2026-12-04 14:53:23,889\tINFO worker.py:2038 -- Started a local Ray instance.",
    "[2026-12-04 14:52:27,793 E 6463 6463] core_worker.cc:2465: Actor with class name: 'MapWorker(MapBatches("
    "StageChain))' and ID: 'ee56' has constructor arguments in the object store and max_restarts > 0. If the",
    "\x1b[36m(TrainController pid=9442)\x1b[0m [2026-12-04 14:54:05,482 E 9442 9583] core_worker.cc:2465: Actor "
    "with class name: 'PreemptionWatcher' and ID: '8901' has constructor arguments in the object store and "
    "max_restarts > 0.",
    "\x1b[33m(PlacementGroupCleaner pid=10005)\x1b[0m Failed to query Ray Train Controller actor state. State API "
    "may be temporarily unavailable. Continuing to monitor.",
    "\x1b[36m(PlacementGroupCleaner pid=10005)\x1b[0m ConnectionError: Found multiple active Ray instances",
    "\x1b[36m(DatasetManager pid=10244)\x1b[0m /x/ray/data/_internal/execution/interfaces/execution_options.py:436: "
    "RayDeprecationWarning: `ExecutionOptions.exclude_resources` is deprecated",
    "\x1b[36m(DatasetManager pid=10244)\x1b[0m   self.exclude_resources = exclude_resources",
    "2026-12-04 14:53:26,019\tWARNING __init__.py:28 -- Progress bars disabled. To enable, set "
    "`ray.data.DataContext.get_current().enable_progress_bars = True`.",
    "\x1b[36m(RayTrainWorker pid=10038)\x1b[0m Checkpoint successfully created at: Checkpoint(filesystem=local, "
    "path=/tmp/ckpt/epoch-0001)",
    "\x1b[36m(SplitCoordinator pid=10418)\x1b[0m ✔️  Dataset train_0358_9 execution finished in 0.03 seconds",
    "\x1b[36m(TrainController pid=2083)\x1b[0m A run snapshot was found in storage folder at: '/tmp/w28/ckpt-v'",
    "\x1b[36m(TrainController pid=2083)\x1b[0m If you meant to start a brand new training job without any "
    "information about previous checkpoints found in this directory, please configure a new, unique",
    "\x1b[36m(pid=gcs_server)\x1b[0m [2026-12-04 14:53:42,334 E 7980 7980] (gcs_server) gcs_actor_scheduler.cc:538: "
    "Failed to kill actor f93a6fd4, return status: Invalid: KillActor RPC failed for actor f93a6fd4: RpcError",
]
KEPT_LINES = [
    "15:13:38 INFO model.train: 3 shards, 66 training products, 2 steps per epoch",
    "epoch  1/20  loss 14.2306  val R@10 89.8 (best)  15.1 samples/s  4.2 s  elapsed 0:00:53",
    "\x1b[36m(RayTrainWorker pid=10038)\x1b[0m 15:14:02 WARNING model.data: skipped 2 products without a readable image",
    "\x1b[36m(RayTrainWorker pid=10038)\x1b[0m Traceback (most recent call last):",
    "\x1b[36m(TrainController pid=9442)\x1b[0m [2026-12-04 14:54:05,482 E 9442 9583] worker_group.cc:10: Worker died",
    "2026-12-04 14:53:26,019\tERROR worker.py:422 -- Unhandled error (suppress with 'RAY_IGNORE_UNHANDLED_ERRORS=1')",
    "error: /tmp/ckpt already holds epoch-0020: pass --resume, or another --output",
]


@pytest.mark.parametrize("line", NOISE_LINES)
def test_ray_noise_is_recognised(line):
    assert is_noise(line.encode())


@pytest.mark.parametrize("line", KEPT_LINES)
def test_our_output_and_errors_pass(line):
    assert not is_noise(line.encode())


# What Ray Train's controller prints each time the training workers did not start in time (abridged: 30 lines).
STARTUP_TIMEOUT = [
    "\x1b[36m(TrainController pid=20674)\x1b[0m Error in control loop iteration: The worker group startup timed out "
    "after 60.0 seconds waiting for 1 workers. Potential causes include: (1) temporary insufficient cluster resources",
    "\x1b[36m(TrainController pid=20674)\x1b[0m Traceback (most recent call last):",
    "\x1b[36m(TrainController pid=20674)\x1b[0m   File \"/x/ray/train/v2/_internal/execution/controller/controller.py\","
    " line 914, in _run_control_loop_iteration",
    "\x1b[36m(TrainController pid=20674)\x1b[0m     result = await self._step()",
    "\x1b[36m(TrainController pid=20674)\x1b[0m              ^^^^^^^^^^^^^^^^^^",
    "\x1b[36m(TrainController pid=20674)\x1b[0m     raise WorkerGroupStartupTimeoutError(",
    "\x1b[36m(TrainController pid=20674)\x1b[0m ray.train.v2._internal.exceptions.WorkerGroupStartupTimeoutError: The "
    "worker group startup timed out after 60.0 seconds waiting for 1 workers.",
]


def test_the_controllers_traceback_under_a_startup_timeout_is_hidden_and_its_message_kept():
    between = "15:13:38 WARNING model.train: a line of another process, in the middle of the traceback"
    worker = ["\x1b[36m(RayTrainWorker pid=10038)\x1b[0m Traceback (most recent call last):",  # a worker's: kept
              "\x1b[36m(RayTrainWorker pid=10038)\x1b[0m   File \"/work/model/train.py\", line 3, in loop",
              "\x1b[36m(RayTrainWorker pid=10038)\x1b[0m ValueError: bad batch"]
    last = "config error: training asks 1 worker (train.num_workers) of 4 CPUs (train.cpus_per_worker) each"
    lines = [*STARTUP_TIMEOUT[:3], between, *STARTUP_TIMEOUT[3:], *STARTUP_TIMEOUT, *worker, last]
    keep = LineFilter()
    assert [line for line in lines if not keep.hides(line.encode())] == [
        STARTUP_TIMEOUT[0], between, STARTUP_TIMEOUT[0], *worker, last]


def test_a_traceback_of_another_process_or_without_that_message_is_kept():
    other = [line.replace("pid=20674", "pid=1") for line in STARTUP_TIMEOUT[1:]]
    keep = LineFilter()
    assert [line for line in [STARTUP_TIMEOUT[0], *other] if not keep.hides(line.encode())] == [STARTUP_TIMEOUT[0],
                                                                                              *other]
    keep = LineFilter()
    assert [line for line in STARTUP_TIMEOUT[1:] if not keep.hides(line.encode())] == STARTUP_TIMEOUT[1:]


@pytest.mark.slow  # a child process
def test_the_filter_hides_noise_written_to_fd_2_and_keeps_the_rest_in_order(tmp_path):
    script = tmp_path / "emit.py"
    script.write_text(
        "import os, sys, time\n"
        "from augment.core.raylog import quiet_ray\n"
        "with quiet_ray(verbose=len(sys.argv) > 1) as console:\n"
        "    print('first', file=sys.stderr)\n"
        f"    os.write(2, {NOISE_LINES[2].encode()!r} + b'\\n')  # as Ray's C++ core writes it\n"
        f"    print({NOISE_LINES[4]!r}, file=sys.stderr)\n"
        "    sys.stderr.write('\\rbar 1/2'); sys.stderr.flush(); time.sleep(0.3)\n"
        "    sys.stderr.write('\\rbar 2/2\\n')\n"
        "    print('second', file=sys.stderr)\n"
        "print('after', file=sys.stderr)\n"
    )

    def run(*argv):
        return subprocess.run([sys.executable, str(script), *argv], cwd=ROOT, capture_output=True,
                              env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}).stderr.decode()

    assert run() == ("first\n\rbar 1/2\rbar 2/2\nsecond\n"
                     "(2 lines of Ray's own start-up and progress messages hidden; -v shows them)\nafter\n")
    verbose = run("-v")
    assert "constructor arguments in the object store" in verbose and "Failed to query" in verbose
    assert "hidden" not in verbose
