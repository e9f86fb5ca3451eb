"""The floors of the project (docs/architecture.md): nothing imports from a floor above its own.

Every import statement of every module is read from its syntax tree, the ones inside functions too (a lazy import
is still a dependency), and placed on the floor of the unit it names. A unit may import its own modules and
anything on a lower floor; units on the same floor stay apart. Stage folders do not import each other, and no
shipped module imports the test scaffolding.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# unit (module prefix) -> floor
FLOORS = {
    "augment.core": 0,  # the contract, storage, manifest, faults, config loading, Ray start-up
    "prompts": 1,  # libraries on the core
    "augment.imaging": 1,
    "ner": 1,
    "augment.llm": 2,  # language-model calls (requests render prompts)
    "augment.stages": 3,  # one folder per stage, and what they share
    "augment.config": 4,  # the run: its config, input, plan, stage chains, runner, shard writer
    "augment.io": 4,
    "augment.plan": 4,
    "augment.pipeline": 4,
    "augment.runner": 4,
    "augment.writer": 4,
    "augment.ops": 5,  # around the data path: report, capacity, bench results; Airflow orchestration
    "augment.orchestrate": 5,
    "model": 6,  # the bi-encoder: trained and evaluated on committed shards; evaluations go into the run report
    "augment.cli": 7,  # entry points and development tooling
    "augment.commands": 7,
    "augment.dev": 7,
    "dags": 8,  # Airflow DAG files
}
RUN = {"augment.config", "augment.io", "augment.plan", "augment.pipeline", "augment.runner", "augment.writer"}
SCAFFOLDING = ("testkit", "tests")
PACKAGES = ("augment", "prompts", "ner", "model", "dags")


def unit_of(module: str) -> str | None:
    """The unit a dotted module name belongs to (the longest prefix in FLOORS); None outside the project."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in FLOORS:
            return prefix
    return None


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, dotted target) of every import in `tree`; `from a import b` gives a.b (a module or a name in a)."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join(package + ([base] if base else []))
            out += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return out


def project_modules():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield path, module_name(path)


def imports_of_every_module():
    for path, module in project_modules():
        tree = ast.parse(path.read_text(), str(path))
        for line, target in imported(tree, module, path.name == "__init__.py"):
            yield f"{path.relative_to(ROOT)}:{line}", module, target


def test_every_module_of_the_project_is_on_a_floor():
    unplaced = sorted({m for _, m in project_modules() if unit_of(m) is None and m not in ("augment", "augment.sample.build")})
    assert unplaced == []


def test_no_module_imports_from_a_higher_floor_or_a_unit_beside_it():
    wrong = []
    for where, module, target in imports_of_every_module():
        own, other = unit_of(module), unit_of(target)
        if own is None or other is None or own == other:
            continue
        if own in RUN and other in RUN:
            continue  # the run's modules are one unit in several files
        if FLOORS[other] >= FLOORS[own]:
            wrong.append(f"{where}: {module} (floor {FLOORS[own]}) imports {target} (floor {FLOORS[other]})")
    assert wrong == []


def test_stage_folders_do_not_import_each_other():
    wrong = []
    for where, module, target in imports_of_every_module():
        parts, target_parts = module.split("."), target.split(".")
        if parts[:2] != ["augment", "stages"] or len(parts) < 4 or target_parts[:2] != ["augment", "stages"]:
            continue
        # a module inside augment/stages/<stage>/ may import its own folder and the shared stage modules only
        target_is_folder = len(target_parts) >= 3 and (ROOT / "augment" / "stages" / target_parts[2]).is_dir()
        if target_is_folder and target_parts[2] != parts[2]:
            wrong.append(f"{where}: {module} imports {target}")
    assert wrong == []


def test_shipped_code_never_imports_test_scaffolding():
    wrong = [f"{where}: {target}" for where, _, target in imports_of_every_module()
             if target.split(".")[0] in SCAFFOLDING]
    assert wrong == []


def test_benchmarks_import_the_test_kit_not_the_tests():
    wrong = []
    for path in sorted((ROOT / "bench").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        wrong += [f"{path.relative_to(ROOT)}:{line}: {target}" for line, target in imported(tree, "bench", False)
                  if target.split(".")[0] == "tests"]
    assert wrong == []


@pytest.mark.parametrize("module, target, ok", [
    ("augment.stages.filter.heuristic", "augment.core.schema.Status", True),
    ("augment.core.config", "augment.stages.resolve", False),
    ("ner.cli", "augment.core.util.positive_int", True),
    ("ner.cli", "augment.runner", False),
    ("augment.ops.report.build", "augment.orchestrate.tasks", False),
])
def test_the_floor_rule_itself(module, target, ok):
    own, other = unit_of(module), unit_of(target)
    assert (FLOORS[other] < FLOORS[own]) == ok
