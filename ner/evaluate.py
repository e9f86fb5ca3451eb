"""Scoring predicted entities against gold title labels: per-label precision, recall, F1 and the micro F1.

Gold rows look like {"id", "title", "labels": {"BRAND": [...], "CATEGORY": [...], ...}}. A label key that is
present lists every value of that label in the title (an empty list: the label is absent); a missing key means
unknown, and predictions of that label on that row are not scored. Values are compared as sets of folded texts
(`ner.text.fold`: case-insensitive, punctuation and white space folded), so predicting "Nike" twice counts once.
The headline figure is the micro F1 over BRAND, CATEGORY and MATERIAL.

`mismatches` lists the rows and labels where prediction and gold differ, each with the kind of error
(`ERROR_KINDS`), for reading what a lexicon or rule gets wrong.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from augment.core.util import json_loads
from ner import LABELS as SCORED_LABELS
from ner.text import fold

MICRO_LABELS = ("BRAND", "CATEGORY", "MATERIAL")
# how a row's predicted values of one label differ from its gold values, in the order `error_kind` tests them
ERROR_KINDS = {
    "missed": "gold values, nothing predicted",
    "spurious": "predicted where the label is known to be absent",
    "partial": "some values right, some missed or extra",
    "boundary": "a predicted value inside a gold one or around it: 'Running Shorts' / 'Shorts'",
    "wrong": "another value than the gold one",
}


@dataclasses.dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def add(self, other: "Counts") -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn

    def as_dict(self) -> dict:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "precision": round(self.precision, 4),
                "recall": round(self.recall, 4), "f1": round(self.f1, 4)}


def read_jsonl(path: str | Path) -> Iterator[tuple[int, object]]:
    """(line number, parsed value) of each non-blank line; ValueError naming the file and line of one that is not
    UTF-8 or not JSON (each line is decoded on its own, so that the message can say which)."""
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                yield number, json_loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise ValueError(f"{path}:{number}: not UTF-8 (at byte offset {exc.start})") from None
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not JSON ({exc.msg})") from None


def id_problem(value: object) -> str | None:
    """Why `value` cannot be a row id, or None: ids join predictions to gold rows and decide the split, so they
    must be strings or numbers (a list or an object cannot be looked up, and true would equal the id 1)."""
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return None
    kind = {dict: "an object", list: "an array", bool: "a boolean", type(None): "null"}.get(type(value), "a value")
    return f"'id' is {kind}, not a string or number"


def read_gold(path: str | Path) -> list[dict]:
    """The rows of a gold JSONL file; ValueError naming the file and line of the first malformed row."""
    rows = []
    for number, row in read_jsonl(path):
        problem = _gold_row_problem(row)
        if problem:
            raise ValueError(f"{path}:{number}: {problem}")
        rows.append(row)
    return rows


def _gold_row_problem(row: object) -> str | None:
    """Why `row` is no gold row ({"id", "title", "labels": {LABEL: [values]}}; the id may be missing), or None."""
    labels = row.get("labels", {}) if isinstance(row, dict) else None
    if not isinstance(row, dict) or not isinstance(row.get("title"), str) or not isinstance(labels, dict):
        return "a gold row needs a 'title' string and a 'labels' mapping"
    if row.get("id") is not None and id_problem(row["id"]):
        return id_problem(row["id"])
    for label, values in labels.items():
        if values is not None and not (isinstance(values, list) and all(isinstance(v, str) for v in values)):
            return f"labels.{label} must be a list of strings"
    return None


def has_labels(rows: Iterable[dict]) -> bool:
    """Whether any row gives the values of a scored label (an empty list counts: the label is known absent);
    without one, every score would be zero."""
    return any(values is not None and label in SCORED_LABELS
               for row in rows for label, values in row.get("labels", {}).items())


def row_counts(gold_labels: dict[str, list[str]], entities: Iterable[dict]) -> dict[str, Counts]:
    """Counts per scored label of one row: predicted texts against gold values, on the row's known labels."""
    predicted: dict[str, set[str]] = {}
    for ent in entities:
        key = fold(ent["text"])
        if key:
            predicted.setdefault(ent["label"], set()).add(key)
    counts = {}
    for label, values in gold_labels.items():
        if label not in SCORED_LABELS or values is None:
            continue
        gold = {fold(v) for v in values} - {""}
        pred = predicted.get(label, set())
        counts[label] = Counts(tp=len(gold & pred), fp=len(pred - gold), fn=len(gold - pred))
    return counts


