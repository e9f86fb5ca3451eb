"""The bodies of the moon DAGs' tasks: read the trigger form, plan batches, build job commands, check a run.

The DAG files only wire these together; everything here is plain Python (no Airflow, no Ray), so the same
logic is tested without a scheduler. Planning needs only the core package (pyarrow, no torch): it runs in an
Airflow worker. XCom values built here are small: URIs, ids and counts, never rows.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import posixpath
import re
import shlex
import urllib.parse
from pathlib import Path
from typing import Any, Iterator, Sequence

from augment.core.names import BATCHES_PER_GPU, DEFAULT_MAX_TASKS  # noqa: F401  (the DAG's form reads it here)

log = logging.getLogger(__name__)

# How a Ray job runs the moon CLI on the cluster. `python -m` works both where the package is installed and
# where it is on PYTHONPATH (a checkout on a local head); the cluster's image must provide it.
MOON_COMMAND = ("python", "-m", "augment.cli")
RUN_ID_PLACEHOLDER = "{run_id}"
LISTED_SHARDS = 20  # shard ids an error message lists before "and N more"
REPORT_URL_ENV = "MOON_REPORT_URL"  # where s3:// run reports are served over HTTP (report_url)
# Where default run folders go (the form's output_uri) and how many Ray jobs of one run are in flight at most:
# read from the Airflow environment when the DAG file is parsed (runs_root, jobs_per_run).
RUNS_ROOT_ENV, DEFAULT_RUNS_ROOT = "MOON_RUNS_ROOT", "/tmp/moon-runs"
JOBS_PER_RUN_ENV, DEFAULT_JOBS_PER_RUN = "MOON_JOBS_PER_RUN", 8
# What the moon DAGs' Ray job drivers reserve, which also places them (driver_resources); read like the two above.
DRIVER_RESOURCES_ENV = "MOON_JOB_DRIVER_RESOURCES"
# Where moon_train's checkpoints of an s3:// run go by default: `moon train --output` is a local path on the cluster.
CHECKPOINTS_ROOT_ENV, DEFAULT_CHECKPOINTS_ROOT = "MOON_CHECKPOINTS_ROOT", "/tmp/moon-checkpoints"
# The model config moon_train trains when its form leaves *Model config* empty, as every Asset-triggered run does:
# read from the Airflow workers' environment when pick_run runs (train_config).
TRAIN_CONFIG_ENV, DEFAULT_TRAIN_CONFIG = "MOON_TRAIN_CONFIG", "tiny"
# The form's env_vars that say where S3 is (augment.core.storage reads them): applied to the Airflow tasks that read
# or write the run (plan, validate, publish) as well as to the Ray jobs, so that both reach the same store.
S3_SETTINGS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION")
# Job environment names the form refuses: they choose which code the job runs (the dynamic loader, the interpreter's
# path and start-up, the shell that starts the entrypoint), which a trigger form must not.
CODE_CHOOSING_PREFIXES = ("LD_", "DYLD_", "PYTHON")
CODE_CHOOSING_NAMES = ("PATH", "BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "PS4", "IFS", "CDPATH")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class RunRequestError(ValueError):
    """The trigger form's values cannot start a run. The message names the field."""


class RunIncomplete(RuntimeError):
    """The manifest lacks shards of the plan, or a shard breaks rows in = rows out + rows quarantined."""


class RunEmpty(RuntimeError):
    """Every row of the run was quarantined: there is nothing to publish or to train on. Retrying cannot help."""


