"""docker/: every Dockerfile passes hadolint, and the compose file and KubeRay manifests refer to things that exist.

No Docker engine here: the checks read the files. They hold the images to the project (build contexts,
Dockerfiles, COPY sources, image names and versions, pins against setup.cfg, extras), the commands to the CLIs
they call (moon, airflow, ray start, python -m), and the ports to each other (Ray head, Jobs API, Airflow
connection).
"""
from __future__ import annotations

import configparser
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
DOCKERFILES = sorted(DOCKER.glob("*/Dockerfile"))
COMPOSE = DOCKER / "compose.yaml"
MANIFESTS = sorted((DOCKER / "kuberay").glob("*.yaml"))
SETUP = configparser.ConfigParser()
SETUP.read(ROOT / "setup.cfg")
VERSION = SETUP["metadata"]["version"]
GPU_ONLY = ("torch", "diffusers", "vllm", "transformers", "accelerate")


def requirements(extras: list[str] | None = None) -> dict[str, SpecifierSet]:
    """Package -> version specifier from setup.cfg's install_requires and the given extras (all when None)."""
    sections = SETUP["options.extras_require"]
    lines = SETUP["options"]["install_requires"].splitlines()
    for extra in (sections if extras is None else extras):
        lines += sections[extra].splitlines()
    out: dict[str, SpecifierSet] = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            out[req.name.lower()] = out.get(req.name.lower(), SpecifierSet()) & req.specifier
    return out


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def pip_installs(dockerfile: Path) -> list[str]:
    """The arguments of every `pip install` in RUN instructions, options removed, ARG defaults substituted."""
    args, build_args = [], {}
    for op, rest in instructions(dockerfile):
        if op == "ARG" and "=" in rest:
            name, _, default = rest.partition("=")
            build_args[name.strip()] = default.strip().strip('"')
        if op != "RUN":
            continue
        rest = re.sub(r"\$\{?(\w+)\}?", lambda m: build_args.get(m.group(1), m.group(0)), rest)
        for command in re.split(r"&&|;", rest):
            words = shlex.split(command)
            if words[:2] == ["pip", "install"]:
                args += [w for w in words[2:] if not w.startswith("-")]
    return args


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def manifests() -> list[dict]:
    return [yaml.safe_load(p.read_text()) for p in MANIFESTS]


def built_images(compose: dict) -> dict[str, Path]:
    """Image name -> Dockerfile of every service compose builds."""
    out = {}
    for service in compose["services"].values():
        if "build" in service:
            context = (COMPOSE.parent / service["build"]["context"]).resolve()
            out[service["image"]] = context / service["build"]["dockerfile"]
    return out


# ---------------------------------------------------------------------------------------------------------------
# Dockerfiles
# ---------------------------------------------------------------------------------------------------------------
def test_every_runtime_has_its_dockerfile():
    assert {p.parent.name for p in DOCKERFILES} >= {"airflow", "ray-worker-cuda", "vllm"}


