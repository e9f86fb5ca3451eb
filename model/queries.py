"""Shopper-intent text queries from a catalogue's structured labels, and which products they are relevant to.

A product's labels are the values of the columns named by `data.query_attributes` (pass-through input
columns such as gender, base_colour, article_type, usage), normalised: stripped, lower-cased, and missing
when null, empty or a placeholder such as "NA". The pseudo-attribute `category_leaf` reads the last level of
`category_path` (an article type for catalogues without one).

- `label_key(values)`: the normalised labels as a tuple, None where missing (None for a product with none).
- `attribute_query(key)`: the text a shopper would type: the present values in attribute order, each word once
  ("women white skirts", "men navy blue track pants").
- `matches(query_key, product_key)`: a product is relevant to a query when it has every label the query names
  (a label the query lacks constrains nothing).
- `attribute_queries(keys)`: one query per distinct label combination, in sorted order, with the indices of the
  products relevant to it.

Queries are built from labels only, never from titles. This module is pure Python: no torch, no I/O.
"""
from __future__ import annotations

from typing import Any, Sequence

from model.tokenizer import words

CATEGORY_LEAF = "category_leaf"
MISSING = frozenset({"", "na", "n/a", "none", "null", "nan", "-"})

LabelKey = tuple  # tuple[str | None, ...], one entry per query attribute


def label_value(value: Any) -> str | None:
    """One label, normalised; None when missing."""
    if value is None:
        return None
    text = " ".join(str(value).split()).lower()
    return None if text in MISSING else text


def product_labels(get, i: int, attributes: Sequence[str]) -> list[str | None]:
    """The normalised labels of row i. `get(column, i)` returns a column's value or None when absent."""
    out = []
    for name in attributes:
        if name == CATEGORY_LEAF:
            path = get("category_path", i)
            out.append(label_value(path.split(">")[-1]) if path else None)
        else:
            out.append(label_value(get(name, i)))
    return out


def label_key(values: Sequence[str | None] | None) -> LabelKey | None:
    """The labels as a hashable key; None when every label is missing (the product gives no query)."""
    if not values or all(v is None for v in values):
        return None
    return tuple(label_value(v) for v in values)


def attribute_query(key: LabelKey) -> str:
    """The query text of a label key: present values in attribute order, a word repeated only once."""
    seen, out = set(), []
    for value in key:
        for word in words(value or ""):
            if word not in seen:
                seen.add(word)
                out.append(word)
    return " ".join(out)


def matches(query: LabelKey, product: LabelKey | None) -> bool:
    """True when the product has every label the query names."""
    if product is None:
        return False
    return all(q is None or q == p for q, p in zip(query, product))


def attribute_queries(keys: Sequence[LabelKey | None]) -> list[tuple[LabelKey, str, list[int]]]:
    """(key, query text, relevant product indices) for each distinct key among `keys`, sorted by key."""
    distinct = sorted({k for k in keys if k is not None}, key=lambda k: tuple((v is None, v or "") for v in k))
    return [(q, attribute_query(q), [i for i, k in enumerate(keys) if matches(q, k)]) for q in distinct]
