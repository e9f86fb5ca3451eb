import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from augment import config as C
from augment import io
from augment.core import manifest
from augment import plan as P


@pytest.fixture
def config():
    cfg = C.load(check_stages=False)
    cfg.run.shard_size = 4
    return cfg


def catalogue(tmp_path, ids, brands=None):
    path = tmp_path / "in.parquet"
    data = {"product_id": ids, "title": [f"title {i}" for i in ids]}
    if brands is not None:
        data["brand"] = brands
    pq.write_table(pa.table(data), path)
    return str(path)


def test_shards_are_row_ranges_with_stable_ids(tmp_path, config):
    src = catalogue(tmp_path, [str(i) for i in range(10)])
    plan = P.plan_run(src, str(tmp_path / "out"), config)
    assert [(s.row_start, s.row_stop) for s in plan.shards] == [(0, 4), (4, 8), (8, 10)]
    assert [s.shard_id for s in plan.shards] == [P.shard_id(src, a, b) for a, b in [(0, 4), (4, 8), (8, 10)]]
    again = P.plan_run(src, str(tmp_path / "out"), config)
    assert again.run_id == plan.run_id
    assert [s.shard_id for s in again.shards] == [s.shard_id for s in plan.shards]


def test_two_plans_of_one_new_folder_at_once_take_one_run_id(tmp_path, config, monkeypatch):
    """Each saw no _run.json, each wrote its own, and the shards were committed under two run ids. Here the second
    reads before the first writes, as two jobs started together do: it takes the run the first made."""
    src = catalogue(tmp_path, [str(i) for i in range(10)])
    out = str(tmp_path / "out")
    first = P.plan_run(src, out, config)
    real = manifest.read_run_file
    calls = []

    def read_before_the_first_wrote(uri):
        calls.append(uri)
        return None if len(calls) == 1 else real(uri)

    monkeypatch.setattr(manifest, "read_run_file", read_before_the_first_wrote)
    assert P.plan_run(src, out, config).run_id == first.run_id
    calls.clear()
    config.output.image_quality = 50  # another run, made at the same moment: refused, as it would be after
    with pytest.raises(P.RunMismatch, match="different config"):
        P.plan_run(src, out, config)
    assert json.loads((tmp_path / "out" / "_run.json").read_text())["run_id"] == first.run_id


def test_limit_caps_rows(tmp_path, config):
    src = catalogue(tmp_path, [str(i) for i in range(10)])
    plan = P.plan_run(src, str(tmp_path / "out"), config, limit=6)
    assert plan.rows_total == 6
    assert [(s.row_start, s.row_stop) for s in plan.shards] == [(0, 4), (4, 6)]


def test_later_duplicates_of_a_product_id_are_marked(tmp_path, config):
    src = catalogue(tmp_path, ["a", "b", "a", "c", "b", "a", None])
    plan = P.plan_run(src, str(tmp_path / "out"), config)
    assert [s.duplicate_rows for s in plan.shards] == [[2], [4, 5]]


def test_changed_config_is_refused_without_force(tmp_path, config):
    src = catalogue(tmp_path, ["a", "b"])
    out = str(tmp_path / "out")
    P.plan_run(src, out, config)
    config.output.image_quality = 50
    with pytest.raises(P.RunMismatch, match="different config"):
        P.plan_run(src, out, config)
    forced = P.plan_run(src, out, config, force=True)
    assert json.loads((tmp_path / "out" / "_run.json").read_text())["run_id"] == forced.run_id


def test_changed_shard_size_is_refused(tmp_path, config):
    src = catalogue(tmp_path, ["a", "b", "c"])
    out = str(tmp_path / "out")
    P.plan_run(src, out, config)
    config.run.shard_size = 2
    with pytest.raises(P.RunMismatch, match="different shard size"):
        P.plan_run(src, out, config)