@pytest.mark.slow  # a child process
@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerfile_passes_hadolint(dockerfile):
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    done = subprocess.run([hadolint, "--config", str(DOCKER / "hadolint.yaml"), str(dockerfile)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_base_images_are_pinned(dockerfile):
    for op, rest in instructions(dockerfile):
        if op == "FROM":
            image = rest.split()[0]
            assert ":" in image and not image.endswith(":latest"), image


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_pinned_packages_match_setup_cfg(dockerfile):
    wanted = requirements()
    for arg in pip_installs(dockerfile):
        if "==" in arg and not arg.startswith(("/", ".")):
            req = Requirement(arg)
            if req.name.lower() in wanted:
                version = str(req.specifier).removeprefix("==")
                assert version in wanted[req.name.lower()], f"{arg} does not satisfy setup.cfg {wanted[req.name.lower()]}"


def test_images_pin_the_same_vllm_and_torch():
    pins: dict[str, set[str]] = {}
    for dockerfile in DOCKERFILES:
        for arg in pip_installs(dockerfile):
            if "==" in arg and not arg.startswith(("/", ".")):
                req = Requirement(arg)
                pins.setdefault(req.name.lower(), set()).add(str(req.specifier))
    assert len(pins["vllm"]) == 1 and len(pins.get("torch", {""})) == 1, pins


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_project_installs_name_existing_extras(dockerfile):
    extras = set(SETUP["options.extras_require"])
    for arg in pip_installs(dockerfile):
        match = re.fullmatch(r"/opt/moon\[([a-z0-9_,]+)\]", arg)
        if match:
            assert set(match.group(1).split(",")) <= extras, arg


def test_airflow_image_installs_no_torch():
    dockerfile = DOCKER / "airflow" / "Dockerfile"
    args = pip_installs(dockerfile)
    extras = [e for a in args if (m := re.fullmatch(r"/opt/moon\[([a-z0-9_,]+)\]", a)) for e in m.group(1).split(",")]
    assert extras, "the airflow image installs the project"
    assert not set(requirements(extras)) & set(GPU_ONLY)
    assert not [a for a in args if not a.startswith(("/", ".")) and Requirement(a).name in GPU_ONLY]


def test_airflow_base_image_matches_the_airflow_pin():
    base = next(rest for op, rest in instructions(DOCKER / "airflow" / "Dockerfile") if op == "FROM")
    version = re.match(r"apache/airflow:([0-9.]+)", base).group(1)
    assert version in requirements(["airflow"])["apache-airflow"]


def test_paths_the_images_point_into_exist_in_the_project():
    """ENV values under /opt/moon (where the Dockerfiles copy the repository) name files of the repository."""
    for dockerfile in DOCKERFILES:
        for op, rest in instructions(dockerfile):
            if op == "ENV":
                for path in re.findall(r"/opt/moon/[\w./-]+", rest):
                    assert (ROOT / path.removeprefix("/opt/moon/")).exists(), f"{dockerfile}: {path}"


# ---------------------------------------------------------------------------------------------------------------
# compose
# ---------------------------------------------------------------------------------------------------------------
def test_compose_builds_each_image_from_an_existing_dockerfile(compose):
    images = built_images(compose)
    assert images, "compose builds the project's images"
    for image, dockerfile in images.items():
        assert dockerfile.is_file(), f"{image}: {dockerfile} does not exist"
        assert image == f"moon-augment/{dockerfile.parent.name}:{VERSION}"


def test_copy_sources_exist_in_the_build_context(compose):
    for service in compose["services"].values():
        if "build" not in service:
            continue
        context = (COMPOSE.parent / service["build"]["context"]).resolve()
        for op, rest in instructions(context / service["build"]["dockerfile"]):
            if op in ("COPY", "ADD"):
                sources = [w for w in shlex.split(rest) if not w.startswith("--")][:-1]
                for source in sources:
                    assert (context / source).exists(), f"{op} {source} (context {context})"


def test_external_images_are_pinned(compose):
    for name, service in compose["services"].items():
        if "build" not in service:
            image = service["image"]
            assert ":" in image and not image.endswith(":latest"), f"{name}: {image}"


def test_compose_has_the_local_stack(compose):
    services = compose["services"]
    assert {"airflow-apiserver", "airflow-scheduler", "airflow-triggerer", "ray-head", "ray-gpu-worker", "minio",
            "vllm"} <= set(services)
    for name in ("ray-gpu-worker", "vllm"):
        devices = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["capabilities"] == ["gpu"], name


def test_airflow_commands_exist(compose):
    cli_parser = pytest.importorskip("airflow.cli.cli_parser")
    parser = cli_parser.get_parser()
    for name, service in compose["services"].items():
        if not service.get("image", "").startswith("moon-augment/airflow"):
            continue
        command = service["command"]
        if command[:2] == ["bash", "-c"]:
            for part in command[2].split("&&"):
                words = shlex.split(part)
                if words and words[0] == "airflow":
                    parser.parse_args(words[1:])
                elif words and words[0] == "python":
                    assert words[1] == "-c", part
                    compile(words[2], name, "exec")
        else:
            parser.parse_args(command)


def test_the_gpu_pool_counts_deferred_tasks(compose):
    """The batch tasks wait on their Ray jobs deferred: a pool that does not count them lets every batch start."""
    from augment.orchestrate import GPU_POOL

    sets = [shlex.split(part) for service in compose["services"].values()
            if service.get("command", [])[:2] == ["bash", "-c"] for part in service["command"][2].split("&&")]
    pools = [words for words in sets if words[:4] == ["airflow", "pools", "set", GPU_POOL]]
    assert pools and all("--include-deferred" in words for words in pools)


LOOPBACK = "${MOON_BIND_ADDRESS:-127.0.0.1}"  # published ports: loopback unless MOON_BIND_ADDRESS says otherwise


def test_ray_commands_and_ports_agree(compose):
    services = compose["services"]
    head = services["ray-head"]["command"]
    worker = services["ray-gpu-worker"]["command"]
    assert head[:3] == ["ray", "start", "--head"] and worker[:2] == ["ray", "start"]
    options = dict(a.removeprefix("--").split("=", 1) for a in head if a.startswith("--") and "=" in a)
    worker_options = dict(a.removeprefix("--").split("=", 1) for a in worker if a.startswith("--") and "=" in a)
    assert worker_options["address"] == f"ray-head:{options['port']}"
    published = f"{LOOPBACK}:{options['dashboard-port']}:{options['dashboard-port']}"
    assert published in services["ray-head"]["ports"]
    connection = json.loads(services["airflow-apiserver"]["environment"]["AIRFLOW_CONN_RAY_DEFAULT"])
    assert (connection["host"], str(connection["port"])) == ("ray-head", options["dashboard-port"])


def test_services_reach_minio_at_its_published_port(compose):
    services = compose["services"]
    assert f"{LOOPBACK}:9000:9000" in services["minio"]["ports"]
    for name in ("airflow-scheduler", "ray-head", "ray-gpu-worker"):
        assert services[name]["environment"]["AWS_ENDPOINT_URL"] == "http://minio:9000", name


# ---------------------------------------------------------------------------------------------------------------
# KubeRay
# ---------------------------------------------------------------------------------------------------------------
def cluster_specs(manifests: list[dict]) -> list[dict]:
    return [m["spec"] if m["kind"] == "RayCluster" else m["spec"]["rayClusterSpec"] for m in manifests]


def containers(spec: dict) -> list[dict]:
    groups = [spec["headGroupSpec"]] + spec["workerGroupSpecs"]
    return [c for g in groups for c in g["template"]["spec"]["containers"]]


def test_manifests_are_a_raycluster_and_a_rayjob(manifests):
    assert sorted(m["kind"] for m in manifests) == ["RayCluster", "RayJob"]
    assert all(m["apiVersion"] == "ray.io/v1" for m in manifests)


def test_manifests_run_the_ray_version_of_setup_cfg(manifests):
    for spec in cluster_specs(manifests):
        assert spec["rayVersion"] in requirements(["ray"])["ray"]


def test_manifests_use_the_images_compose_builds(manifests, compose):
    images = built_images(compose)
    for spec in cluster_specs(manifests):
        for container in containers(spec):
            assert container["image"] in images and "ray-worker-cuda" in container["image"]


def test_gpu_workers_ask_for_gpus_and_the_head_for_none(manifests):
    for spec in cluster_specs(manifests):
        assert spec["headGroupSpec"]["rayStartParams"]["num-gpus"] == "0"
        for group in spec["workerGroupSpecs"]:
            for container in group["template"]["spec"]["containers"]:
                assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_head_ports_are_rays_defaults_that_compose_and_airflow_use(manifests, compose):
    head_options = dict(a.removeprefix("--").split("=", 1) for a in compose["services"]["ray-head"]["command"]
                        if a.startswith("--") and "=" in a)
    for spec in cluster_specs(manifests):
        ports = {p["name"]: p["containerPort"] for p in spec["headGroupSpec"]["template"]["spec"]["containers"][0]["ports"]}
        assert (str(ports["gcs"]), str(ports["dashboard"])) == (head_options["port"], head_options["dashboard-port"])


def test_rayjob_entrypoint_is_a_valid_moon_command(manifests):
    from augment import config as C
    from augment.cli import build_parser

    job = next(m for m in manifests if m["kind"] == "RayJob")
    words = shlex.split(job["spec"]["entrypoint"])
    assert words[0] == "moon"
    args = build_parser().parse_args(words[1:])
    assert args.command == "run"
    C.load(args.config, args.profile, check_stages=False)  # the named profile or config exists


def test_the_stack_run_config_points_at_the_stacks_vllm_server(compose):
    from augment import config as C

    config = C.load(DOCKER / "stack-run.yaml")  # every backend resolves and its options validate
    command = compose["services"]["vllm"]["command"]
    served = command[command.index("--served-model-name") + 1]
    port = compose["services"]["vllm"]["ports"][0].split(":")[-1]
    for stage in ("enrich_title", "background_prompts"):
        options = config.stages[stage].options
        assert options["base_url"] == f"http://vllm:{port}/v1" and options["model"] == served, stage


def test_the_build_context_leaves_out_weights_runs_and_environments():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".git", ".venv", "runs", "docker/models"} <= ignored


def test_airflow_writes_runs_to_the_stacks_bucket(compose):
    bucket = compose["services"]["airflow-scheduler"]["environment"]["MOON_RUNS_ROOT"].removeprefix("s3://").split("/")[0]
    assert f"create_bucket(Bucket='{bucket}')" in compose["services"]["airflow-init"]["command"][2]


def test_training_checkpoints_go_to_a_volume_every_ray_node_shares(compose):
    """moon_train writes an s3:// run's checkpoints under MOON_CHECKPOINTS_ROOT with `moon train --output`, a local
    path: Ray Train's driver (on the head) and its workers must see the same folder."""
    services = compose["services"]
    root = services["airflow-scheduler"]["environment"]["MOON_CHECKPOINTS_ROOT"]
    for name in ("ray-head", "ray-gpu-worker"):
        mounts = {m.split(":")[1]: m.split(":")[0] for m in services[name]["volumes"]}
        assert mounts.get(root) in compose["volumes"], name  # a named volume, not a container's own folder
    dockerfile = ROOT / services["ray-head"]["build"]["dockerfile"]  # the build context is the repository
    assert f"mkdir {root} && chown 1000:100 {root}" in dockerfile.read_text()  # writable by the ray user
