"""Inline SVG charts: bar lengths proportional to the values, stacked parts sum to the plot width, escaping."""
import xml.etree.ElementTree as ET

from augment.ops.report import charts

SVG = "{http://www.w3.org/2000/svg}"


def bars(svg: str, colour: str) -> list[float]:
    root = ET.fromstring(svg)
    return [float(r.get("width")) for r in root.iter(f"{SVG}rect") if r.get("fill") == colour]


def test_hbar_lengths_are_proportional_and_the_longest_fills_the_plot():
    svg = charts.hbar([("a", 10, "10"), ("b", 5, "5"), ("c", 0, "0")], colour="#123456", width=600)
    plot = 600 - charts.LABEL_W - charts.VALUE_W
    assert bars(svg, "#123456") == [plot, plot / 2]  # a zero value draws no bar


def test_stacked_parts_fill_the_plot_in_proportion():
    svg = charts.stacked([("k", [("ok", 3), ("filtered", 1)], "25 %")], {"ok": "#00aa00", "filtered": "#aa0000"}, width=600)
    plot = 600 - charts.LABEL_W - charts.VALUE_W
    ok, filtered = bars(svg, "#00aa00")[0], bars(svg, "#aa0000")[0]
    assert (ok, filtered) == (plot * 0.75, plot * 0.25)


def test_labels_and_values_are_escaped_and_the_svg_parses():
    svg = charts.hbar([("<script>", 1, "a & b")])
    ET.fromstring(svg)
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "a &amp; b" in svg


def test_no_items_no_chart():
    assert charts.hbar([]) == "" and charts.stacked([], {}) == ""


def test_long_labels_are_shortened_with_the_full_label_as_tooltip():
    label = "fallback:guard_dropped_entity_and_more"
    svg = charts.hbar([(label, 1, "1")])
    shown = label[: charts.LABEL_CHARS - 1] + "…"
    assert f"<title>{label}</title>{shown}<" in svg