def test_changed_limit_is_refused(tmp_path, config):
    src = catalogue(tmp_path, ["a", "b", "c"])
    out = str(tmp_path / "out")
    P.plan_run(src, out, config, limit=2)
    with pytest.raises(P.RunMismatch, match="different --limit"):
        P.plan_run(src, out, config)


def with_lexicon(config, path):
    config.stages["ner"].options = {"lexicons": ["BRAND=en/brand_stop.txt", f"BRAND={path}"]}
    return config


def test_an_edited_lexicon_file_is_refused_naming_its_option_and_a_copy_resumes(tmp_path, config):
    lexicon = tmp_path / "brands.txt"
    lexicon.write_text("Acme\n")
    src = catalogue(tmp_path, ["a", "b", "c"])
    out = str(tmp_path / "out")
    first = P.plan_run(src, out, with_lexicon(config, lexicon))
    recorded = json.loads((tmp_path / "out" / "_run.json").read_text())["option_files"]
    assert list(recorded) == ["stages.ner.options.lexicons[0]", "stages.ner.options.lexicons[1]"]
    # the same bytes, written again (another modification time, as a copy on another machine has): the run resumes
    lexicon.write_text("Acme\n")
    os.utime(lexicon, (1, 1))
    assert P.plan_run(src, out, config).run_id == first.run_id
    assert P.load_batch(out, config, batch=0).run_id == first.run_id
    lexicon.write_text("Acme\nGlobex\n")  # same name, same config hash: only the contents tell
    with pytest.raises(P.RunMismatch) as refused:
        P.plan_run(src, out, config)
    assert str(refused.value) == (f"{out} holds a run made with a different file named by the stage options "
                                  f"(stages.ner.options.lexicons[1] changed); {P.REMEDIES['resume']}")
    with pytest.raises(P.PlanMismatch, match=r"different file named by the stage options "
                                             r"\(stages\.ner\.options\.lexicons\[1\] changed\); run the job"):
        P.load_batch(out, config, batch=0)
    assert P.plan_run(src, out, config, force=True).run_id != first.run_id


def test_a_run_recorded_before_lexicon_digests_resumes_while_it_names_no_file(tmp_path, config):
    src = catalogue(tmp_path, ["a", "b"])
    out = tmp_path / "out"
    first = P.plan_run(src, str(out), config)
    for record in (out / "_run.json", out / "_plan" / "plan.json"):  # as a version without the key wrote them
        data = json.loads(record.read_text())
        (data["identity"] if "identity" in data else data).pop("option_files")
        record.write_text(json.dumps(data))
    assert P.plan_run(src, str(out), config).run_id == first.run_id
    assert P.load_batch(str(out), config, batch=0).run_id == first.run_id
    lexicon = tmp_path / "brands.txt"
    lexicon.write_text("Acme\n")
    config.stages["ner"].options = {"lexicons": [f"BRAND={lexicon}"]}
    with pytest.raises(P.RunMismatch, match="different config and file named by the stage options"):
        P.plan_run(src, str(out), config)


def test_force_clears_previous_shards(tmp_path, config):
    src = catalogue(tmp_path, ["a", "b"])
    out = tmp_path / "out"
    P.plan_run(src, str(out), config)
    (out / "data").mkdir()
    (out / "data" / "old.parquet").write_bytes(b"x")
    (out / manifest.MANIFEST).write_text("{}\n")
    config.run.shard_size = 1
    P.plan_run(src, str(out), config, force=True)
    assert not (out / "data").exists()
    assert not (out / manifest.MANIFEST).exists()


def test_learned_brands_artifact(tmp_path, config):
    src = catalogue(tmp_path, ["a", "b", "c"], brands=["Nike", " Puma ", None])
    plan = P.plan_run(src, str(tmp_path / "out"), config)
    assert learned(tmp_path / "out") == ["Nike", "Puma"]
    assert plan.artifacts == {"learned_brands": str(tmp_path / "out" / "_artifacts" / "learned_brands.jsonl")}