@dataclasses.dataclass
class RunRequest:
    """The moon_augment trigger form (DAG params), checked."""

    input_uri: str
    output_uri: str
    profile: str | None = None
    config_file: str | None = None
    stages: list[str] = dataclasses.field(default_factory=list)
    shards_per_task: int | None = None  # None: sized from the plan (max_tasks, gpus)
    max_tasks: int = DEFAULT_MAX_TASKS
    gpus: int | None = None
    ray_conn_id: str = "ray_default"
    limit: int | None = None
    env_vars: dict[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_params(cls, params: dict[str, Any], dag_run_id: str = "") -> "RunRequest":
        input_uri, output_uri = _text(params, "input_uri"), _text(params, "output_uri")
        if not input_uri:
            raise RunRequestError("input_uri: give the catalogue to process (a file or folder, local or s3://)")
        if not output_uri:
            raise RunRequestError("output_uri: give the run folder to write (local or s3://)")
        if RUN_ID_PLACEHOLDER in output_uri:
            output_uri = output_uri.replace(RUN_ID_PLACEHOLDER, _run_folder_name(dag_run_id))
        _check_location("input_uri", input_uri)
        _check_location("output_uri", output_uri)
        _check_output_folder(output_uri, input_uri)
        config_file = _config_file(params.get("config_file"))
        shards_per_task = _optional_int(params, "shards_per_task")
        max_tasks = _optional_int(params, "max_tasks")
        gpus = _optional_int(params, "gpus")
        limit = _optional_int(params, "limit", empty="every row")
        env_vars = job_environment(params)
        return cls(
            input_uri=input_uri,
            output_uri=output_uri,
            profile=_text(params, "profile") or None,
            config_file=config_file,
            stages=_stage_names(params.get("stages")),
            shards_per_task=shards_per_task,
            max_tasks=DEFAULT_MAX_TASKS if max_tasks is None else max_tasks,
            gpus=gpus,
            ray_conn_id=_text(params, "ray_conn_id") or "ray_default",
            limit=limit,
            env_vars=env_vars,
        )

    def with_file_profile(self) -> "RunRequest":
        """The request with the form's profile given up when the config file names its own (`extends:`): the form
        says the file overrides the profile, and `moon run` refuses a file's `extends:` beside another `--profile`.
        A config file that cannot be read is refused here, naming the config_file field (`config()` names `config`
        for what the file says)."""
        if not self.config_file:
            return self
        from augment.core.config import ConfigError, read_mapping

        try:
            extends = read_mapping(self.config_file).get("extends")
        except ConfigError as exc:
            raise RunRequestError(f"config_file: {exc}") from None
        return dataclasses.replace(self, profile=None) if extends and self.profile else self

    def config(self):
        """The run config exactly as `moon run` will build it from the same options (the same config hash)."""
        from augment import config as C

        try:
            return C.load_for_run(self.config_file, self.profile, stages=",".join(self.stages) or None,
                                  progress=False)
        except C.ConfigError as exc:
            raise RunRequestError(f"config: {exc}") from exc

    def max_batches(self, max_map_length: int | None = None) -> int:
        """The most batches (mapped tasks) this run may have: `max_tasks`, within Airflow's `max_map_length`,
        and `BATCHES_PER_GPU` per GPU when the cluster's GPU count is given."""
        cap = self.max_tasks if max_map_length is None else min(self.max_tasks, max_map_length)
        return min(cap, self.gpus * BATCHES_PER_GPU) if self.gpus else cap

    def moon_run(self, batch: int, shards_per_batch: int) -> str:
        """The shell command of one batch's Ray job: `moon run` on batch `batch` of the saved plan, cut into
        batches of `shards_per_batch` shards. The job reads only that batch's entries of the plan."""
        args = [*MOON_COMMAND, "run", "--input", self.input_uri, "--output", self.output_uri]
        if self.config_file:
            args += ["--config", self.config_file]
        if self.profile:
            args += ["--profile", self.profile]
        if self.stages:
            args += ["--stages", ",".join(self.stages)]
        if self.limit is not None:
            args += ["--limit", str(self.limit)]
        args += ["--batch", str(batch), "--shards-per-batch", str(shards_per_batch), "--no-progress"]
        return shlex.join(args)

    def runtime_env(self) -> dict[str, Any]:
        return {"env_vars": dict(self.env_vars)} if self.env_vars else {}


def _optional_int(params: dict[str, Any], name: str, empty: str = "the default") -> int | None:
    """The form's whole number `name`, at least 1; None when it is left empty (`empty` says what that means)."""
    value = params.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    number = _whole_number(value)
    if number is None:
        raise RunRequestError(f"{name}: must be a whole number, got {value!r}")
    if number < 1:
        raise RunRequestError(f"{name}: must be at least 1 (or empty for {empty})")
    return number


def _whole_number(value: Any) -> int | None:
    """`value` as an int when it is one: an int, a float with no fraction (JSON's 4.0), or text of ASCII digits;
    None for anything else (True, 2.7, inf, "2.5", "\uff12"), which int() would round, crash on or read."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text[:1] in "+-" else text
        return int(text) if digits.isascii() and digits.isdigit() else None
    return None


def _stage_names(value: Any) -> list[str]:
    """The form's stages: a list of names or one comma-separated text; [] (the profile's stages) when empty."""
    if value is None:
        return []
    names = value.split(",") if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise RunRequestError(f"stages: must be a list of stage names, got {str(value)[:80]!r}")
    return [name.strip() for name in names if name.strip()]


def _check_location(field: str, uri: str) -> None:
    """A local path must be absolute (Ray jobs and Airflow workers each run in their own working directory), an
    s3:// URI must name a bucket."""
    from augment.core import storage

    if storage.is_s3(uri):
        try:
            storage.split_s3(uri)
        except ValueError:
            raise RunRequestError(f"{field}: {uri!r} names no bucket: give s3://bucket/key") from None
    elif not uri.startswith("/"):
        raise RunRequestError(f"{field}: {uri!r} must be absolute or s3://: Ray jobs run in their own working "
                              "directory")


