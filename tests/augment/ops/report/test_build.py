"""write_report on built run folders: pages, pagination, thumbnails as files, marks, bounded size, S3, the CLI."""
from __future__ import annotations

import html
import html.parser
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from augment.ops.report import build
from tests.augment.ops.report.synthetic_run import build_run, variant_status

ROOT = Path(__file__).resolve().parents[4]


class Page(html.parser.HTMLParser):
    """The parts of a page the tests look at: references, and the class of every element."""

    def __init__(self, text: str):
        super().__init__()
        self.refs: list[str] = []
        self.classes: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("src", "href"):
            if attrs.get(key):
                self.refs.append(attrs[key])
        if attrs.get("class"):
            self.classes.append(attrs["class"])

    def count(self, css: str) -> int:
        return sum(1 for c in self.classes if c == css)


def page(run: Path, name: str) -> Page:
    return Page((run / "report" / name).read_text())


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("build") / "run"
    build_run(path, products=30, shard_size=10, quarantine={"empty_title": 2, "image_undecodable": 3})
    build.write_report(str(path), sample_size=30, page_size=12)
    return path


def test_index_and_one_page_per_page_size_products(run):
    names = sorted(p.name for p in (run / "report").glob("*.html"))
    assert names == ["gallery-001.html", "gallery-002.html", "gallery-003.html", "index.html"]
    cards = [page(run, n).count("product") for n in names[:3]]
    assert cards == [12, 12, 6]


def test_every_reference_is_a_file_beside_the_pages(run):
    for html_file in (run / "report").glob("*.html"):
        for ref in Page(html_file.read_text()).refs:
            assert not ref.startswith(("http:", "https:", "//", "data:")), ref
            target = ref.split("#", 1)[0]
            if target:
                assert (run / "report" / target).is_file(), f"{html_file.name} -> {ref}"


def test_thumbnails_are_downscaled_jpeg_files(run):
    thumbs = list((run / "report" / "img").glob("*.jpg"))
    assert thumbs
    for path in thumbs:
        with Image.open(path) as image:
            assert image.format == "JPEG" and max(image.size) <= build.ORIGINAL_SIDE


def test_variants_show_their_status_and_filtered_ones_are_marked(run):
    pages = [page(run, f"gallery-00{n}.html") for n in (1, 2, 3)]
    expected = {"ok": 0, "filtered": 0, "failed": 0}
    for i in range(30):
        for kind in ("subject", "background", "angle", "logo", "detail"):
            expected[variant_status(i, kind).split(":")[0]] += 1
    found = {status: sum(p.count(f"variant {status}") for p in pages) for status in expected}
    assert found == expected


def test_enriched_title_marks_every_entity_occurrence(run):
    text = (run / "report" / "gallery-001.html").read_text()
    card = text[text.index('<div class="pid mono">P0000</div>'):text.index('<div class="pid mono">P0001</div>')]
    enriched = card[card.index('class="t enriched"'):]
    enriched = enriched[:enriched.index("</div>")]
    # "Nike Men Red Cotton Shirt | Brand: Nike | Material: cotton": Nike and Cotton twice each.
    assert enriched.count('class="ent ent-brand"') == 2 and enriched.count('class="ent ent-material"') == 2


def test_overview_states_the_run_figures(run):
    text = (run / "report" / "index.html").read_text()
    for figure in ("35", "30", "image_undecodable", "empty_title", "Quarantined examples"):
        assert figure in text
    assert Page(text).count("badge reason") == 5  # 2 + 3 examples, under the 3-per-reason cap


def kpi(text: str, name: str) -> tuple[str, str]:
    """The value and detail of the overview's figure `name`."""
    card = re.search(rf'<div class="k">{re.escape(name)}</div><div class="v">([^<]*)</div><div class="d">([^<]*)</div>',
                     text)
    assert card, f"no figure {name!r} in the overview"
    return card.group(1), card.group(2)


def test_overview_states_the_share_of_products_not_enriched_ok_by_status(run):
    # synthetic_run: every 4th product's enrichment is `fallback:...`: 8 of the 30 written products
    text = (run / "report" / "index.html").read_text()
    assert kpi(text, "Enrichment not ok") == ("26.7 %", "ok 22 · rejected 0 · fallback 8")


