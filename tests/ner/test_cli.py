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


def run_ner(*argv: str) -> int:
    """`moon ner ARGV` in this process (no child, the pipeline cached): the handler's exit status."""
    import argparse

    from ner.cli import add_commands

    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    args = parser.parse_args(["ner", *argv])
    return args.func(args)


GOLD_OK = {"id": 1, "title": "Nike Red Cotton T-Shirt", "labels": {"BRAND": ["Nike"]}}


@pytest.mark.parametrize("entities,problem", [
    ([{"label": "BRAND"}], 'entity 1 has no "text"'),
    ([{"text": "Nike"}], 'entity 1 has no "label"'),
    (["Nike"], 'entity 1 is not an object with "label" and "text"'),
    ([{"label": "BRAND", "text": "Nike"}, {"label": "BRAND", "text": 5}], 'entity 2: "text" must be a string, not 5'),
])
def test_eval_names_the_line_of_a_malformed_predicted_entity(tmp_path, capsys, entities, problem):
    write_jsonl(tmp_path / "gold.jsonl", [GOLD_OK])
    write_jsonl(tmp_path / "P.jsonl", [{"id": 1, "entities": entities}])
    assert run_ner("eval", "--gold", str(tmp_path / "gold.jsonl"), "--predictions", str(tmp_path / "P.jsonl")) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'P.jsonl'}:1: {problem}\n"


@pytest.mark.parametrize("gold_id,predicted_id,bad", [(1, [1], "P.jsonl"), ([1], 1, "gold.jsonl"),
                                                      (1, {"a": 1}, "P.jsonl"), (True, 1, "gold.jsonl")])
def test_eval_refuses_ids_that_are_not_strings_or_numbers(tmp_path, capsys, gold_id, predicted_id, bad):
    write_jsonl(tmp_path / "gold.jsonl", [{**GOLD_OK, "id": gold_id}])
    write_jsonl(tmp_path / "P.jsonl", [{"id": predicted_id, "entities": []}])
    assert run_ner("eval", "--gold", str(tmp_path / "gold.jsonl"), "--predictions", str(tmp_path / "P.jsonl")) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / bad}:1: 'id' is ") and err.endswith(", not a string or number\n")


def test_eval_of_predictions_refuses_an_id_two_rows_share(tmp_path, capsys):
    """The last prediction of an id won, and each gold row of a shared id was scored against it: F1 0.5 for a
    perfect extract."""
    write_jsonl(tmp_path / "gold.jsonl", [GOLD_OK, {**GOLD_OK, "id": 2}])
    write_jsonl(tmp_path / "P.jsonl", [{"id": 1, "entities": []}, {"id": 2, "entities": []}, {"id": 1, "entities": []}])
    assert run_ner("eval", "--gold", str(tmp_path / "gold.jsonl"), "--predictions", str(tmp_path / "P.jsonl")) == 2
    assert capsys.readouterr().err == (f"error: {tmp_path / 'P.jsonl'}:3: the id 1 is on line 1 too; predictions join "
                                       "gold rows by id\n")
    write_jsonl(tmp_path / "gold.jsonl", [GOLD_OK, GOLD_OK])
    write_jsonl(tmp_path / "P.jsonl", [{"id": 1, "entities": []}])
    assert run_ner("eval", "--gold", str(tmp_path / "gold.jsonl"), "--predictions", str(tmp_path / "P.jsonl")) == 2
    assert capsys.readouterr().err == (f"error: {tmp_path / 'gold.jsonl'}: 1 ids are on more than one row (e.g. 1): "
                                       "--predictions joins predictions to gold rows by id; without it rows are scored "
                                       "one by one\n")