def _text(params: dict[str, Any], name: str) -> str:
    """A text field of the form, stripped ("" when empty); a RunRequestError for a value of another type (a trigger
    whose conf skipped the form's schema)."""
    value = params.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RunRequestError(f"{name}: must be text, got {type(value).__name__} {str(value)[:80]!r}")
    return value.strip()


def _check_output_folder(output_uri: str, input_uri: str) -> None:
    """A local run folder is a folder: neither an existing file nor anything under one; and no run folder holds
    the input (its files are never read as input: no later run could read it)."""
    from augment.core import storage

    where = storage.not_a_folder(output_uri)
    if where is not None:
        raise RunRequestError(f"output_uri: {output_uri} {where}; give a folder (new or existing)")
    if storage.holds(output_uri, input_uri):
        raise RunRequestError(f"output_uri: {output_uri} holds the input ({input_uri}); a run folder's files are "
                              "never read as input: choose another folder")


def _config_file(value: Any) -> str | None:
    """The form's config file: None when empty, else the absolute path or s3:// URI of a YAML file."""
    text = "" if value is None else str(value).strip()
    if not text:
        return None
    if "\n" in text:
        raise RunRequestError("config_file: give the path or s3:// URI of a YAML file, not the YAML text itself")
    _check_location("config_file", text)
    return text


# The run ids Airflow makes itself: a kind and an ISO timestamp. Their `:` and `+` stand at fixed places, so
# turning them into `-` keeps two such ids apart, and their folder names readable.
AIRFLOW_RUN_ID = re.compile(r"[a-z_]+__\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(\+\d\d:\d\d|Z)?")