def learned(run) -> list[str]:
    """The brands of a run's learned_brands artifact, each read as the NER stage reads it."""
    from ner.lexicon import read_lexicon

    patterns = read_lexicon(run / "_artifacts" / "learned_brands.jsonl")
    assert {p["label"] for p in patterns} <= {"BRAND"}
    return [p["pattern"] for p in patterns]


def test_a_learned_brand_is_read_as_written(tmp_path, config):
    """In a plain list, a brand that starts with `#` read as a comment and was never learned."""
    src = catalogue(tmp_path, ["a", "b", "c"], brands=["#1 Dad", '"Quoted" Co', "Nike"])
    P.plan_run(src, str(tmp_path / "out"), config)
    assert learned(tmp_path / "out") == ['"Quoted" Co', "#1 Dad", "Nike"]


def test_a_brand_value_that_is_no_name_is_not_learned(tmp_path, config, caplog):
    """A page pasted into the brand column: no title holds it, and tokenising it for the lexicon took minutes.
    A line break inside a value must not make two brands of it."""
    src = catalogue(tmp_path, ["a", "b", "c"], brands=["Nike", "!" * 16_000, "Tommy\nHilfiger"])
    with caplog.at_level("WARNING", logger="augment.plan"):
        P.plan_run(src, str(tmp_path / "out"), config)
    assert learned(tmp_path / "out") == ["Nike", "Tommy Hilfiger"]
    assert "1 catalogue brand values of over 100 characters are not learned as brands" in caplog.text


def test_restrict_to_known_shards(tmp_path, config):
    src = catalogue(tmp_path, [str(i) for i in range(10)])
    plan = P.plan_run(src, str(tmp_path / "out"), config)
    assert [s.shard_id for s in plan.restrict([plan.shards[1].shard_id]).pending] == [plan.shards[1].shard_id]
    with pytest.raises(ValueError, match="unknown shard ids"):
        plan.restrict(["nope"])


def test_dry_plan_writes_nothing(tmp_path, config):
    src = catalogue(tmp_path, ["a"])
    P.plan_run(src, str(tmp_path / "out"), config, write=False)
    assert not (tmp_path / "out" / "_run.json").exists()


def test_duplicates_across_files_keep_the_first_file_s_row(tmp_path, config):
    folder = tmp_path / "in"
    folder.mkdir()
    pq.write_table(pa.table({"product_id": ["a", None, "b", "a"], "title": ["t"] * 4}), folder / "1.parquet")
    pq.write_table(pa.table({"product_id": [None, "b", "c", "a", "c"], "title": ["t"] * 5}), folder / "2.parquet")
    plan = P.plan_run(str(folder), str(tmp_path / "out"), config)
    by_source = {}
    for shard in plan.shards:
        by_source.setdefault(shard.source_uri.rsplit("/", 1)[-1], []).extend(shard.duplicate_rows)
    assert by_source == {"1.parquet": [3], "2.parquet": [1, 3, 4]}


@pytest.mark.parametrize("name, text", [("in.csv", "product_id,title\n"), ("in.jsonl", ""),
                                        ("in.jsonl", "\n\n")])
def test_an_input_without_rows_is_refused(tmp_path, config, name, text):
    (tmp_path / name).write_text(text)
    with pytest.raises(P.io.InputError, match=f"^{tmp_path / name} holds no products: there is nothing to run$"):
        P.plan_run(str(tmp_path / name), str(tmp_path / "out"), config)


def test_a_folder_of_files_without_rows_is_refused(tmp_path, config):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("product_id,title\n")
    pq.write_table(pa.table({"product_id": pa.array([], pa.string())}), tmp_path / "in" / "b.parquet")
    with pytest.raises(P.io.InputError, match=r"in \(its 2 files have no rows\) holds no products"):
        P.plan_run(str(tmp_path / "in"), str(tmp_path / "out"), config)


