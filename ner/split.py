"""The fixed tune / held-out split of gold files: a row is held out when sha1(id) % 10 < 3 (30 %).

Everything that learns from gold rows (`ner.train`, lexicons mined from gold files) reads only the tune part,
and figures are reported on both parts, so the held-out figure measures titles the package never saw. The split
depends on the row id alone: it is the same on every machine and for every file.
"""
from __future__ import annotations

import hashlib

HELD_OUT_BUCKETS = 3  # of 10
PARTS = ("all", "tune", "heldout")


def is_heldout(row_id: object) -> bool:
    digest = hashlib.sha1(str(row_id).encode("utf-8")).hexdigest()
    return int(digest, 16) % 10 < HELD_OUT_BUCKETS


def select(rows: list[dict], part: str) -> list[dict]:
    """The rows of one part: "all", "tune" (70 %) or "heldout" (30 %)."""
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}; parts: {', '.join(PARTS)}")
    if part == "all":
        return list(rows)
    keep = part == "heldout"
    return [row for row in rows if is_heldout(row.get("id")) == keep]