def safe_name(text: str) -> str:
    """A run id as a folder name: kept as it is when it is one (`scheduled__nightly`); the ids Airflow makes
    (`manual__2026-01-01T00:00:00+00:00`) get `-` for each `:` and `+` (`manual__2026-01-01T00-00-00-00-00`);
    in any other id, the characters a folder name cannot hold become `-` and a short hash of the id is appended,
    so that two ids never share a folder: `nightly:1` and `nightly+1` get two, neither of them `nightly-1`'s."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "run"
    if name != text and not AIRFLOW_RUN_ID.fullmatch(text):
        name += "-" + hashlib.sha256(text.encode()).hexdigest()[:8]
    if name in (".", ".."):
        raise RunRequestError(f"the DAG run id {text!r} cannot name a run folder: trigger the run with another id")
    return name


def _run_folder_name(dag_run_id: str) -> str:
    """`safe_name`, with its refusal naming the form field where the run id goes."""
    try:
        return safe_name(dag_run_id)
    except RunRequestError as exc:
        raise RunRequestError(f"output_uri: {exc}") from None


def plan(request: RunRequest, max_map_length: int | None = None) -> dict[str, Any]:
    """Plan the run once (initialising its folder and saving the plan there), and map one job per batch of the
    saved plan that still has pending shards.

    Batches are sized from the plan: `shards_per_task` when given and it makes at most `request.max_batches()`
    batches, else the fewest shards per batch that do. What the task passes on stays small whatever the size of
    the run: the run's URI, id, shard and batch counts, and under `jobs` one entry per mapped task (its command
    names its batch number, not its shards).

    The jobs name the input as the saved plan does (`Plan.input_uri`): a run resumed with its input spelled
    another way (`/cat` for `/cat/`) is the same run, and its jobs must not be refused the plan. Every mistake of
    the form is a RunRequestError naming its field, in the form's words.
    """
    with s3_settings(request.env_vars):
        request = request.with_file_profile()
        config = request.config()
        the_plan = _plan_run(request, config, max_map_length)
    if the_plan.input_uri != request.input_uri:
        log.info("input %s: resuming the run planned for %s, whose name the jobs use", request.input_uri,
                 the_plan.input_uri)
        request = dataclasses.replace(request, input_uri=the_plan.input_uri)
    size = the_plan.shards_per_batch
    if request.shards_per_task and size != request.shards_per_task:
        log.warning("shards_per_task %d would make more than %d tasks: %d shards per task instead",
                    request.shards_per_task, request.max_batches(max_map_length), size)
    pending = sorted({i // size for i, s in enumerate(the_plan.shards) if s.shard_id not in the_plan.committed})
    jobs = [
        {
            "entrypoint": request.moon_run(batch, size),
            "runtime_env": request.runtime_env(),
            "job_metadata": {"moon_run_uri": request.output_uri, "moon_batch": str(batch),
                             "moon_shards_per_batch": str(size)},
        }
        for batch in pending
    ]
    log.info("run %s: %d rows in %d shards, %d committed; %d batches of %d shards, %d to run -> %s",
             the_plan.run_id, the_plan.rows_total, len(the_plan.shards), len(the_plan.committed), the_plan.batches,
             size, len(jobs), request.output_uri)
    return {
        "run_uri": request.output_uri,
        "run_id": the_plan.run_id,
        "config_hash": the_plan.config_hash,
        "shards": len(the_plan.shards),
        "batches": the_plan.batches,
        "shards_per_batch": size,
        "jobs": jobs,
    }


def _plan_run(request: RunRequest, config, max_map_length: int | None):
    """`plan.plan_run` of the request; what it refuses becomes a RunRequestError naming the form's field."""
    from augment import io, plan as P

    try:
        return P.plan_run(request.input_uri, request.output_uri, config, limit=request.limit,
                          shards_per_batch=request.shards_per_task, max_batches=request.max_batches(max_map_length))
    except P.RunMismatch as exc:
        raise RunRequestError(f"output_uri: {exc.words(FORM_FIELD_NAMES, FORM_REMEDIES)}") from None
    except io.InputError as exc:
        raise RunRequestError(f"input_uri: {_one_line(exc)}") from None
    except (OSError, ValueError) as exc:  # a folder that cannot be written or read, an S3 error
        raise RunRequestError(f"{_field_of(exc, request)}: {_one_line(exc)}") from None


# The trigger form's words for a planning refusal (plan.RunMismatch): the form has fields, not --output, --limit or
# --force. Every remedy of plan.REMEDIES has its wording here (a test checks).
FORM_FIELD_NAMES = {"config_hash": "config (profile, config_file or stages)", "inputs": "input", "limit": "limit",
                    "shard_size": "shard size", "schema_version": "schema version",
                    "option_files": "file named by the stage options (e.g. a lexicon)"}