def test_the_enrichment_figure_counts_every_written_product_from_the_manifest(tmp_path):
    from augment.core import manifest

    build_run(tmp_path, products=6, shard_size=3)
    lines = (tmp_path / manifest.MANIFEST).read_text().splitlines()
    records = [manifest.ShardRecord.from_dict(json.loads(line)) for line in lines]
    records[1].enrichment_status = {"ok": 1, "rejected": 2}  # the second shard had guard rejections
    (tmp_path / manifest.MANIFEST).write_text("".join(r.to_json() + "\n" for r in records))
    build.write_report(str(tmp_path), sample_size=2)  # the figure is the whole run's, not the sample's
    assert kpi((tmp_path / "report" / "index.html").read_text(), "Enrichment not ok") == (
        "50.0 %", "ok 3 · rejected 2 · fallback 1")


def test_a_manifest_without_enrichment_counts_shows_no_figure(tmp_path):
    from augment.core import manifest

    build_run(tmp_path, products=3, shard_size=3)
    record = json.loads((tmp_path / manifest.MANIFEST).read_text())
    del record["enrichment_status"]  # written by an earlier version
    (tmp_path / manifest.MANIFEST).write_text(json.dumps(record) + "\n")
    build.write_report(str(tmp_path))
    assert kpi((tmp_path / "report" / "index.html").read_text(), "Enrichment not ok")[0] == "–"


def test_a_large_run_shows_only_its_sample(tmp_path):
    build_run(tmp_path, products=60, shard_size=20)
    build.write_report(str(tmp_path), sample_size=8, page_size=5)
    pages = sorted((tmp_path / "report").glob("gallery-*.html"))
    assert [Page(p.read_text()).count("product") for p in pages] == [5, 3]
    # 8 products: one original and five variants each, no thumbnail of any other product
    assert len(list((tmp_path / "report" / "img").glob("*.jpg"))) <= 8 * 6


def test_regenerating_with_a_smaller_sample_removes_stale_pages_and_thumbnails(tmp_path):
    build_run(tmp_path, products=20, shard_size=10)
    build.write_report(str(tmp_path), sample_size=20, page_size=5)
    before = len(list((tmp_path / "report" / "img").glob("*.jpg")))
    build.write_report(str(tmp_path), sample_size=4, page_size=5)
    assert sorted(p.name for p in (tmp_path / "report").glob("gallery-*.html")) == ["gallery-001.html"]
    assert len(list((tmp_path / "report" / "img").glob("*.jpg"))) < before


def test_variants_stored_as_files_are_read_through_their_uri(tmp_path):
    build_run(tmp_path, products=4, shard_size=4, variants_as_files=True)
    build.write_report(str(tmp_path))
    text = (tmp_path / "report" / "gallery-001.html").read_text()
    assert len(re.findall(r'<figure class="variant [^"]*"[^>]*><div class="frame"><img src="img/', text)) == 20


def test_a_product_with_an_unreadable_image_gets_a_placeholder(tmp_path):
    build_run(tmp_path, products=2, shard_size=2)
    import pyarrow.parquet as pq

    shard = tmp_path / "data" / "shard000.parquet"
    table = pq.read_table(shard)
    rows = table.to_pylist()
    rows[0]["image"] = b"not an image"
    pq.write_table(type(table).from_pylist(rows, schema=table.schema), shard)
    build.write_report(str(tmp_path))
    assert "image not available" in (tmp_path / "report" / "gallery-001.html").read_text()


