"""Heuristic consistency scores: genuine views score high, other products and blanks low."""
from __future__ import annotations

import numpy as np

from augment.stages.filter import scoring
from testkit.photos import product_photo


def test_the_source_scores_itself_near_one():
    img, _ = product_photo()
    sig = scoring.signature(img)
    assert scoring.consistency("subject", sig, img) > 0.95


def test_another_shape_and_colour_scores_low():
    img, _ = product_photo()
    other, _ = product_photo(colour=(220, 200, 40), shape="ellipse", mark=None)
    assert scoring.consistency("subject", scoring.signature(img), other) < 0.35


def test_a_close_up_of_the_product_scores_high_and_one_of_another_low():
    img, _ = product_photo()
    other, _ = product_photo(colour=(30, 160, 60), mark=None)
    sig = scoring.signature(img)
    assert scoring.consistency("detail", sig, img[140:200, 80:140]) > 0.8
    assert scoring.consistency("detail", sig, other[140:200, 80:140]) < 0.2


def test_scores_stay_in_the_unit_interval_for_noise():
    img, _ = product_photo()
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    sig = scoring.signature(img)
    for kind in ("subject", "background", "angle", "logo", "detail"):
        assert 0.0 <= scoring.consistency(kind, sig, noise) <= 1.0


def test_shape_iou_ignores_position_and_scale():
    img, _ = product_photo(size=224)
    small = np.full((224, 224, 3), 255, np.uint8)
    shrunk, _ = product_photo(size=112)
    small[10:122, 90:202] = shrunk
    a, b = scoring.signature(img), scoring.signature(small)
    assert scoring.shape_iou(a, b) > 0.85