FORM_REMEDIES = {
    "force": "delete that folder, or choose another output_uri, to start the run over",
    "resume": "resume with the same config and input, or choose another output_uri (or delete that folder) to start "
              "over",
    "planned_input": "use that input, or another output_uri for this one",
    "replan": "trigger the run with the plan's config and input, or choose another output_uri",
    "outside": "choose an output_uri outside it",
}


def _field_of(exc: BaseException, request: RunRequest) -> str:
    """The form field an error is about: the one whose location it names (the longest, when one is inside
    another), else `plan`."""
    text = f"{getattr(exc, 'filename', None) or ''} {exc}"
    named = [(len(uri), field) for field, uri in (("input_uri", request.input_uri),
                                                  ("output_uri", request.output_uri),
                                                  ("config_file", request.config_file))
             if uri and _names(text, uri)]
    return max(named)[1] if named else "plan"


def _names(text: str, uri: str) -> bool:
    """Whether an error's text names `uri` or a place under it: as written, or as S3 errors do ("... key
    'runs/r1/_run.json' in bucket 'shop': AWS Error ACCESS_DENIED ...")."""
    from augment.core import storage

    if uri.rstrip("/") in text:
        return True
    if not storage.is_s3(uri):
        return False
    bucket, key = storage.split_s3(uri)
    under = re.search(f"key '{re.escape(key.rstrip('/'))}['/]", text) if key.strip("/") else True
    return f"bucket '{bucket}'" in text and bool(under)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    filename = getattr(exc, "filename", None)
    return f"{filename}: {exc.strerror}" if filename and getattr(exc, "strerror", None) else text


@contextlib.contextmanager
def s3_settings(env_vars: dict[str, str] | None) -> Iterator[None]:
    """The form's S3 settings (S3_SETTINGS of its env_vars: the endpoint, the region) in this process's environment
    while the block runs, the environment as it was afterwards: the Airflow tasks then read and write the run
    where its Ray jobs do. Credentials never come from the form."""
    wanted = {k: v for k, v in (env_vars or {}).items() if k in S3_SETTINGS}
    before = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def check_run(run_uri: str, shard_ids: list[str] | None = None) -> dict[str, Any]:
    """Every planned shard (`shard_ids`, default: every shard of the saved plan) is committed, keeps rows in =
    out + quarantined, and has its data and quarantine files; returns their totals. Streams the manifest and
    lists the data and quarantine folders once each: its memory is a set of ids and file names, never the
    records. On S3 it first folds the batch jobs' commit records into `_manifest.jsonl` (manifest.consolidate),
    so that readers of the run find one file."""
    from augment import plan as P
    from augment.core import manifest, storage

    manifest.consolidate(run_uri)
    ordered = P.planned_shard_ids(run_uri) if shard_ids is None else list(shard_ids)
    planned = set(ordered)
    files = {folder: set(storage.list_names(storage.join(run_uri, folder), ".parquet"))
             for folder in (manifest.DATA_DIR, manifest.QUARANTINE_DIR)}
    seen: set[str] = set()
    broken: list[str] = []
    absent: list[str] = []

    def planned_records():
        for record in manifest.iter_records(run_uri):
            if record.shard_id not in planned:
                continue
            seen.add(record.shard_id)
            if record.rows_in != record.rows_out + record.rows_quarantined:
                broken.append(record.shard_id)
            for file, folder in ((record.data_file, manifest.DATA_DIR),
                                 (record.quarantine_file, manifest.QUARANTINE_DIR)):
                if file and (posixpath.dirname(file) != folder or posixpath.basename(file) not in files[folder]):
                    absent.append(file)
            yield record

    totals = manifest.totals(planned_records())
    missing = [s for s in ordered if s not in seen]  # in catalogue order
    if missing:
        raise RunIncomplete(f"{len(missing)} of {len(planned)} shards are not committed in {run_uri}: "
                            f"{_listed(missing)}")
    if broken:
        raise RunIncomplete(f"shards breaking rows in = rows out + rows quarantined: {_listed(broken)}")
    if absent:
        raise RunIncomplete(f"committed files missing from {run_uri}: {_listed(absent)}")
    if totals["rows_in"] and not totals["rows_out"]:
        raise RunEmpty(_empty_run(run_uri, totals))
    return {k: totals[k] for k in ("shards", "rows_in", "rows_out", "rows_quarantined", "bytes")} | {
        "quarantine_reasons": totals["quarantine_reasons"],
    }


