"""The tune / held-out split of gold rows: by a hash of the id, 30 % held out."""
import hashlib

import pytest

from ner.split import is_heldout, select


def test_heldout_is_sha1_of_id_mod_10_below_3():
    for row_id in ("oamine-0", "wdc-16828130", "7"):
        expected = int(hashlib.sha1(row_id.encode()).hexdigest(), 16) % 10 < 3
        assert is_heldout(row_id) is expected


def test_parts_partition_the_rows():
    rows = [{"id": f"row-{i}"} for i in range(200)]
    tune, held = select(rows, "tune"), select(rows, "heldout")
    assert sorted(r["id"] for r in tune + held) == sorted(r["id"] for r in rows)
    assert not {r["id"] for r in tune} & {r["id"] for r in held}
    assert 40 <= len(held) <= 80


def test_unknown_part_is_an_error():
    with pytest.raises(ValueError, match="unknown part"):
        select([], "dev")
