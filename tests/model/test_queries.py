"""Shopper-intent queries from labels: normalisation, query text, relevance."""
from model.queries import attribute_queries, attribute_query, label_key, label_value, matches, product_labels


def test_labels_are_normalised_and_placeholders_are_missing():
    assert label_value("  Navy   Blue ") == "navy blue"
    assert [label_value(v) for v in ("NA", "", None, "n/a")] == [None] * 4
    assert label_value(2019) == "2019"


def test_category_leaf_is_the_last_level_of_the_category_path():
    columns = {"category_path": ["Apparel > Bottomwear > Track Pants", None], "gender": ["Men", "Women"]}
    get = lambda name, i: columns[name][i] if name in columns else None  # noqa: E731
    assert product_labels(get, 0, ("gender", "category_leaf", "usage")) == ["men", "track pants", None]
    assert product_labels(get, 1, ("gender", "category_leaf")) == ["women", None]


def test_query_text_keeps_attribute_order_and_each_word_once():
    assert attribute_query(("men", "navy blue", "track pants")) == "men navy blue track pants"
    assert attribute_query(("men", None, "casual shoes", "casual")) == "men casual shoes"


def test_a_product_without_any_label_gives_no_key():
    assert label_key([None, None]) is None
    assert label_key(["Men", None]) == ("men", None)


def test_a_missing_query_label_constrains_nothing_but_a_missing_product_label_fails_it():
    assert matches((None, "white"), ("women", "white"))
    assert not matches(("women", "white"), (None, "white"))
    assert not matches(("women", "white"), None)


def test_one_query_per_distinct_combination():
    keys = [("women", "white"), ("men", "white"), ("women", "white"), None, (None, "white")]
    assert attribute_queries(keys) == [
        (("men", "white"), "men white", [1]),
        (("women", "white"), "women white", [0, 2]),
        ((None, "white"), "white", [0, 1, 2, 4]),
    ]
