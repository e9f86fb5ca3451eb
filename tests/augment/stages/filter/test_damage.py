"""The filter against deliberately damaged variants of real product photos (the bundled Myntra sample).

Every genuine variant the classic backend makes is scored as the filter stage scores it, and again after each
damage of testkit/damage.py (part of the product erased, a foreign mark, a blank image, the colours
shifted). bench/filter_damage.py runs the same measurement over a whole catalogue and prints the figures.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from testkit.damage import DAMAGES, applies, damage
from testkit.photos import product_photo

sys.path.insert(0, str(Path(__file__).resolve().parents[4] / "bench"))
import filter_damage  # noqa: E402


@pytest.fixture(scope="module")
def sample_rows():
    products = filter_damage.products_from_sample()[::4]  # 20 of the 80 sample products
    return filter_damage.measure(products, size=256)


@pytest.mark.slow
def test_damaged_variants_are_filtered_and_genuine_ones_kept(sample_rows):
    summary = filter_damage.summarise(sample_rows)
    assert summary["genuine"] >= 90 and summary["damaged"] >= 300
    for name in ("mark", "blank", "recolour"):
        assert summary["recall_per_damage"][name] >= 0.95, summary["recall_per_damage"]
    assert summary["recall_per_damage"]["erase"] >= 0.8, summary["recall_per_damage"]
    assert summary["genuine_filtered"] <= 0.06
    assert summary["precision"] >= 0.97


def test_each_damage_changes_the_image_and_erase_needs_a_whole_product():
    img, truth = product_photo()
    changed_share = {"erase": (0.3, 0.6), "mark": (0.03, 0.1), "blank": (0.9, 1.0), "recolour": (0.8, 1.0)}
    for name in DAMAGES:
        out = damage(img, "subject", name, seed=1)
        assert out.shape == img.shape and out.dtype == np.uint8
        changed = np.abs(out.astype(int) - img.astype(int)).sum(axis=2) > 30
        low, high = changed_share[name]
        assert low <= (changed & truth).sum() / truth.sum() <= high, name
    assert not applies("erase", "detail") and applies("blank", "detail")
    with pytest.raises(ValueError, match="does not apply"):
        damage(img, "logo", "erase", seed=1)


def test_erase_removes_a_large_part_of_the_product_only():
    img, truth = product_photo()
    out = damage(img, "subject", "erase", seed=3)
    changed = np.abs(out.astype(int) - img.astype(int)).sum(axis=2) > 30
    assert 0.3 < (changed & truth).sum() / truth.sum() < 0.6
    assert (changed & ~truth).sum() < 0.05 * truth.sum()
