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
