"""Bench result files: writing, reading back, rejecting malformed ones, GPU family names."""
import json

import pytest

from augment.ops import benchjson
from augment.ops.benchjson import BenchFormatError, Hardware


def test_written_result_reads_back_equal(tmp_path):
    hw = Hardware(kind="gpu", name="NVIDIA H100 80GB HBM3", count=1, memory_gb=80.0)
    written = benchjson.write_result(tmp_path / "r.json", stage="image_variants", backend="diffusers",
                                     config={"steps": 28}, hardware=hw, items=64, seconds=32.0, unit="image")
    read = benchjson.load(tmp_path / "r.json")
    assert read == written and read.rate_per_device == 2.0 and read.measured_at


def test_rate_is_per_device(tmp_path):
    hw = Hardware(kind="gpu", name="NVIDIA A100-SXM4-80GB", count=4)
    result = benchjson.BenchResult(stage="enrich_title", backend="vllm", config={}, hardware=hw, items=400, seconds=10.0)
    assert result.rate_per_device == 10.0


@pytest.mark.parametrize("change, message", [
    ({"format": "other/1"}, "format must be"),
    ({"unit": "frame"}, "unit must be"),
    ({"items": 0}, "items must be a whole number from 1 to 2"),
    ({"items": 10 ** 400}, "items must be a whole number from 1 to 2"),
    ({"seconds": 0}, "items and seconds must be positive"),
    ({"seconds": "12.5"}, 'seconds must be a number of 0 or more, got "12.5"'),
    ({"setup_seconds": True}, "setup_seconds must be a number of 0 or more, got true"),
    ({"output": {"bytes_per_product": "1000"}}, "output must be an object of numbers of 0 or more by name"),
    ({"output": []}, "output must be an object of numbers"),
    ({"notes": 3}, "notes must be text, got 3"),
    ({"hardware": {"kind": "gpu", "name": "x", "count": 1, "memory_gb": "80"}}, "hardware.memory_gb must be a number"),
    ({"hardware": {"kind": "tpu", "name": "x", "count": 1}}, "hardware.kind"),
    ({"hardware": {"kind": "gpu", "name": "x"}}, "hardware needs kind, name and count"),
    ({"speed": 3}, "unknown field 'speed'"),
])
def test_malformed_files_are_rejected_naming_the_field(tmp_path, change, message):
    data = {"format": benchjson.FORMAT, "stage": "ner", "backend": "spacy_rules", "config": {},
            "hardware": {"kind": "cpu", "name": "cpu", "count": 1}, "items": 10, "seconds": 1.0} | change
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(BenchFormatError, match=message):
        benchjson.load(tmp_path / "bad.json")


def test_load_dir_reads_every_json_file_in_order(tmp_path):
    for name in ("b", "a"):
        benchjson.write_result(tmp_path / f"{name}.json", stage="ner", backend=name, config={},
                               hardware=Hardware("cpu", "cpu", 1), items=1, seconds=1.0)
    assert [r.backend for r in benchjson.load_dir(tmp_path)] == ["a", "b"]


def test_a_missing_location_is_an_error(tmp_path):
    with pytest.raises(BenchFormatError, match="no such bench result"):
        benchjson.load_dir(tmp_path / "absent")


@pytest.mark.parametrize("name, family", [
    ("NVIDIA H100 80GB HBM3", "h100"), ("NVIDIA A100-SXM4-80GB", "a100"), ("NVIDIA H200", "h200"),
    ("NVIDIA A10G", "a10g"), ("NVIDIA L4", "l4"), ("NVIDIA L40S", "l40s"), ("NVIDIA GH200 480GB", "gh200"),
])
def test_gpu_family(name, family):
    assert benchjson.gpu_family(name) == family


def test_the_seeded_results_in_the_repository_are_valid():
    from augment.ops.capacity import DEFAULT_BENCH_DIR

    results = benchjson.load_dir(DEFAULT_BENCH_DIR)
    assert results and all(r.hardware.name and r.command for r in results)


@pytest.mark.parametrize("data", [b"\xf8\x00\x9c not text", b"{not json"])
def test_a_file_that_is_not_json_text_is_named(tmp_path, data):
    (tmp_path / "bad.json").write_bytes(data)
    with pytest.raises(BenchFormatError, match=f"^{tmp_path / 'bad.json'}: not JSON"):
        benchjson.load(tmp_path / "bad.json")
