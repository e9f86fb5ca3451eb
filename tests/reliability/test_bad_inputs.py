"""The bad-input corpus (tests.reliability.corpus) through every input format: the run completes, each row is
processed or quarantined with the expected reason, the summary counts the reasons, rows in = out + quarantined."""
from __future__ import annotations

import contextlib
import io
import json
import math
from collections import Counter
from pathlib import Path

import pytest

from augment import cli
from tests.reliability import corpus
from tests.reliability.helpers import assert_complete_and_clean, visible_rows

pytestmark = pytest.mark.slow
SHARD_SIZE = 16
CONFIG = f"extends: local\ninput:\n  allowed_buckets: [{corpus.ALLOWED_BUCKET}]\n"


def build(folder: Path, fmt: str) -> tuple[str, dict[tuple[str, int], str | None], dict[tuple[str, int], corpus.Case]]:
    """Write the corpus in `fmt` under `folder`; returns the input URI, the expected reason per (file, row) and
    the case per (file, row)."""
    corpus.write_images(folder)
    cases = [c for c in corpus.corpus_cases() if c.in_format(fmt)]
    if fmt == "parquet":
        main = folder / "catalogue.parquet"
        corpus.write_parquet(cases, main)
        expected = {(main.name, i): c.expected(fmt) for i, c in enumerate(cases)}
        typed = folder / "wrong_types.parquet"
        for i in range(corpus.wrong_types_parquet(typed)):
            expected[(typed.name, i)] = "wrong_type:title"
        uri = str(folder)  # a folder input of two files
    else:
        main = folder / f"catalogue.{fmt}"
        reasons = corpus.write_jsonl(cases, main) if fmt == "jsonl" else corpus.write_csv(cases, main)
        expected = dict(((main.name, i), r) for i, r in enumerate(reasons))
        uri = str(main)
    by_row = {(main.name, i): c for i, c in enumerate(cases)}
    return uri, expected, by_row


@pytest.fixture(scope="module", params=corpus.FORMATS)
def corpus_run(request, tmp_path_factory):
    fmt = request.param
    folder = tmp_path_factory.mktemp(f"corpus-{fmt}")
    uri, expected, cases = build(folder / "in", fmt)
    (folder / "config.yaml").write_text(CONFIG)
    out = folder / "run"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = cli.main(["run", "--input", uri, "--output", str(out), "--config", str(folder / "config.yaml"),
                         "--shard-size", str(SHARD_SIZE), "--no-ray", "--no-progress", "--json"])
    assert code == 0, stderr.getvalue()
    return fmt, out, expected, cases, json.loads(stdout.getvalue())


def _outcomes(out: Path) -> dict[tuple[str, int], str | None]:
    outcomes = {}
    for row in visible_rows(out / "data", ["lineage"]):
        outcomes[(Path(row["lineage"]["source_uri"]).name, row["lineage"]["source_row"])] = None
    for row in visible_rows(out / "quarantine", ["lineage", "reason"]):
        outcomes[(Path(row["lineage"]["source_uri"]).name, row["lineage"]["source_row"])] = row["reason"]
    return outcomes


def test_every_row_is_processed_or_quarantined_with_its_reason(corpus_run):
    fmt, out, expected, _, _ = corpus_run
    assert _outcomes(out) == expected


def test_rows_in_equal_rows_out_plus_quarantined(corpus_run):
    _, out, expected, _, summary = corpus_run
    rows_per_file = Counter(name for name, _ in expected)
    shards = sum(math.ceil(n / SHARD_SIZE) for n in rows_per_file.values())
    totals = assert_complete_and_clean(out, shards, len(expected))
    assert summary["complete"] is True
    assert summary["run_total"]["rows_in"] == len(expected)
    assert totals["rows_out"] == sum(1 for r in expected.values() if r is None)


def test_summary_counts_each_reason(corpus_run):
    _, _, expected, _, summary = corpus_run
    assert summary["run_total"]["quarantine_reasons"] == dict(Counter(r for r in expected.values() if r))


def test_hostile_titles_pass_through_verbatim(corpus_run):
    _, out, _, cases, _ = corpus_run
    rows = {r["product_id"]: r for r in visible_rows(out / "data", ["product_id", "title", "enriched_title"])}
    for name, title in corpus.HOSTILE_TITLES.items():
        assert rows[name]["title"] == title  # stored as data, never interpreted or altered
        assert rows[name]["enriched_title"]


def test_unknown_columns_are_carried_through(corpus_run):
    fmt, out, _, _, _ = corpus_run
    rows = {r["product_id"]: r for r in visible_rows(out / "data", ["product_id", "price", "colour_code"])}
    price = rows["extra-columns"]["price"]
    assert price == (19.99 if fmt == "parquet" else "19.99")  # Parquet keeps types; text formats give strings
    assert rows["extra-columns"]["colour_code"] == "OL-42"
