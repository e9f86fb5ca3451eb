"""Ray's console messages that say nothing about the user's job, kept off the terminal of `moon run` / `moon train`.

A Ray job prints, besides the job's own output: start-up notes, Ray Data's per-dataset execution lines, Ray
Train's per-report chatter, warnings about settings the job cannot change, and one helper of Ray Train that,
on a local Ray started without its dashboard, logs a failed state query every few seconds for the whole run
(hundreds of lines in a 20-epoch training). `quiet_ray()` puts a filter between the process's stderr (file
descriptor 2, so that lines written by Ray's C++ core and lines forwarded from Ray workers are caught too) and
the terminal: a line that matches one of NOISE is dropped and counted, and so is the traceback a process prints
under a message of TRACEBACK_HIDDEN (the message itself stays), and a message of BLOCK_HIDDEN with the traceback
under it (a failure the command reports in one line of its own); everything else passes unchanged, in order. With
`-v` nothing is filtered. What each pattern is, and why it is safe to hide, is written next to it;
an error of the job itself never matches them.

This module must not import Ray.
"""
from __future__ import annotations

import contextlib
import os
import re
import select
import subprocess
import sys
from typing import IO, Iterator

ANSI = re.compile(rb"\x1b\[[0-9;]*m")

# (pattern, why it is noise). Patterns match a line with its colour codes removed.
NOISE: tuple[tuple[str, str], ...] = (
    (r"Token authentication is enabled for this Ray cluster",
     "Ray 2.60 turns token authentication on by default and says so at every start (the token lives in "
     "~/.ray/auth_token); nothing to do."),
    (r"has constructor arguments in the object store and max_restarts > 0",
     "an E-level note of Ray's core for every actor whose constructor arguments are large enough to live in the "
     "object store and that may be restarted (Ray Data's stage actors, Ray Train's PreemptionWatcher): a restart "
     "after the arguments were lost would fail. The arguments live as long as the job, which does not lose them."),
    (r"^\(PlacementGroupCleaner pid=\d+\)",
     "Ray Train's helper that removes the training placement group if the training controller dies without "
     "cleaning up. It polls the state API, which a local Ray started without its dashboard does not serve: it "
     "logs 'Failed to query Ray Train Controller actor state' (a 404) every few seconds, or a ConnectionError "
     "traceback when several local Ray instances run on the machine. Training is unaffected; a Ray cluster with "
     "its dashboard (--ray-address) serves the state API."),
    (r"Failed to query Ray Train Controller actor state", "the same helper's message, however it is prefixed"),
    (r"^\(DatasetManager pid=\d+\).*(RayDeprecationWarning|self\.exclude_resources = exclude_resources)",
     "a deprecation warning Ray Train's own dataset manager triggers inside Ray (ExecutionOptions."
     "exclude_resources), and the source line Python prints with it; not our code."),
    (r"^\d{4}-\d\d-\d\d [\d:,]+\s+INFO ",
     "Ray's INFO lines in this process: 'Started a local Ray instance', Ray Data's execution plans and timings."),
    (r"Progress bars disabled\. To enable",
     "Ray Data's note that its own progress bars are off: moon prints its own progress."),
    (r"^\((TrainController|RayTrainWorker|SplitCoordinator) pid=\d+\) "
     r"(Requesting resources|Attempting to start training worker group|Started training worker group|- \(ip=|"
     r"Setting up process group|Moving model to device|Checkpoint successfully created|"
     r"Reporting training result|Starting execution of Dataset|Execution plan of Dataset|✔️ +Dataset )",
     "Ray Train's and Ray Data's per-report and per-epoch notes from the training actors (worker group start, "
     "each checkpoint upload, each epoch's dataset pass); moon train prints one line per epoch instead."),
    (r"^\(TrainController pid=\d+\) (A run snapshot was found in storage folder|This snapshot contains a list of "
     r"checkpoints reported|If you meant to start a brand new training job without any information)",
     "Ray Train's three-line note, on --resume, that it found the run's snapshot in the output folder and will "
     "continue from it: what --resume asked for (moon train says which epoch it resumes from)."),
    (r"task_manager\.cc:\d+: Failed to push error to driver for task [0-9a-f]+$",
     "Ray's core, once the cluster's control store is gone, failing to report each running task's error to this "
     "driver, once a second per task; the control store's loss is the line that says why (not hidden)."),
    (r"^\(pid=gcs_server\) .*Failed to kill actor [0-9a-f]+, return status: Invalid: KillActor RPC failed",
     "Ray's control store reporting that an actor it was asked to kill had already exited (Ray Data's short-"
     "lived read actors); nothing was left running."),
)
_NOISE = [re.compile(p.encode()) for p, _ in NOISE]