def _empty_run(run_uri: str, totals: dict[str, Any]) -> str:
    """Why a run that quarantined every row is not published, with its most frequent quarantine reasons."""
    reasons = sorted(totals["quarantine_reasons"].items(), key=lambda kv: (-kv[1], kv[0]))
    top = ", ".join(f"{reason} {count}" for reason, count in reasons[:3]) or "none recorded"
    return (f"every row of {run_uri} was quarantined ({totals['rows_in']} rows in, 0 out; top reasons: {top}): "
            "nothing to publish or train on; see its quarantine/ files and the run report")


def _listed(items: list[str]) -> str:
    more = len(items) - LISTED_SHARDS
    return ", ".join(items[:LISTED_SHARDS]) + (f" and {more} more" if more > 0 else "")


def report_uri(run_uri: str) -> str:
    """Where the run's HTML report is written (by `moon run`, or in the DAG by the publish task)."""
    from augment.core import manifest, storage

    return storage.join(run_uri, manifest.REPORT_DIR, "index.html")


def report_url(run_uri: str) -> str:
    """A browser address for the report: file:// for local runs. For s3:// runs, the address where the bucket is
    served over HTTP when `MOON_REPORT_URL` gives one, else the object's page in the AWS S3 console (which shows the
    object, not the page with its thumbnails).

    `MOON_REPORT_URL` is either a base that serves buckets path-style (`http://127.0.0.1:9000`, as MinIO does: the
    link is `<base>/<bucket>/<key>`) or a template with `{bucket}` and `{key}`
    (`https://{bucket}.s3.eu-west-1.amazonaws.com/{key}`). The reader's browser must be allowed to read the report's
    objects: docker/compose.yaml gives anonymous read access to `runs/*/report/*` of its bucket and nothing else."""
    uri = report_uri(run_uri)
    if not uri.startswith("s3://"):
        return Path(uri).absolute().as_uri()
    bucket, _, key = uri[len("s3://"):].partition("/")
    served = os.environ.get(REPORT_URL_ENV, "").strip()
    if not served:
        return f"https://s3.console.aws.amazon.com/s3/object/{bucket}?prefix={key}"
    if "{key}" in served:
        return served.replace("{bucket}", bucket).replace("{key}", urllib.parse.quote(key))
    return f"{served.rstrip('/')}/{bucket}/{urllib.parse.quote(key)}"


def job_environment(params: dict[str, Any]) -> dict[str, str]:
    """The form's env_vars as the Ray job's environment, or RunRequestError naming a variable that is not a name,
    that chooses which code runs (CODE_CHOOSING_PREFIXES, CODE_CHOOSING_NAMES) or whose value is not text or a
    number."""
    env_vars = params.get("env_vars") or {}
    if not isinstance(env_vars, dict):
        raise RunRequestError("env_vars: must be an object of NAME: value")
    for name in map(str, env_vars):
        if not ENV_NAME.fullmatch(name):
            raise RunRequestError(f"env_vars: {name!r} is not a variable name (letters, digits, _)")
        if name in CODE_CHOOSING_NAMES or name.startswith(CODE_CHOOSING_PREFIXES):
            raise RunRequestError(f"env_vars: {name} chooses which code the job runs; set it in the cluster's "
                                  "image or runtime environment, not in a run's form")
    for name, value in env_vars.items():  # None, a list or an object would reach the job as its Python spelling
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) or "\0" in str(value):
            raise RunRequestError(f"env_vars: {name}'s value must be text or a number, got {str(value)[:80]!r}")
    return {str(k): str(v) for k, v in env_vars.items()}


