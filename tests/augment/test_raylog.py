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
    "[2026-12-08 04:09:23,697 E 28798 28823] task_manager.cc:1545: Failed to push error to driver for task "
    "7a1b10586ac5f9600da6c3a1f1a776483411b9e501000000",
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


# What a local Ray 2.60 prints when a stage's actor fails in setup() (a CLIP folder without weights), abridged.
WORKER = "\x1b[36m(MapWorker(MapBatches(StageChain)) pid=15503)\x1b[0m "
CREATION_FAILED = [
    WORKER + "Exception raised in creation task: The actor died because of an error raised in its creation task, "
    "\x1b[36mray::MapWorker(MapBatches(StageChain)).__init__()\x1b[39m (pid=15503, ip=192.0.2.2, actor_id=b6b4)",
    WORKER + "           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
    WORKER + '  File "/x/ray/data/_internal/execution/util.py", line 115, in __init__',
    WORKER + "    super().__init__(*args, **kwargs)",
    WORKER + "OSError: Error no file named model.safetensors found in directory /models/clip.",
]
RETRIED = [  # the raylet prefixes the first line only
    "\x1b[33m(raylet)\x1b[0m Task MapWorker(MapBatches(StageChain)).get_location failed. There are 3 retries "
    "remaining, so the task will be retried. Error: Traceback (most recent call last):",
    "",
    '  File "python/ray/_raylet.pyx", line 2198, in ray._raylet.execute_task',
    "",
    "OSError: Error no file named model.safetensors found in directory /models/clip.",
    "",
    "During handling of the above exception, another exception occurred:",
    "",
    "Traceback (most recent call last):",
    '  File "python/ray/_raylet.pyx", line 995, in ray._raylet.store_task_errors',
    "ray.exceptions.ActorDiedError: The actor died because of an error raised in its creation task, ray::MapWorker",
    "           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
    '  File "/work/augment/pipeline.py", line 94, in __init__',
    "OSError: Error no file named model.safetensors found in directory /models/clip.",
    "",
]


def test_a_stage_that_failed_in_setup_is_hidden_with_its_tracebacks_and_what_follows_is_kept():
    """moon run's last line names the stage's exception: the 150 lines of call stacks above it, once from the
    actor and once from the raylet that retries it, said nothing more."""
    other = "\x1b[36m(MapWorker(MapBatches(StageChain)) pid=77)\x1b[0m a warning of another actor"
    after = ["03:24:29 WARNING moon: a line of moon after the failure", "  an indented line of moon's, after it"]
    lines = [*CREATION_FAILED[:3], other, *CREATION_FAILED[3:], *RETRIED, *after]
    keep = LineFilter()
    assert [line for line in lines if not keep.hides(line.encode())] == [other, *after]


def test_an_actor_retried_for_another_reason_or_a_creation_failure_outside_the_stages_is_kept():
    keep = LineFilter()
    trainer = [line.replace("MapWorker(MapBatches(StageChain))", "RayTrainWorker") for line in CREATION_FAILED]
    assert [line for line in trainer if not keep.hides(line.encode())] == trainer
    task = [RETRIED[0].replace("Task MapWorker(MapBatches(StageChain)).get_location", "Task read_shard"), *RETRIED[1:5]]
    assert [line for line in task if not keep.hides(line.encode())] == task


def test_ray_datas_console_records_of_a_ray_error_moon_reports_are_dropped_and_others_kept():
    import logging

    from ray.exceptions import ActorDiedError, ActorUnavailableError

    from augment.runner import ReportedRayErrors

    class Died(ActorDiedError):
        def __str__(self):
            return "The actor died because of an error raised in its creation task, ray::MapWorker"

    def record(message, exc=None):
        return logging.LogRecord("ray.data.exceptions", logging.ERROR, "x.py", 1, message, None,
                                 (type(exc), exc, None) if exc else None)

    drop = ReportedRayErrors()
    assert not drop.filter(record("MapBatches(StageChain): actors died during initialization 1 consecutive time(s)"))
    assert not drop.filter(record("Full stack trace:", Died()))
    try:
        raise Died()
    except ActorDiedError:  # Ray Data logs its plea to report a Ray bug inside its except, without exc_info
        assert not drop.filter(record("Exception occurred in Ray Data or Ray Core internal code."))
        assert drop.filter(record("Exception occurred in Ray Data or Ray Core internal code.", ValueError("x")))
    assert drop.filter(record("Exception occurred in Ray Data or Ray Core internal code."))
    lost = ActorUnavailableError.__new__(ActorUnavailableError)  # an actor lost with its node
    assert not drop.filter(record('An exception was raised from a task of operator "MapBatches(StageChain)". '
                                  "Dataset execution will now abort.", lost))
    assert drop.filter(record("Full stack trace:", KeyError("a defect of moon's, not Ray's")))


def run_script(tmp_path, text: str, *argv) -> subprocess.CompletedProcess:
    """A script that uses the filter, run as a command (the filter works on file descriptor 2)."""
    script = tmp_path / "script.py"
    script.write_text("import os, sys, time\nfrom augment.core.raylog import quiet_ray\n" + text)
    return subprocess.run([sys.executable, str(script), *argv], cwd=ROOT, capture_output=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


@pytest.mark.slow  # a child process
def test_the_filter_hides_noise_written_to_fd_2_and_keeps_the_rest_in_order(tmp_path):
    script = (
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
        return run_script(tmp_path, script, *argv).stderr.decode()

    assert run() == ("first\n\rbar 1/2\rbar 2/2\nsecond\n"
                     "(2 lines of Ray's own messages hidden; -v shows them)\nafter\n")
    verbose = run("-v")
    assert "constructor arguments in the object store" in verbose and "Failed to query" in verbose
    assert "hidden" not in verbose


@pytest.mark.slow  # a child process
def test_a_command_that_fails_inside_the_filter_still_says_how_many_lines_it_hid(tmp_path):
    """The failure is when a user most wants what -v shows."""
    out = run_script(tmp_path, (
        "try:\n"
        "    with quiet_ray():\n"
        f"        os.write(2, {NOISE_LINES[2].encode()!r} + b'\\n')\n"
        "        raise RuntimeError('stage failed')\n"
        "except RuntimeError as exc:\n"
        "    print(f'error: {exc}', file=sys.stderr)\n"
    )).stderr.decode()
    assert out == ("(1 line of Ray's own messages hidden; -v shows them)\n"
                   "error: stage failed\n")


@pytest.mark.slow  # a child process
def test_the_last_lines_of_a_command_that_ray_ends_at_once_are_still_shown(tmp_path):
    """Ray's core ends the driver with _exit when it loses the cluster's control store: the line that says so was
    still in the pipe of a filter thread that died with it, and moon run exited 1 without a word."""
    done = run_script(tmp_path, (
        "with quiet_ray(resume='run the same command again to resume'):\n"
        f"    os.write(2, {NOISE_LINES[2].encode()!r} + b'\\n')\n"
        "    os.write(2, b'[2026-12-08 03:59:34,101 C 1 1] core_worker.cc:1 Failed to connect to GCS within 60 "
        "seconds.\\n')\n"
        "    os._exit(1)\n"
    ))
    assert done.returncode == 1
    assert done.stderr.decode() == ("[2026-12-08 03:59:34,101 C 1 1] core_worker.cc:1 Failed to connect to GCS within "
                                    "60 seconds.\n(1 line of Ray's own messages hidden; -v shows them)\n"
                                    "error: the command ended before it finished (the lines above may say why); run "
                                    "the same command again to resume\n")