# (pattern, why): a message that is shown, while the Python traceback its process prints under it is hidden.
TRACEBACK_HIDDEN: tuple[tuple[str, str], ...] = (
    (r"^\(TrainController pid=\d+[^)]*\) Error in control loop iteration: The worker group startup timed out",
     "Ray Train's controller, each time the training workers did not start in time because the cluster lacks "
     "their resources for now (on a joined cluster moon train waits for nodes to join). The message says so and "
     "what to do; the 30 lines under it are Ray Train's own call stack. moon train retries 10 times, then stops "
     "in one line."),
)
_TRACEBACK_HIDDEN = [re.compile(p.encode()) for p, _ in TRACEBACK_HIDDEN]

# (pattern, where its lines go on, why): a message hidden together with the traceback under it, in the lines of
# the same process ("actor") or in the unprefixed lines after it ("plain": Ray prefixes only the first line of a
# message it relays).
BLOCK_HIDDEN: tuple[tuple[str, str, str], ...] = (
    (r"^\(MapWorker\(.*pid=[^)]*\) Exception raised in creation task: The actor died because of an error raised "
     r"in its creation task", "actor",
     "a stage's actor (Ray Data's MapWorker) that failed in setup(): a model that does not load, a device it lacks. "
     "moon run stops and its last line names the stage's exception (runner.ray_failure); the 40 lines above it "
     "were Ray's and the libraries' call stacks, printed once per actor."),
    (r"^\(raylet[^)]*\) Task MapWorker\(\S* failed\. There are \d+ retries remaining, so the task will be "
     r"retried\. Error: ", "plain",
     "Ray retrying a call to a stage's actor, with that actor's whole traceback (70 lines): when the retries run "
     "out, moon run's last line names the error; when one succeeds, there was none."),
)
_BLOCK_HIDDEN = [(re.compile(p.encode()), where == "plain") for p, where, _ in BLOCK_HIDDEN]
_ACTOR = re.compile(rb"^\((?:.*? )?pid=[^)]*\) |^\([\w-]+(?:, ip=[^)]*)?\) ")  # "(TrainController pid=9442) ",
# "(MapWorker(MapBatches(StageChain)) pid=7, ip=10.0.0.2) ", "(raylet) "
_TRACEBACK_GOES_ON = re.compile(rb"^(\s|$|Traceback \(most recent call last\):|During handling of the above "
                                rb"exception|The above exception was the direct cause|[A-Za-z_][\w.]*(Error|Exception"
                                rb"|Exit|Interrupt)\b)")


def _text(line: bytes) -> bytes:
    return ANSI.sub(b"", line).rstrip(b"\r\n")


def is_noise(line: bytes) -> bool:
    text = _text(line)
    return any(p.search(text) for p in _NOISE)


class LineFilter:
    """Which lines of stderr to hide, in order: NOISE; the traceback under a TRACEBACK_HIDDEN message (that
    process's lines from `Traceback (most recent call last):` to the exception's own line); a BLOCK_HIDDEN message
    and the traceback under it (frames, chained exceptions and blank lines, to the first line that is none of
    these). Lines of other processes in between are judged on their own."""

    def __init__(self) -> None:
        self._tracebacks: dict[bytes, bool] = {}  # process prefix -> in its frames, under a TRACEBACK_HIDDEN message
        self._blocks: set[bytes] = set()  # process prefixes (b"": unprefixed lines) that go on a BLOCK_HIDDEN one

    def hides(self, line: bytes) -> bool:
        text = _text(line)
        actor = _ACTOR.match(text)
        prefix = actor.group(0) if actor else b""
        body = text[len(prefix):]
        if prefix in self._blocks:
            if _TRACEBACK_GOES_ON.match(body):
                return True
            self._blocks.discard(prefix)
        if prefix in self._tracebacks:
            if body.startswith(b"Traceback (most recent call last):") or body[:1].isspace():
                self._tracebacks[prefix] = True
                return True
            if self._tracebacks.pop(prefix):  # the exception's own line ends the traceback
                return True
        for pattern, plain in _BLOCK_HIDDEN:
            if pattern.search(text):
                self._blocks.add(b"" if plain else prefix)
                return True
        if any(p.search(text) for p in _TRACEBACK_HIDDEN):
            self._tracebacks[prefix] = False
            return False
        return any(p.search(text) for p in _NOISE)


# What the command writes into the pipe when it leaves the filter (after any output left without a newline): every
# line before it has been judged once the filter reads it, and the filter answers with the number of lines it hid.
_LEAVING = b"\x00moon-raylog-leaving\x00"


def hidden_note(hidden: int) -> str:
    lines = "1 line" if hidden == 1 else f"{hidden} lines"
    return f"({lines} of Ray's own messages hidden; -v shows them)"


