import pytest

from ner.evaluate import Counts, count_kinds, error_kind, format_table, mismatches, row_counts, score


def test_row_counts_compare_folded_sets():
    counts = row_counts({"BRAND": ["Dr. Scholl's"]}, [{"label": "BRAND", "text": "dr scholl's"}])
    assert (counts["BRAND"].tp, counts["BRAND"].fp, counts["BRAND"].fn) == (1, 0, 0)


def test_missing_label_key_is_not_scored():
    assert row_counts({"BRAND": ["Nike"]}, [{"label": "COLOR", "text": "Red"}, {"label": "BRAND", "text": "Nike"}]
                      ).keys() == {"BRAND"}


def test_a_label_no_gold_row_gives_shows_as_a_dash_not_as_zero_scores():
    rows = [{"labels": {"BRAND": ["Nike"]}}, {"labels": {"BRAND": ["Puma"], "MATERIAL": []}}]
    result = score(rows, [[{"label": "BRAND", "text": "Nike"}, {"label": "CATEGORY", "text": "Shorts"}], []])
    assert {label: c["rows"] for label, c in result["labels"].items()} == {
        "BRAND": 2, "CATEGORY": 0, "MATERIAL": 1, "COLOR": 0}
    table = {line.split()[0]: line.split()[1:] for line in format_table("gold", result).splitlines()[2:]}
    assert table["CATEGORY"] == table["COLOR"] == ["–"] * 6
    assert table["BRAND"] == ["1.000", "0.500", "0.667", "1", "0", "1"]
    assert table["MATERIAL"] == ["0.000", "0.000", "0.000", "0", "0", "0"]  # given (empty) on one row: scored


def test_empty_gold_list_makes_predictions_false_positives():
    counts = row_counts({"MATERIAL": []}, [{"label": "MATERIAL", "text": "Cotton"}])
    assert (counts["MATERIAL"].tp, counts["MATERIAL"].fp, counts["MATERIAL"].fn) == (0, 1, 0)


def test_repeated_prediction_counts_once():
    counts = row_counts({"COLOR": ["Red"]}, [{"label": "COLOR", "text": "Red"}, {"label": "COLOR", "text": "RED"}])
    assert (counts["COLOR"].tp, counts["COLOR"].fp) == (1, 0)


def test_micro_covers_brand_category_material_only():
    rows = [{"labels": {"BRAND": ["Nike"], "COLOR": ["Red"]}}]
    result = score(rows, [[{"label": "BRAND", "text": "Nike"}, {"label": "COLOR", "text": "Blue"}]])
    assert (result["micro"]["tp"], result["micro"]["fp"], result["micro"]["fn"]) == (1, 0, 0)


def test_f1_of_counts():
    assert round(Counts(tp=3, fp=1, fn=1).f1, 4) == 0.75


@pytest.mark.parametrize("gold, predicted, kind", [
    ({"nike"}, {"nike"}, None),
    ({"nike"}, set(), "missed"),
    (set(), {"cotton"}, "spurious"),
    ({"plastic", "recycled"}, {"plastic"}, "partial"),
    ({"running shorts"}, {"shorts"}, "boundary"),
    ({"shorts"}, {"running shorts"}, "boundary"),
    ({"eyewear"}, {"goggles"}, "wrong"),
])
def test_error_kind_of_gold_and_predicted_values(gold, predicted, kind):
    assert error_kind(gold, predicted) == kind


def test_mismatches_name_row_label_kind_and_values_as_written():
    rows = [{"id": "a", "title": "Nike Men Running Shorts",
             "labels": {"BRAND": ["Nike"], "CATEGORY": ["Running Shorts"], "MATERIAL": [], "X": ["y"]}}]
    ents = [[{"label": "BRAND", "text": "NIKE"}, {"label": "CATEGORY", "text": "Shorts"},
             {"label": "CATEGORY", "text": "Shorts"}]]
    assert list(mismatches(rows, ents)) == [
        {"id": "a", "title": "Nike Men Running Shorts", "label": "CATEGORY", "kind": "boundary",
         "gold": ["Running Shorts"], "predicted": ["Shorts"]}]


def test_count_kinds_per_label():
    records = [{"label": "BRAND", "kind": "missed"}, {"label": "BRAND", "kind": "missed"},
               {"label": "COLOR", "kind": "wrong"}]
    counts = count_kinds(records)
    assert counts["BRAND"]["missed"] == 2 and counts["BRAND"]["wrong"] == 0
    assert counts["COLOR"]["wrong"] == 1
