"""`moon run --dry-run`: plans and validates, and writes nothing, also into an existing run folder."""
import json

from augment import cli


def _catalogue(tmp_path):
    path = tmp_path / "catalogue.jsonl"
    rows = [{"product_id": f"p{i}", "title": f"Nike Men Blue Shoes {i}", "image_uri": "missing.jpg"} for i in range(5)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_dry_run_into_an_existing_run_folder_writes_nothing(tmp_path, capsys):
    source = _catalogue(tmp_path)
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("kept")
    assert cli.main(["run", "--input", str(source), "--output", str(out), "--shard-size", "2", "--dry-run", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] == 5 and summary["shards"] == 3 and summary["dry_run"] is True
    assert _files(out) == ["notes.txt"]


def test_dry_run_into_a_new_folder_creates_nothing(tmp_path, capsys):
    source = _catalogue(tmp_path)
    out = tmp_path / "new-run"
    assert cli.main(["run", "--input", str(source), "--output", str(out), "--dry-run"]) == 0
    assert "dry run: 5 rows" in capsys.readouterr().out
    assert not out.exists()