def train_config(value: str | None, named: Sequence[str] = ()) -> str:
    """The form's model config: one of `named` (model.config.named_configs, which the DAG passes; not checked when
    empty), or a JSON/YAML file the cluster reads, by its absolute path. An empty form takes $MOON_TRAIN_CONFIG from
    the Airflow workers' environment, else tiny. RunRequestError names the field, or the variable."""
    field = "train_config"
    config = (value or "").strip()
    if not config:
        config = os.environ.get(TRAIN_CONFIG_ENV, "").strip()
        field = f"{TRAIN_CONFIG_ENV} (in Airflow's environment)" if config else field
    config = config or DEFAULT_TRAIN_CONFIG
    if "/" in config or Path(config).suffix:
        if not config.startswith("/"):
            raise RunRequestError(f"{field}: {config!r} must be an absolute path on the Ray cluster, or a "
                                  "named config")
    elif named and config not in named:
        raise RunRequestError(f"{field}: no config named {config!r} (named: {', '.join(named)}); or give the "
                              "absolute path of a JSON/YAML file on the Ray cluster")
    return config


def train_request(run_uri: str, params: dict[str, Any], dag_run_id: str,
                  named_configs: Sequence[str] = ()) -> dict[str, Any]:
    """Command and metadata of the training job on a finished run; checkpoints go to `checkpoint_folder`, one per
    DAG run; the config is checked by `train_config`. With `--resume` the first try starts from nothing and a
    retry, or the task cleared after a lost cluster, continues from the last epoch that try's folder holds
    (trained with the same config, or refused)."""
    output = checkpoint_folder(run_uri, params.get("checkpoint_uri"), dag_run_id)
    config = train_config(params.get("train_config"), named_configs)
    args = [*MOON_COMMAND, "train", "--data", run_uri, "--config", config, "--resume", "--output", output]
    if params.get("gpu"):
        args.append("--gpu")
    env_vars = job_environment(params)
    return {
        "entrypoint": shlex.join(args),
        "runtime_env": {"env_vars": env_vars} if env_vars else {},
        "job_metadata": {"moon_run_uri": run_uri, "moon_checkpoint_uri": output},
        "checkpoint_uri": output,
    }


def checkpoint_folder(run_uri: str, checkpoint_uri: str | None, dag_run_id: str) -> str:
    """Where `moon train` writes this DAG run's checkpoints: always an absolute local path on the cluster, since
    `moon train --output` writes no s3:// URI, and always one of its own, since it refuses a folder that holds
    checkpoints already.

    - `checkpoint_uri` given: absolute, its `{run_id}` replaced by the run id; without `{run_id}`, the run id is
      appended as a subfolder (a second run into one fixed folder would fail).
    - not given, a local run: `<run>/checkpoints/<run id>`.
    - not given, an s3:// run: `$MOON_CHECKPOINTS_ROOT/<run folder's name>/<run id>`, default root
      /tmp/moon-checkpoints."""
    run_id = safe_name(dag_run_id)
    text = (checkpoint_uri or "").strip()
    if text:
        if text.startswith("s3://") or not text.startswith("/"):
            raise RunRequestError(f"checkpoint_uri: {text!r} must be an absolute path on the Ray cluster (moon train "
                                  "writes no s3:// URI); empty for the default")
        if RUN_ID_PLACEHOLDER not in text:
            return f"{text.rstrip('/')}/{run_id}"
        return text.replace(RUN_ID_PLACEHOLDER, run_id)
    if not run_uri.startswith("s3://"):
        return f"{run_uri.rstrip('/')}/checkpoints/{run_id}"
    root = os.environ.get(CHECKPOINTS_ROOT_ENV, "").strip() or DEFAULT_CHECKPOINTS_ROOT
    if not root.startswith("/"):
        raise RunRequestError(f"{CHECKPOINTS_ROOT_ENV}: {root!r} in Airflow's environment must be an absolute path "
                              "on the Ray cluster")
    return f"{root.rstrip('/')}/{posixpath.basename(run_uri.rstrip('/'))}/{run_id}"