def test_extract_flags_an_id_that_is_not_a_string_or_number(tmp_path, capsys):
    write_jsonl(tmp_path / "in.jsonl", [{"id": {"a": 1}, "title": "Nike Shorts"}, {"id": "b", "title": "Nike Shorts"}])
    assert run_ner("extract", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out.jsonl")) == 0
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert lines[0] == {"id": None, "entities": [], "line": 1, "error": "'id' is an object, not a string or number"}
    assert lines[1]["id"] == "b" and lines[1]["entities"]
    assert "1 input lines could not be read" in capsys.readouterr().err
    write_jsonl(tmp_path / "gold.jsonl", [{**GOLD_OK, "id": "b"}])
    assert run_ner("eval", "--gold", str(tmp_path / "gold.jsonl"), "--predictions", str(tmp_path / "out.jsonl")) == 0


def test_extract_refuses_an_output_that_is_a_directory(tmp_path, capsys):
    write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "title": "Nike Shorts"}])
    (tmp_path / "out").mkdir()
    assert run_ner("extract", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out")) == 2
    assert capsys.readouterr().err == f"error: output {tmp_path / 'out'} is a directory\n"
    assert [p.name for p in (tmp_path / "out").iterdir()] == []


def test_eval_refuses_an_errors_file_that_is_a_directory(tmp_path, capsys):
    write_jsonl(tmp_path / "gold.jsonl", [GOLD_OK])
    write_jsonl(tmp_path / "P.jsonl", [{"id": 1, "entities": []}])
    (tmp_path / "errs").mkdir()
    assert run_ner("eval", "--gold", str(tmp_path / "gold.jsonl"), "--predictions", str(tmp_path / "P.jsonl"),
                   "--errors", str(tmp_path / "errs")) == 2
    assert capsys.readouterr().err == f"error: errors file {tmp_path / 'errs'} is a directory\n"


def test_extract_names_an_input_that_is_a_directory(tmp_path, capsys):
    assert run_ner("extract", "--input", str(tmp_path), "--output", str(tmp_path / "o.jsonl")) == 2
    assert capsys.readouterr().err == f"error: input {tmp_path} is a directory\n"


@pytest.mark.parametrize("option,kind", [("--gold", "gold file"), ("--predictions", "predictions file")])
@pytest.mark.parametrize("missing,problem", [(False, "is a directory"), (True, "does not exist")])
def test_eval_names_an_input_file_that_is_missing_or_a_directory(tmp_path, capsys, option, kind, missing, problem):
    write_jsonl(tmp_path / "gold.jsonl", [GOLD_OK])
    bad = tmp_path / "absent.jsonl" if missing else tmp_path
    other = "--predictions" if option == "--gold" else "--gold"
    assert run_ner("eval", option, str(bad), other, str(tmp_path / "gold.jsonl")) == 2
    assert capsys.readouterr().err == f"error: {kind} {bad} {problem}\n"


@pytest.mark.parametrize("option", ["--gold", "--predictions"])
def test_eval_names_file_and_line_that_is_not_utf8(tmp_path, capsys, option):
    write_jsonl(tmp_path / "gold.jsonl", [GOLD_OK])
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(json.dumps(GOLD_OK).encode() + b"\n\xff\n")
    other = "--predictions" if option == "--gold" else "--gold"
    assert run_ner("eval", option, str(bad), other, str(tmp_path / "gold.jsonl")) == 2
    assert capsys.readouterr().err == f"error: {bad}:2: not UTF-8 (at byte offset 0)\n"


@pytest.mark.parametrize("text,problem", [
    ("garbage [\n", "File contains no section headers"),
    ("[nlp]\nlang = \"en\"\npipeline = [\"a\"]\n[components]\n[components.a]\nfactory = \"moon_brand_rules\"\n"
     "nope = 5\n", "moon_brand_rules -> nope: unexpected argument: 'nope'"),
    ("[nlp]\nlang = \"qq\"\npipeline = []\n", "Can't import language qq"),
    (b"\xff[nlp]\n", "not UTF-8"),
])
def test_extract_names_a_bad_config_in_one_line(tmp_path, capsys, text, problem):
    write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "title": "Nike Shorts"}])
    config = tmp_path / "bad.cfg"
    config.write_bytes(text if isinstance(text, bytes) else text.encode())
    assert run_ner("extract", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "o.jsonl"),
                   "--config", str(config)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: config {config}: ") and problem in err and err.count("\n") == 1


def test_extract_refuses_a_lexicon_of_an_unknown_label(tmp_path, capsys):
    write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "title": "Nike Shorts"}])
    (tmp_path / "lex.txt").write_text("Acme\n")
    assert run_ner("extract", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "o.jsonl"),
                   "--lexicon", f"FOO={tmp_path / 'lex.txt'}") == 2
    assert capsys.readouterr().err == (f"error: lexicon FOO={tmp_path / 'lex.txt'}: unknown label FOO; labels: BRAND, "
                                       f"CATEGORY, MATERIAL, COLOR, NONE\n")


@pytest.mark.parametrize("lines", [[{"id": 1, "title": "Nike Shorts"}], [],
                                   [{"id": 1, "title": "Nike", "labels": {}}, {"id": 2, "title": "Puma"}]])
def test_eval_refuses_a_gold_file_without_labels(tmp_path, capsys, lines):
    write_jsonl(tmp_path / "gold.jsonl", lines)
    write_jsonl(tmp_path / "P.jsonl", [{"id": 1, "entities": []}])
    assert run_ner("eval", "--gold", str(tmp_path / "gold.jsonl"), "--predictions", str(tmp_path / "P.jsonl")) == 2
    assert capsys.readouterr().err == (f"error: no gold labels in {tmp_path / 'gold.jsonl'}: no line gives BRAND, "
                                       f"CATEGORY, MATERIAL or COLOR values\n")
