from ner.evaluate import Counts, row_counts, score


def test_row_counts_compare_folded_sets():
    counts = row_counts({"BRAND": ["Dr. Scholl's"]}, [{"label": "BRAND", "text": "dr scholl's"}])
    assert (counts["BRAND"].tp, counts["BRAND"].fp, counts["BRAND"].fn) == (1, 0, 0)


def test_missing_label_key_is_not_scored():
    assert row_counts({"BRAND": ["Nike"]}, [{"label": "COLOR", "text": "Red"}, {"label": "BRAND", "text": "Nike"}]
                      ).keys() == {"BRAND"}


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
