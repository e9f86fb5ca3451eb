"""Backdrops from prompt words, logo/detail windows, yaw warps, badges."""
from __future__ import annotations

import numpy as np
import pytest

from augment.imaging import backdrop, compose, geometry
from augment.imaging.mask import subject_mask
from augment.imaging.regions import RegionFinder
from testkit.photos import product_photo


def rng(seed=0):
    return np.random.default_rng(seed)


@pytest.mark.parametrize(
    "prompt, style",
    [
        ("white marble countertop in soft daylight", "marble"),
        ("light oak wooden floor against a cream wall", "wood"),
        ("sunlit garden with blurred leaves", "bokeh"),
        ("pale grey concrete wall", "concrete"),
        ("seamless studio backdrop", "studio"),
    ],
)
def test_material_and_scene_words_pick_the_style(prompt, style):
    assert backdrop.spec_from_prompt(prompt, rng()).style == style


def test_colour_words_pick_the_palette_longest_name_first():
    spec = backdrop.spec_from_prompt("a sky blue studio wall", rng())
    assert spec.primary == backdrop.COLOURS["sky blue"]


def test_tone_words_shift_the_palette():
    plain = backdrop.spec_from_prompt("pink studio wall", rng())
    soft = backdrop.spec_from_prompt("soft pink studio wall", rng())
    dark = backdrop.spec_from_prompt("dark pink studio wall", rng())
    assert sum(dark.primary) < sum(plain.primary) < sum(soft.primary)


def test_no_usable_words_pick_a_seeded_preset():
    names = {backdrop.spec_from_prompt(None, rng(s)).description for s in range(40)}
    assert names <= {p[0] for p in backdrop.PRESETS} and len(names) > 3
    assert backdrop.spec_from_prompt("", rng(3)) == backdrop.spec_from_prompt(None, rng(3))


def test_rendered_backdrops_follow_their_palette_and_seed():
    pink = backdrop.render(backdrop.spec_from_prompt("pastel pink seamless paper", rng()), 64, rng(1))
    charcoal = backdrop.render(backdrop.spec_from_prompt("charcoal concrete wall", rng()), 64, rng(1))
    assert pink.shape == (64, 64, 3) and pink.dtype == np.uint8
    r, g, b = pink.reshape(-1, 3).mean(axis=0)
    assert r > g and r > b
    assert charcoal.mean() < 110 < pink.mean()
    spec = backdrop.spec_from_prompt("white marble", rng())
    assert np.array_equal(backdrop.render(spec, 64, rng(5)), backdrop.render(spec, 64, rng(5)))
    assert not np.array_equal(backdrop.render(spec, 64, rng(5)), backdrop.render(spec, 64, rng(6)))


def test_logo_window_covers_the_mark_and_detail_window_looks_elsewhere():
    img, truth = product_photo()
    mask = subject_mask(img)
    finder = RegionFinder(img, mask.alpha, mask.bbox)
    lx, ly, ls = finder.logo(0.42)
    # The synthetic mark (a dot and a bar) sits above the shirt's centre, near (112, 97).
    assert lx <= 100 and lx + ls >= 125 and ly <= 92 and ly + ls >= 102
    dx, dy, ds = finder.detail(2.5, exclude=(lx, ly, ls))
    assert dy + ds / 2 > ly + ls / 2 + 15  # the striped texture is in the lower part
    assert truth[dy : dy + ds, dx : dx + ds].mean() > 0.8


def test_yaw_foreshortens_and_makes_the_near_edge_taller():
    size = 100
    layer = compose.paste(np.full((40, 40, 3), 200, np.uint8), np.ones((40, 40), np.float32), size, 30, 30)
    warped = geometry.warp_layer(layer, geometry.yaw_homography((30, 30, 70, 70), 30.0))
    cols = np.nonzero((warped.alpha > 0.5).any(axis=0))[0]
    assert 30 <= len(cols) <= 37  # 40 * cos(30 deg) = 34.6
    left = (warped.alpha[:, cols[1]] > 0.5).sum()
    right = (warped.alpha[:, cols[-2]] > 0.5).sum()
    assert right > left + 4  # positive yaw brings the right edge forward


def test_badge_letters_and_corner():
    assert compose.initials("United Colors of Benetton") == "UB"
    assert compose.initials("Nike") == "N"
    assert compose.initials("ADIDAS") == "A"
    canvas = np.full((120, 120, 3), 255, np.uint8)
    left = compose.emblem(canvas, "N", (200, 30, 30), "left")
    assert left[:30, :30].mean() < 250 and left[:30, -30:].mean() == 255


def test_a_close_up_shows_detail_only_on_textured_product():
    from augment.imaging.regions import shows_detail

    rng = np.random.default_rng(0)
    textured = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
    flat = np.full((40, 40, 3), 246, np.uint8)
    product = np.ones((40, 40), np.float32)
    assert shows_detail(textured, product)
    assert not shows_detail(flat, product)  # plain white fabric: a blank close-up
    assert not shows_detail(textured, np.zeros((40, 40), np.float32))  # off the product
