"""augment.core.faults: what a fault spec arms, and what a run passes on to its Ray actors."""
import pytest

from augment.core import faults


def test_nothing_is_armed_or_passed_on_without_moon_faults(monkeypatch):
    monkeypatch.delenv("MOON_FAULTS", raising=False)
    monkeypatch.setenv("MOON_FAULTS_STATE", "/tmp/state")
    assert faults.armed() == {}
    faults.point("after_commit")  # a no-op


def test_an_armed_fault_and_its_state_folder_are_passed_on(monkeypatch, tmp_path):
    monkeypatch.setenv("MOON_FAULTS", "stage:ner=2:kill")
    monkeypatch.delenv("MOON_FAULTS_STATE", raising=False)
    assert faults.armed() == {"MOON_FAULTS": "stage:ner=2:kill"}
    monkeypatch.setenv("MOON_FAULTS_STATE", str(tmp_path))
    assert faults.armed() == {"MOON_FAULTS": "stage:ner=2:kill", "MOON_FAULTS_STATE": str(tmp_path)}


def test_a_raise_fault_fires_at_its_hit_counted_in_the_state_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("MOON_FAULTS", "before_shard_write=2:raise,after_commit=1+:raise")
    monkeypatch.setenv("MOON_FAULTS_STATE", str(tmp_path))
    faults.point("before_shard_write")
    with pytest.raises(faults.InjectedFault, match="hit 2"):
        faults.point("before_shard_write")
    faults.point("before_shard_write")  # the third hit passes: "=2" fires once
    for hit in (1, 2):
        with pytest.raises(faults.InjectedFault, match=f"hit {hit}"):
            faults.point("after_commit")  # "=1+" fires every time from the first
    assert (tmp_path / "before_shard_write").stat().st_size == 3


@pytest.mark.parametrize("spec", ["after_data_write=2:kill", "stage:ner=1", "stage_call:filter=3+:raise",
                                  "driver_batch=1:sleep0.5,after_commit=1:exit", "during_shard_write=1:sleep"])
def test_a_spec_of_known_points_passes_the_check(monkeypatch, spec):
    monkeypatch.setenv("MOON_FAULTS", spec)
    faults.check()


@pytest.mark.parametrize("spec,problem", [
    ("after_comit=1:kill", "'after_comit=1:kill' names no fault point (write name=N:action); points: driver_batch,"),
    ("stage:nre=1", "'stage:nre=1' names no fault point"),
    ("after_commit", "'after_commit' names no fault point"),
    ("after_commit=0:kill", "the hit count must be a whole number from 1"),
    ("after_commit=two", "the hit count must be a whole number from 1"),
    ("after_commit=1:explode", "unknown action 'explode'; actions: kill, exit, raise, sleepS"),
])
def test_a_mistyped_spec_is_refused_naming_what_is_wrong(monkeypatch, spec, problem):
    monkeypatch.setenv("MOON_FAULTS", spec)
    with pytest.raises(ValueError, match="^MOON_FAULTS: ") as caught:
        faults.check()
    assert problem in str(caught.value)


def test_moon_run_refuses_a_mistyped_drill_before_it_starts(monkeypatch, capsys, tmp_path):
    from augment import cli

    monkeypatch.setenv("MOON_FAULTS", "after_comit=1:kill")
    assert cli.main(["run", "--no-ray", "--limit", "4", "--output", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.startswith("error: MOON_FAULTS: 'after_comit=1:kill' names no fault point")
    assert not (tmp_path / "run").exists()


def test_every_point_the_code_reaches_is_declared_and_documented():
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    reached = set()
    for path in (root / "augment").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "point" and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant):
                    reached.add(arg.value)
                elif isinstance(arg, ast.JoinedStr):  # f"stage:{stage.name}"
                    reached.add(arg.values[0].value.rstrip(":"))
    assert reached == set(faults.POINTS) | set(faults.STAGE_POINTS)
    doc = (root / "docs" / "reliability.md").read_text()
    points_line = doc.split("Points: ", 1)[1].split("\n\n", 1)[0]
    assert all(f"`{p}`" in points_line for p in faults.POINTS)
    assert all(f"`{kind}:<stage>`" in points_line for kind in faults.STAGE_POINTS)
