"""`moon ner extract` and `moon ner eval` as users run them (a subprocess of python -m augment.cli)."""
import json
import os
import subprocess
import sys

import pytest

from testkit.cli import ROOT, moon


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.mark.slow
def test_extract_writes_one_line_per_title(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "title": "Nike Men Black Shorts", "price": 3},
                                        {"id": "b", "title": ""}])
    proc = moon("ner", "extract", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out.jsonl"))
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(l) for l in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [l["id"] for l in lines] == ["a", "b"]
    assert [(e["label"], e["text"]) for e in lines[0]["entities"]] == [
        ("BRAND", "Nike"), ("COLOR", "Black"), ("CATEGORY", "Shorts")]
    assert lines[1]["entities"] == []


@pytest.mark.slow
def test_extract_keeps_unreadable_lines_as_error_records(tmp_path):
    (tmp_path / "in.jsonl").write_bytes(b'{"id": "a", "title": "Nike Shorts"}\nnot json\n\n{"id": "c"}\n'
                                        b'{"id": "d", "title": "\xff"}\n{"title": "Nike Shorts"}\n')
    out = tmp_path / "sub" / "out.jsonl"
    proc = moon("ner", "extract", "--input", str(tmp_path / "in.jsonl"), "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(l) for l in out.read_text().splitlines()]
    assert [l["id"] for l in lines] == ["a", None, "c", None, None]
    assert lines[0]["entities"] and "error" not in lines[0]
    assert (lines[1]["line"], lines[1]["error"], lines[1]["entities"]) == (2, "not JSON (Expecting value)", [])
    assert (lines[2]["line"], lines[2]["error"]) == (4, "no 'title' string")
    assert (lines[3]["line"], lines[3]["error"]) == (5, "not UTF-8 (at byte offset 22)")
    assert (lines[4]["line"], lines[4]["error"], lines[4]["entities"]) == (6, "no 'id'", [])
    assert "4 input lines could not be read" in proc.stderr
    strict = moon("ner", "extract", "--input", str(tmp_path / "in.jsonl"), "--output", str(out), "--strict")
    assert strict.returncode == 1


@pytest.mark.slow  # a child process
def test_extract_names_a_missing_input_without_traceback(tmp_path):
    proc = moon("ner", "extract", "--input", str(tmp_path / "nope.jsonl"), "--output", str(tmp_path / "o.jsonl"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: input {tmp_path / 'nope.jsonl'} does not exist"
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.slow
def test_eval_names_the_line_of_a_malformed_gold_row(tmp_path):
    (tmp_path / "gold.jsonl").write_text('{"id": "1", "title": "Nike Shorts", "labels": {}}\n'
                                         '{"id": "2", "title": "Puma", "labels": {"BRAND": "Puma"}}\n')
    proc = moon("ner", "eval", "--gold", str(tmp_path / "gold.jsonl"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {tmp_path / 'gold.jsonl'}:2: labels.BRAND must be a list of strings"


@pytest.mark.slow
def test_eval_json_counts_per_label(tmp_path):
    write_jsonl(tmp_path / "gold.jsonl", [
        {"id": "1", "title": "Nike Men Black Shorts", "labels": {"BRAND": ["Nike"], "CATEGORY": ["Shorts"]}},
        {"id": "2", "title": "Puma Women Red Cotton Skirts",
         "labels": {"BRAND": ["Puma"], "MATERIAL": [], "COLOR": ["Red"]}},
    ])
    proc = moon("ner", "eval", "--gold", str(tmp_path / "gold.jsonl"), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)["gold.jsonl"]
    labels = result["labels"]
    assert (labels["BRAND"]["tp"], labels["BRAND"]["fp"], labels["BRAND"]["fn"]) == (2, 0, 0)
    assert (labels["MATERIAL"]["tp"], labels["MATERIAL"]["fp"]) == (0, 1)
    assert (labels["COLOR"]["tp"], labels["CATEGORY"]["tp"]) == (1, 1)
    assert (result["micro"]["tp"], result["micro"]["fp"], result["micro"]["fn"]) == (3, 1, 0)


@pytest.mark.slow
def test_eval_table_names_labels_and_micro(tmp_path):
    write_jsonl(tmp_path / "gold.jsonl", [{"id": "1", "title": "Nike Shorts", "labels": {"BRAND": ["Nike"]}}])
    proc = moon("ner", "eval", "--gold", str(tmp_path / "gold.jsonl"))
    assert proc.returncode == 0, proc.stderr
    assert "BRAND" in proc.stdout and "micro BCM" in proc.stdout


@pytest.mark.slow  # a child process
def test_help_does_not_import_spacy():
    code = "import sys, augment.cli; augment.cli.build_parser(); print('spacy' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.strip() == "False", proc.stderr


@pytest.mark.slow
def test_eval_errors_file_lists_each_mismatch_with_its_kind(tmp_path):
    write_jsonl(tmp_path / "gold.jsonl", [
        {"id": "1", "title": "Nike Men Black Shorts", "labels": {"BRAND": ["Nike"], "CATEGORY": ["Shorts"]}},
        {"id": "2", "title": "Puma Women Red Cotton Skirts", "labels": {"BRAND": ["Puma"], "MATERIAL": []}},
    ])
    proc = moon("ner", "eval", "--gold", str(tmp_path / "gold.jsonl"), "--errors", str(tmp_path / "errors.jsonl"))
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in (tmp_path / "errors.jsonl").read_text().splitlines()]
    assert records == [{"file": "gold.jsonl", "id": "2", "title": "Puma Women Red Cotton Skirts",
                        "label": "MATERIAL", "kind": "spurious", "gold": [], "predicted": ["Cotton"]}]
    assert "rows with errors" in proc.stdout and "1 mismatches" in proc.stderr
