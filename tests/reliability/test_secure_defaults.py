"""Secure defaults: models load from local safetensors with no remote code, servers listen on loopback, the
config has no place for credentials. (Input URIs restricted to allowed roots and buckets: test_bad_inputs.)"""
from __future__ import annotations

import ast
import re

import pytest

from augment import config as C
from tests.reliability.helpers import ROOT

SOURCE_DIRS = ("augment", "ner", "prompts", "model", "dags", "bench")
NOT_WEIGHTS = re.compile(r"(Processor|Tokenizer|Config)$")


def _python_files(dirs=SOURCE_DIRS):
    for name in dirs:
        yield from sorted((ROOT / name).rglob("*.py")) if (ROOT / name).is_dir() else ()


def _dict_literals(tree: ast.AST) -> dict[str, dict[str, ast.expr]]:
    """name -> {key: value} for `name = {...}` assignments with string keys (the `**common` of a call)."""
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and all(isinstance(k, ast.Constant) for k in node.value.keys):
                out[target.id] = {k.value: v for k, v in zip(node.value.keys, node.value.values)}
    return out


def from_pretrained_calls():
    """(file:line, receiver, keyword arguments with **dict literals expanded) of every from_pretrained call."""
    calls = []
    for path in _python_files():
        tree = ast.parse(path.read_text(), str(path))
        literals = _dict_literals(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "from_pretrained":
                kwargs: dict[str, ast.expr] = {}
                for keyword in node.keywords:
                    if keyword.arg is None and isinstance(keyword.value, ast.Name):
                        kwargs.update(literals.get(keyword.value.id, {}))
                    elif keyword.arg is not None:
                        kwargs[keyword.arg] = keyword.value
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                calls.append((where, ast.unparse(node.func.value), kwargs))
    return calls


def _is_true(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def test_the_project_loads_models_with_from_pretrained():
    assert len(from_pretrained_calls()) >= 5  # the scan below sees the calls it checks


@pytest.mark.parametrize("where, receiver, kwargs", from_pretrained_calls(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_from_pretrained_is_local_safetensors_without_remote_code(where, receiver, kwargs):
    assert _is_true(kwargs.get("local_files_only")), f"{where}: {receiver}.from_pretrained may download"
    if not NOT_WEIGHTS.search(receiver):
        assert _is_true(kwargs.get("use_safetensors")), f"{where}: {receiver} may load pickled weights"
    trust = kwargs.get("trust_remote_code")
    # absent (transformers and diffusers default to False), False, or an option from the config: never True
    assert trust is None or isinstance(trust, (ast.Attribute, ast.Name)) or trust.value is False, where


def test_every_torch_load_reads_tensors_only():
    """torch.load unpickles; with weights_only=True it builds tensors and plain values and nothing else."""
    calls = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.load":
                keywords = {k.arg: k.value for k in node.keywords}
                calls.append((f"{path.relative_to(ROOT)}:{node.lineno}", _is_true(keywords.get("weights_only"))))
    assert len(calls) >= 2  # model/pretrained.py and model/checkpoint.py: the scan sees the calls it checks
    assert [where for where, safe in calls if not safe] == []


def test_remote_code_is_off_unless_the_config_turns_it_on():
    from augment.stages.enrich_title.model import TransformersEnrichOptions

    assert TransformersEnrichOptions(model="m").trust_remote_code is False
    pytest.importorskip("ray.data.llm")
    from augment.stages.enrich_title.model import VllmEnrichOptions, VllmEnrichStage

    default = VllmEnrichStage(VllmEnrichOptions(model="/models/m")).engine.processor_config()
    assert default.engine_kwargs["trust_remote_code"] is False
    chosen = VllmEnrichStage(VllmEnrichOptions(model="/models/m", engine_kwargs={"trust_remote_code": True}))
    assert chosen.engine.processor_config().engine_kwargs["trust_remote_code"] is True


# ---------------------------------------------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------------------------------------------
# 0.0.0.0, "::", or an empty host in a bind/server address tuple or a host= argument
ANY_INTERFACE = re.compile(r"""0\.0\.0\.0|["']::["']|(bind|Server|create_server)\(\(\s*["']["']|host\s*=\s*["']["']""")
# Inside a container or a pod a server must listen on every interface of its own network namespace; what the host
# publishes is checked below (compose) or stays inside the cluster (KubeRay services are ClusterIP).
CONTAINER_FILES = re.compile(r"^docker/(.+/Dockerfile|kuberay/.+\.ya?ml|compose\.yaml)$")


def test_servers_listen_on_loopback_unless_configured_otherwise():
    files = list(_python_files(SOURCE_DIRS + ("tests",))) + sorted((ROOT / "docker").rglob("*"))
    offenders = []
    for path in files:
        rel = str(path.relative_to(ROOT))
        if not path.is_file() or CONTAINER_FILES.match(rel) or rel == "tests/reliability/test_secure_defaults.py":
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if ANY_INTERFACE.search(line) and not line.lstrip().startswith("#"):
                offenders.append(f"{rel}:{number}: {line.strip()}")
    assert offenders == []


def test_the_compose_stack_publishes_its_ports_on_loopback_by_default():
    yaml = pytest.importorskip("yaml")
    services = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())["services"]
    published = [(name, port) for name, service in services.items() for port in service.get("ports", [])]
    assert len(published) >= 4
    for name, port in published:
        assert str(port).startswith("${MOON_BIND_ADDRESS:-127.0.0.1}:"), (name, port)


def test_vllm_serve_script_defaults_to_loopback():
    script = (ROOT / "docker" / "vllm" / "serve.sh").read_text()
    assert '--host "${HOST:-127.0.0.1}"' in script


def test_local_ray_starts_without_its_dashboard(monkeypatch):
    ray = pytest.importorskip("ray")
    from augment.core import ray as moon_ray
    from augment.core.ray import init_ray

    calls = []
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_COLOR_PREFIX", "")  # init_ray may set it: restored after the test
    monkeypatch.setattr(moon_ray, "reachable", lambda address: None)  # no cluster answers at head:10001 here
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: calls.append(kwargs))
    init_ray(num_cpus=2)
    # a private instance (never another one running on the machine), without its dashboard
    assert calls[0]["include_dashboard"] is False and calls[0]["address"] == "local"
    init_ray("ray://head:10001")
    assert calls[1]["address"] == "ray://head:10001" and "include_dashboard" not in calls[1]


# ---------------------------------------------------------------------------------------------------------------
# Credentials
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("section", ["run", "input", "output"])
def test_config_has_no_place_for_credentials(section):
    with pytest.raises(C.ConfigError, match="unknown key"):
        C.load(overrides={section: {"aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG"}})


def test_api_key_option_names_a_variable_and_refuses_a_key():
    from augment.stages.base import RunContext
    from augment.stages.enrich_title.model import OpenAIEnrichOptions, OpenAIEnrichStage

    with pytest.raises(ValueError, match="must name an environment variable"):
        OpenAIEnrichStage(OpenAIEnrichOptions(model="m", api_key_env="sk-live-4f9a8b7c"), RunContext())


# ---------------------------------------------------------------------------------------------------------------
# Pickled checkpoints are refused at load time (the static check above, in action)
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_clip_filter_refuses_a_pickled_checkpoint(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from augment.stages.filter.clip import ClipFilterOptions, ClipFilterStage
    from testkit import diffusers_models

    directory = diffusers_models.save_clip(tmp_path / "clip")
    from transformers import CLIPModel

    state = CLIPModel.from_pretrained(directory, local_files_only=True, use_safetensors=True).state_dict()
    torch.save(state, directory / "pytorch_model.bin")
    (directory / "model.safetensors").unlink()
    stage = ClipFilterStage(ClipFilterOptions(model_path=str(directory)))
    with pytest.raises(OSError, match="safetensors"):
        stage.setup()