def error_kind(gold: set[str], predicted: set[str]) -> str | None:
    """The `ERROR_KINDS` key of folded gold and predicted values of one label, or None where they agree."""
    if gold == predicted:
        return None
    if not predicted:
        return "missed"
    if not gold:
        return "spurious"
    if gold & predicted:
        return "partial"
    if any(g in p or p in g for g in gold for p in predicted):
        return "boundary"
    return "wrong"


def mismatches(gold_rows: Sequence[dict], predictions: Sequence[list[dict]]) -> Iterator[dict]:
    """One record per row and scored label where prediction and gold differ: {"id", "title", "label", "kind",
    "gold", "predicted"} (values as written in the gold row and the title), in row order."""
    if len(gold_rows) != len(predictions):
        raise ValueError(f"{len(predictions)} predictions for {len(gold_rows)} gold rows")
    for row, ents in zip(gold_rows, predictions):
        for label, values in row.get("labels", {}).items():
            if label not in SCORED_LABELS or values is None:
                continue
            texts = list(dict.fromkeys(e["text"] for e in ents if e["label"] == label and fold(e["text"])))
            kind = error_kind({fold(v) for v in values} - {""}, {fold(t) for t in texts})
            if kind is not None:
                yield {"id": row.get("id"), "title": row.get("title"), "label": label, "kind": kind,
                       "gold": list(values), "predicted": texts}


def count_kinds(records: Iterable[dict]) -> dict[str, dict[str, int]]:
    """label -> error kind -> rows, in `ERROR_KINDS` order."""
    counts: dict[str, dict[str, int]] = {}
    for record in records:
        kinds = counts.setdefault(record["label"], dict.fromkeys(ERROR_KINDS, 0))
        kinds[record["kind"]] += 1
    return counts


def score(gold_rows: Sequence[dict], predictions: Sequence[list[dict]]) -> dict:
    """{"labels": {label: counts and "rows", the rows that give the label}, "micro": counts over MICRO_LABELS,
    "rows": n}. A label no row gives is not scored: its counts are 0 and its "rows" 0."""
    if len(gold_rows) != len(predictions):
        raise ValueError(f"{len(predictions)} predictions for {len(gold_rows)} gold rows")
    totals = {label: Counts() for label in SCORED_LABELS}
    known = dict.fromkeys(SCORED_LABELS, 0)
    for row, ents in zip(gold_rows, predictions):
        for label, counts in row_counts(row.get("labels", {}), ents).items():
            totals[label].add(counts)
            known[label] += 1
    micro = Counts()
    for label in MICRO_LABELS:
        micro.add(totals[label])
    return {"rows": len(gold_rows), "labels": {k: v.as_dict() | {"rows": known[k]} for k, v in totals.items()},
            "micro": micro.as_dict()}


def format_table(name: str, result: dict) -> str:
    """A plain-text table of one file's scores; "–" for a label no gold row gives."""
    lines = [f"{name}  ({result['rows']} titles)", f"{'label':<10}{'P':>8}{'R':>8}{'F1':>8}{'tp':>7}{'fp':>7}{'fn':>7}"]
    for label, c in result["labels"].items():
        if c.get("rows", 1) == 0:
            lines.append(f"{label:<10}" + "".join(f"{'–':>8}" for _ in range(3)) + "".join(f"{'–':>7}" for _ in range(3)))
            continue
        lines.append(f"{label:<10}{c['precision']:>8.3f}{c['recall']:>8.3f}{c['f1']:>8.3f}{c['tp']:>7}{c['fp']:>7}"
                     f"{c['fn']:>7}")
    m = result["micro"]
    lines.append(f"{'micro BCM':<10}{m['precision']:>8.3f}{m['recall']:>8.3f}{m['f1']:>8.3f}{m['tp']:>7}{m['fp']:>7}"
                 f"{m['fn']:>7}")
    return "\n".join(lines)


def format_kinds(kinds: dict[str, dict[str, int]]) -> str:
    """A plain-text table of rows per label and error kind (`count_kinds`)."""
    lines = ["rows with errors  " + "".join(f"{k:>10}" for k in ERROR_KINDS)]
    for label, counts in kinds.items():
        lines.append(f"{label:<17}" + "".join(f"{counts[k]:>10}" for k in ERROR_KINDS))
    if not kinds:
        lines.append("(none)")
    return "\n".join(lines)