def runs_root(value: str | None) -> str:
    """The root of the form's default run folder, from `MOON_RUNS_ROOT`: empty or unset is /tmp/moon-runs. Anything
    but an absolute path or an s3://bucket URI is refused (a ValueError, so the DAG fails to import and says why):
    a relative root would make every default run fail the form's own check, or land where no Ray job finds it."""
    text = (value or "").strip()
    if not text:
        return DEFAULT_RUNS_ROOT
    try:
        _check_location(RUNS_ROOT_ENV, text)
    except RunRequestError as exc:
        raise ValueError(f"{exc} (or leave it unset for {DEFAULT_RUNS_ROOT})") from None
    return text.rstrip("/") or "/"


def jobs_per_run(value: str | None) -> int:
    """Ray jobs in flight per DAG run at most, from `MOON_JOBS_PER_RUN`: a whole number, at least 1. Not a number
    gives the default, 0 or less gives 1, each with a warning: a typo must not hide the DAG (an import error)
    nor leave its batches never queued (no slot at all)."""
    text = (value or "").strip()
    if not text:
        return DEFAULT_JOBS_PER_RUN
    try:
        number = int(text)
    except ValueError:
        log.warning("%s=%r is not a whole number: %d jobs per run", JOBS_PER_RUN_ENV, text, DEFAULT_JOBS_PER_RUN)
        return DEFAULT_JOBS_PER_RUN
    if number < 1:
        log.warning("%s=%d is under 1: 1 job per run", JOBS_PER_RUN_ENV, number)
        return 1
    return number


def driver_resources(value: str | None) -> dict[str, Any]:
    """What each Ray job's driver reserves, from `MOON_JOB_DRIVER_RESOURCES`: a JSON object of Ray resources and
    amounts, e.g. `{"CPU": 1, "moon_driver": 1}`, as RayJobOperator's arguments (`CPU`, `GPU`, `memory` in bytes,
    any other name a custom resource). Ray starts the driver on a node that has them free; with none (empty, the
    default) it runs every driver on the head node. A value that is not such an object gives the default, with a
    warning: a typo must not hide the DAG (an import error)."""
    text = (value or "").strip()
    if not text:
        return {}
    try:
        wanted = json.loads(text)
        if not isinstance(wanted, dict) or not wanted:
            raise ValueError("not a JSON object of resource names and amounts")
        for name, amount in wanted.items():
            if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not amount > 0:
                raise ValueError(f"{name}: {amount!r} is not an amount above 0")
    except ValueError as exc:
        log.warning("%s=%r: %s; job drivers run on the head node", DRIVER_RESOURCES_ENV, text, exc)
        return {}
    special = {"CPU": "entrypoint_num_cpus", "GPU": "entrypoint_num_gpus", "memory": "entrypoint_memory"}
    kwargs: dict[str, Any] = {special[k]: (int(v) if k == "memory" else float(v))
                              for k, v in wanted.items() if k in special}
    custom = {str(k): float(v) for k, v in wanted.items() if k not in special}
    if custom:
        kwargs["entrypoint_resources"] = custom
    return kwargs


def log_failed_batch(context: dict[str, Any]) -> None:
    """on_failure_callback of a batch task: say which batch failed (number, run folder, command), so ops can find and
    rerun it."""
    task = context.get("task")
    ti = context.get("ti") or context.get("task_instance")
    metadata = getattr(task, "job_metadata", None) or {}
    batch, size, run_uri = (metadata.get(k, "?") for k in ("moon_batch", "moon_shards_per_batch", "moon_run_uri"))
    log.error(
        "moon batch failed: dag %s run %s task %s map index %s try %s; batch %s (%s shards per batch); "
        "run folder: %s; its command: %s",
        getattr(ti, "dag_id", "?"), getattr(ti, "run_id", "?"), getattr(ti, "task_id", "?"),
        getattr(ti, "map_index", "?"), getattr(ti, "try_number", "?"), batch, size, run_uri,
        getattr(task, "entrypoint", None) or "?",
    )