class StderrFilter:
    """Route file descriptor 2 through a pipe to a filter process that forwards what is not noise to the real
    stderr.

    A process, not a thread: when Ray's core ends the command at once (`_exit` after losing the cluster's control
    store), the lines it wrote last, which say why, are still in the pipe, and the filter forwards them, then says
    how many lines it hid. Complete lines are checked against NOISE; output without a newline (a progress bar's
    carriage-return updates) is forwarded once nothing more arrived for `idle` seconds, so bars stay live.
    `terminal` is a text stream on the real stderr, for output that must not wait for a newline (moon train's
    progress bar)."""

    def __init__(self, idle: float = 0.05, resume: str = ""):
        self.idle = idle
        self.resume = resume
        self.hidden = 0
        self._saved = -1
        self._report = -1
        self._child: subprocess.Popen | None = None
        self.terminal: IO[str] = sys.stderr

    def __enter__(self) -> "StderrFilter":
        sys.stderr.flush()
        self._saved = os.dup(2)
        read, write = os.pipe()
        self._report, report = os.pipe()
        try:  # the filter is this file run as a script: it imports the standard library only, and starts in ms
            self._child = subprocess.Popen(
                [sys.executable, "-I", "-S", os.path.abspath(__file__), str(self.idle), str(report), self.resume],
                stdin=read, stdout=self._saved, stderr=subprocess.DEVNULL, pass_fds=(report,))
        except BaseException:
            for fd in (read, write, report, self._report, self._saved):
                os.close(fd)
            raise
        os.close(read)
        os.close(report)
        os.dup2(write, 2)
        os.close(write)
        self.terminal = os.fdopen(os.dup(self._saved), "w", buffering=1)
        return self

    def __exit__(self, *exc) -> None:
        sys.stderr.flush()
        try:
            os.write(2, _LEAVING + b"\n")
        except OSError:
            pass
        os.dup2(self._saved, 2)
        # Processes started meanwhile may still hold the pipe, so there may be no end of file: the filter answers
        # once it has forwarded what came before the mark, and stays to forward their later output.
        ready, _, _ = select.select([self._report], [], [], 5.0)
        answer = os.read(self._report, 64) if ready else b""
        os.close(self._report)
        self.hidden = int(answer) if answer.strip().isdigit() else 0
        self.terminal.flush()
        os.close(self._saved)  # fd 2 is the terminal again; the filter process keeps its own copy
        self._saved = -1

    def isatty(self) -> bool:
        return self._saved >= 0 and os.isatty(self._saved)


def _filter_main(idle: float, report: int, resume: str = "") -> None:
    """The filter process: stdin -> LineFilter -> stdout (the command's real stderr). When the command ends without
    leaving the filter (Ray's core ended it at once), the filter says so last, with `resume`: how to go on."""
    lines = LineFilter()
    hidden = 0
    pending = b""
    answered = False

    def write(data: bytes) -> None:
        try:
            os.write(1, data)
        except OSError:  # the terminal went away; nothing left to show
            pass

    while True:
        ready, _, _ = select.select([0], [], [], idle)
        if not ready:
            if pending:  # no newline for a while: a progress bar, or a prompt; show it as it is
                write(pending)
                pending = b""
            continue
        chunk = os.read(0, 65536)
        if not chunk:
            break
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            if line.endswith(_LEAVING):
                write(line[:-len(_LEAVING)])  # what was left without a newline, as it is
                try:
                    os.write(report, f"{hidden}\n".encode())
                    os.close(report)
                except OSError:  # the command stopped waiting for the answer: go on forwarding
                    pass
                answered = True
            elif lines.hides(line):
                hidden += 1
            else:
                write(line + b"\n")
    if pending:
        write(pending)
    if not answered:  # the command ended without leaving the filter (Ray's core ended it at once)
        note = hidden_note(hidden) + "\n" if hidden else ""
        write((note + "error: the command ended before it finished (the lines above may say why)"
               + (f"; {resume}" if resume else "") + "\n").encode())


@contextlib.contextmanager
def quiet_ray(verbose: bool = False, resume: str = "") -> Iterator[StderrFilter | None]:
    """Filter Ray's noise from stderr for the duration (nothing when `verbose`). On leaving, says in one line
    how many lines it hid, so that a user knows where to look (-v). `resume`: what to do when the command is ended
    at once (by Ray's core), said after its last lines."""
    filtered = StderrFilter(resume=resume)
    try:
        if not verbose:
            filtered.__enter__()
    except OSError:  # no file descriptor 2 to filter (a daemon without stderr), no process to start: hide nothing
        verbose = True
    if verbose:
        yield None
        return
    try:
        yield filtered
    finally:
        filtered.__exit__(None, None, None)
        if filtered.hidden:  # also when the command failed: its error may be what -v shows more of
            print(hidden_note(filtered.hidden), file=sys.stderr)


if __name__ == "__main__":
    _filter_main(float(sys.argv[1]), int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "")
