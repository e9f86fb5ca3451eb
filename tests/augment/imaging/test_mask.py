"""Subject masks of synthetic catalogue photos with known product pixels."""
from __future__ import annotations

import numpy as np
import pytest

from augment.imaging.mask import fill_holes, subject_mask
from testkit.photos import product_photo


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


@pytest.mark.parametrize("shape", ["shirt", "ellipse", "box"])
def test_a_coloured_product_on_white_is_segmented(shape):
    img, truth = product_photo(shape=shape)
    mask = subject_mask(img)
    assert iou(mask.alpha > 0.5, truth) > 0.97
    assert not mask.person_removed and not mask.fallback


def test_a_white_product_on_white_is_segmented():
    img, truth = product_photo(colour=(246, 246, 246), mark=(20, 20, 20))
    assert iou(subject_mask(img).alpha > 0.5, truth) > 0.85


def test_a_product_on_a_coloured_backdrop_is_segmented():
    img, truth = product_photo(colour=(30, 30, 30), backdrop=(200, 220, 240))
    assert iou(subject_mask(img).alpha > 0.5, truth) > 0.97


def test_a_model_head_and_arms_are_cut_from_the_subject():
    img, truth = product_photo(model=True)
    mask = subject_mask(img)
    assert mask.person_removed
    assert iou(mask.alpha > 0.5, truth) > 0.95
    assert (mask.alpha[10:50, 96:128] > 0.5).sum() == 0  # the head


def test_people_are_kept_when_removal_is_off():
    img, truth = product_photo(model=True)
    mask = subject_mask(img, remove_people=False)
    assert not mask.person_removed and (mask.alpha[20:50, 100:124] > 0.5).mean() > 0.9


def test_a_skin_toned_product_is_not_removed():
    img, truth = product_photo(colour=(224, 172, 140), mark=None)
    assert iou(subject_mask(img).alpha > 0.5, truth) > 0.95


def test_a_photo_without_backdrop_falls_back_to_the_whole_image():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    mask = subject_mask(img)
    assert mask.fallback and mask.alpha.min() == 1.0 and mask.bbox == (0, 0, 96, 96)


def test_matte_matches_the_source_resolution_and_range():
    img, _ = product_photo(size=400)
    mask = subject_mask(img)
    assert mask.alpha.shape == (400, 400) and mask.alpha.dtype == np.float32
    assert 0.0 <= mask.alpha.min() and mask.alpha.max() <= 1.0


def test_large_backdrop_holes_stay_open_and_small_ones_are_filled():
    ring = np.zeros((60, 60), bool)
    ring[10:50, 10:50] = True
    ring[20:40, 20:40] = False  # a handle's opening: 400 px of backdrop
    ring[12:14, 12:14] = False  # a speck: 4 px
    dist = np.full((60, 60), 50.0, np.float32)
    dist[20:40, 20:40] = 0.0
    filled = fill_holes(ring, dist, backdrop_below=4.0)
    assert not filled[30, 30] and filled[12, 12]
    assert fill_holes(ring)[30, 30]  # without distances every hole is filled


def test_a_hand_in_front_of_the_product_leaves_no_hole_in_it():
    img, truth = product_photo(model=True)
    hand = (slice(150, 172), slice(70, 96))  # skin over the shirt's lower left part, inside its outline
    img[hand] = (224, 172, 140)
    mask = subject_mask(img)
    assert mask.person_removed
    assert (mask.alpha[hand] > 0.5).mean() > 0.9  # kept: cutting it would erase product pixels
    assert (mask.alpha[10:50, 96:128] > 0.5).sum() == 0  # the head still goes
    assert (mask.alpha[120:180, 36:44] > 0.5).mean() < 0.1  # and the arm beside the shirt