@pytest.mark.parametrize("text, first", [('{"product_id": "a1", "title": \n', "invalid_json (Expecting value)"),
                                         ("[1, 2]\n{}\n", "invalid_json (a list, not an object)"),
                                         ("{}\n", "no fields")])
def test_a_jsonl_input_without_one_readable_product_names_its_first_line(tmp_path, config, text, first):
    (tmp_path / "in.jsonl").write_text(text)
    with pytest.raises(P.io.InputError) as caught:
        P.plan_run(str(tmp_path / "in.jsonl"), str(tmp_path / "out"), config)
    lines = len(text.splitlines())
    assert str(caught.value) == (f"{tmp_path / 'in.jsonl'}: none of its {lines} lines holds a product's fields "
                                 f"(first line: {first})")


def test_a_run_record_that_is_not_json_is_named_and_force_starts_over(tmp_path, config):
    src = catalogue(tmp_path, [str(i) for i in range(6)])
    out = tmp_path / "out"
    P.plan_run(src, str(out), config)
    (out / "_run.json").write_text('{"run_id": ')
    with pytest.raises(P.RunMismatch, match=f"^{out / '_run.json'}: not a readable run record .*; pass --force"):
        P.plan_run(src, str(out), config)
    again = P.plan_run(src, str(out), config, force=True)
    assert json.loads((out / "_run.json").read_text())["run_id"] == again.run_id


def test_a_run_folder_that_holds_the_input_is_refused_before_anything_is_written(tmp_path, config):
    src = catalogue(tmp_path, [str(i) for i in range(6)])
    for out in (tmp_path, tmp_path / ".." / tmp_path.name):  # the input's own folder, however it is spelled
        with pytest.raises(io.InputError, match=f"^the run folder {out} holds the input {src}: .*choose another"):
            P.plan_run(src, str(out), config)
    assert not (tmp_path / "_run.json").exists()
    assert P.plan_run(src, str(tmp_path / "out"), config).shards  # a folder beside it, or inside its folder


def test_a_run_record_edited_to_lack_a_key_is_named_incomplete_not_another_config(tmp_path, config):
    src = catalogue(tmp_path, [str(i) for i in range(6)])
    out = tmp_path / "out"
    P.plan_run(src, str(out), config)
    record = json.loads((out / "_run.json").read_text())
    (out / "_run.json").write_text(json.dumps({k: v for k, v in record.items() if k != "config_hash"}))
    with pytest.raises(P.RunMismatch, match=f"^{out / '_run.json'}: not a complete run record \\(no config_hash\\)"):
        P.plan_run(src, str(out), config)
    assert P.plan_run(src, str(out), config, force=True).run_id != record["run_id"]


def test_a_job_checks_a_folder_inputs_files_from_one_listing(tmp_path, config, monkeypatch):
    """Every job compares the input with the saved plan: the sizes and times come from listing the folder, not
    from one request per file (2,000 part files were 2,000 requests per job on S3)."""
    from augment import io

    folder = tmp_path / "in"
    folder.mkdir()
    for part in range(3):
        pq.write_table(pa.table({"product_id": [f"{part}-{i}" for i in range(5)], "title": ["t"] * 5}),
                       folder / f"part-{part}.parquet")
    planned = P.plan_run(str(folder), str(tmp_path / "out"), config)
    asked = []
    monkeypatch.setattr(io, "fingerprint", lambda uri: asked.append(uri))
    batch = P.load_batch(str(tmp_path / "out"), config, batch=0, shards_per_batch=2)
    assert asked == [] and [s.shard_id for s in batch.shards] == [s.shard_id for s in planned.shards[:2]]
    monkeypatch.undo()
    (folder / "part-1.parquet").write_bytes((folder / "part-1.parquet").read_bytes() + b"\0")  # the input changed
    with pytest.raises(P.PlanMismatch, match="different"):
        P.load_batch(str(tmp_path / "out"), config, batch=0, shards_per_batch=2)