@pytest.mark.slow  # a child process
def test_moon_report_command_prints_the_index_path(run):
    out = subprocess.run([sys.executable, "-m", "augment.cli", "report", str(run), "--sample", "5"], cwd=ROOT,
                         capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(run / "report" / "index.html")


@pytest.mark.slow  # a child process
def test_moon_report_on_a_folder_without_a_run_fails_clearly(tmp_path):
    out = subprocess.run([sys.executable, "-m", "augment.cli", "report", str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 2 and "no committed shards" in out.stderr


@pytest.mark.slow
def test_moon_run_ends_by_writing_the_report(tmp_path):
    out = subprocess.run([sys.executable, "-m", "augment.cli", "run", "--output", str(tmp_path / "run"), "--limit", "6",
                          "--no-ray", "--no-progress"], cwd=ROOT, capture_output=True, text=True,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr
    assert Page((tmp_path / "run" / "report" / "gallery-001.html").read_text()).count("product") == 6


def test_a_run_with_every_product_quarantined_has_an_overview_and_no_gallery(tmp_path):
    build_run(tmp_path, products=0, quarantine={"missing_image": 3})
    build.write_report(str(tmp_path))
    assert sorted(p.name for p in (tmp_path / "report").glob("*.html")) == ["index.html"]
    text = (tmp_path / "report" / "index.html").read_text()
    assert "No written products to show." in text and Page(text).count("badge reason") == 3


def test_a_committed_shard_file_that_is_gone_or_broken_is_named_with_the_way_to_redo_it(tmp_path):
    build_run(tmp_path, products=6, shard_size=3)
    first, second = sorted((tmp_path / "data").glob("*.parquet"))
    first.unlink()
    # without --input, the advised command took the bundled sample and was refused as a run of another input
    redo = f"`moon run --input <the run's input> --output {tmp_path}`"  # a run without a saved plan
    with pytest.raises(FileNotFoundError, match=f"^{first}: a committed shard's file is missing; {re.escape(redo)}"):
        build.write_report(str(tmp_path))
    second.write_bytes(b"PAR1" + bytes(64) + b"PAR1")
    (tmp_path / "data" / first.name).write_bytes(second.read_bytes())
    with pytest.raises(ValueError, match=f"^{tmp_path / 'data'}/.*: not a readable Parquet file .*; delete it and "
                                         f"rerun {re.escape(redo)}"):
        build.write_report(str(tmp_path))


def test_a_shard_file_overwritten_by_another_is_shown_as_changed_not_as_the_run(tmp_path):
    """The gallery showed the copied shard's products twice, left the overwritten shard's out, and still said
    'every written product'; the page now says which shards are not as committed and how to check and redo them."""
    from augment.core import manifest

    build_run(tmp_path, products=9, shard_size=3)
    records = sorted(manifest.load(str(tmp_path)).values(), key=lambda r: r.row_start)
    build.write_report(str(tmp_path))
    assert "panel damage" not in (tmp_path / "report" / "index.html").read_text()
    (tmp_path / records[0].data_file).write_bytes((tmp_path / records[1].data_file).read_bytes())
    build.write_report(str(tmp_path))
    text = html.unescape(re.sub(r"<[^>]+>", "", (tmp_path / "report" / "index.html").read_text()))
    assert "Shard files changed since they were committed" in text
    assert "3 product ids (e.g." in text and "are in two shard files" in text
    if records[0].bytes != records[1].bytes:
        assert "1 committed shard no longer has its files as committed (missing, or another size)" in text
        assert f"{records[0].shard_id}: {records[0].data_file} ({records[1].bytes} bytes, committed with " \
               f"{records[0].bytes})" in text
    assert f"moon verify {tmp_path} checks every file" in text


def test_quarantine_files_of_other_column_types_are_shown_as_text(tmp_path):
    """Another version's or tool's quarantine file (a number for a title, bytes for raw, lineage as text) failed
    the report with an AttributeError."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    build_run(tmp_path, products=3, shard_size=3, quarantine={"empty_title": 1, "wrong_type:title": 1})
    for path in (tmp_path / "quarantine").glob("*.parquet"):
        table = pq.read_table(path)
        rows = table.num_rows
        for name, values in (("title", pa.array(range(rows))), ("raw", pa.array([b'{"title": 7}'] * rows)),
                             ("lineage", pa.array(["run-1/shard/0"] * rows))):
            table = table.set_column(table.column_names.index(name), name, values)
        pq.write_table(table, path)
    build.write_report(str(tmp_path))
    page = Page((tmp_path / "report" / "index.html").read_text())
    assert page.count("badge reason") == 2


def test_two_reports_of_one_run_at_once_write_one_after_the_other(tmp_path, monkeypatch):
    """`moon report --sample 30` beside the rewrite moon eval ends with: each removed the thumbnails and pages the
    other's report used, and the pages left behind showed broken images."""
    import threading

    from augment.ops.report import collect

    build_run(tmp_path, products=12, shard_size=6)
    started, release, second_done = threading.Event(), threading.Event(), threading.Event()
    examples = collect.quarantine_examples

    def held(facts, *args, **kwargs):  # the first report stops halfway, its lock held
        if threading.current_thread().name == "first":
            started.set()
            release.wait(60)
        return examples(facts, *args, **kwargs)

    monkeypatch.setattr(collect, "quarantine_examples", held)
    first = threading.Thread(target=build.write_report, args=(str(tmp_path),), kwargs={"sample_size": 12},
                             name="first")
    second = threading.Thread(target=lambda: (build.write_report(str(tmp_path), sample_size=4), second_done.set()))
    first.start()
    assert started.wait(60)
    second.start()
    waited = not second_done.wait(2)
    release.set()
    first.join(60)
    second.join(60)
    assert waited and second_done.is_set()
    report = tmp_path / "report"
    refs = [ref for page in report.glob("*.html") for ref in Page(page.read_text()).refs if ref.startswith("img/")]
    assert refs and all((report / ref).is_file() for ref in refs)


def test_a_shard_whose_pages_are_damaged_under_a_sound_footer_is_named(tmp_path):
    import pyarrow.parquet as pq

    build_run(tmp_path, products=6, shard_size=3)
    shard = sorted((tmp_path / "data").glob("*.parquet"))[0]
    meta = pq.ParquetFile(shard).metadata.row_group(0)
    title = next(meta.column(i) for i in range(meta.num_columns) if meta.column(i).path_in_schema == "title")
    data = bytearray(shard.read_bytes())
    inside = title.data_page_offset + title.total_compressed_size * 4 // 5  # past the page header: its payload
    data[inside:inside + 10] = b"\xff" * 10  # the codec's own error ("Corrupt snappy compressed data")
    shard.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=f"^{shard}: not a readable Parquet file"):
        build.write_report(str(tmp_path))


def test_a_run_record_that_is_not_json_is_named(tmp_path):
    build_run(tmp_path, products=3, shard_size=3)
    (tmp_path / "_run.json").write_text("[1]")
    with pytest.raises(ValueError, match=r"_run.json: not a readable run record \(a JSON list, not an object\)"):
        build.write_report(str(tmp_path))


def test_a_report_module_that_cannot_be_imported_is_logged_with_the_command_that_redoes_it(monkeypatch, caplog):
    import sys

    from augment import commands

    monkeypatch.setitem(sys.modules, "augment.ops.report", None)  # a broken install: the import fails
    monkeypatch.delattr("augment.ops.report", raising=False)
    with caplog.at_level("WARNING", logger="moon"):
        commands.write_run_report("/runs/r1")  # never raises: the shards are committed
    assert "could not write the report" in caplog.text
    assert "regenerate it with `moon report /runs/r1`" in caplog.text


def test_the_original_image_is_read_where_validate_read_it(tmp_path):
    """A relative image_uri against its input file, file:// decoded as a path, a refused scheme never fetched."""
    (tmp_path / "my images").mkdir()
    lineage = {"source_uri": str(tmp_path / "products.csv")}
    expected = str(tmp_path / "my images" / "1.jpg")
    for uri in ("my images/1.jpg", f"file://{tmp_path}/my%20images/1.jpg", expected):
        assert build._original_uri({"image_uri": uri, "lineage": lineage}) == expected
    assert build._original_uri({"image_uri": "img/1.jpg", "lineage": {"source_uri": "s3://shop/in/p.csv"}}) == \
        "s3://shop/in/img/1.jpg"
    assert build._original_uri({"image_uri": "http://169.254.169.254/latest", "lineage": lineage}) is None
    assert build._original_uri({"image_uri": None, "lineage": lineage}) is None
