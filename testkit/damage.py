"""Deliberately damaged variants: the failures a variant generator makes, drawn onto genuine variant images.

The filter stage must mark these `filtered` and leave genuine variants `ok`; tests and
`bench/filter_damage.py` measure that on real product images (test support: nothing shipped imports it). Four damages, each seeded:

- `erase` (whole-product kinds: subject, background, angle): 35-55 % of the product's pixels painted over with
  the backdrop colour, either everything beyond a random line through the product or an ellipse inside it:
  a cut-out that lost part of the product;
- `mark`: a badge with letters, in a colour the product does not have, stamped on the product (whole kinds) or
  on the close-up: a mark the product does not carry. Its area is 4-8 % of the product (of the close-up);
- `blank`: the product gone: whole kinds keep only their backdrop (the product painted over); close-ups
  become a crop of plain catalogue backdrop;
- `recolour`: the product's colours shifted: its Lab chroma rotated by 90-270 degrees and pushed away from
  grey, so that black, white and grey products change colour too.

The product's pixels come from `subject_mask` of the variant (without people removal).
"""
from __future__ import annotations

import cv2
import numpy as np

from augment.imaging.mask import subject_mask

DAMAGES = ("erase", "mark", "blank", "recolour")
WHOLE_KINDS = ("subject", "background", "angle")
CLOSE_UP_KINDS = ("logo", "detail")

# Saturated mark colours; the one farthest from every product colour is used.
MARK_COLOURS = ((230, 30, 40), (20, 160, 60), (30, 80, 220), (250, 200, 0), (150, 40, 200), (0, 190, 200),
                (250, 120, 0), (240, 60, 170))


def applies(damage: str, kind: str) -> bool:
    """Whether `damage` is made for variants of `kind` (erase needs a whole product)."""
    if damage not in DAMAGES:
        raise ValueError(f"unknown damage {damage!r}; damages are {', '.join(DAMAGES)}")
    return damage != "erase" or kind in WHOLE_KINDS


def damage(rgb: np.ndarray, kind: str, name: str, seed: int) -> np.ndarray:
    """A damaged copy of the variant image `rgb` (uint8 RGB) of `kind`."""
    if not applies(name, kind):
        raise ValueError(f"damage {name!r} does not apply to {kind} variants")
    rng = np.random.default_rng(seed)
    product = _product(rgb, kind)
    return {"erase": _erase, "mark": _mark, "blank": _blank, "recolour": _recolour}[name](rgb, product, kind, rng)


def _product(rgb: np.ndarray, kind: str) -> np.ndarray:
    if kind in CLOSE_UP_KINDS:
        return np.ones(rgb.shape[:2], bool)
    return subject_mask(rgb, remove_people=False).alpha > 0.5


def _backdrop_colour(rgb: np.ndarray, product: np.ndarray) -> np.ndarray:
    outside = ~cv2.dilate(product.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    pixels = rgb[outside] if outside.sum() > 0.02 * outside.size else rgb.reshape(-1, 3)
    return np.median(pixels, axis=0).astype(np.uint8)


def _paint(rgb: np.ndarray, region: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """`region` painted in `colour`, with a soft two-pixel edge (a generator's erasure is not pixel-sharp)."""
    soft = cv2.GaussianBlur(region.astype(np.float32), (5, 5), 0)[..., None]
    return (rgb * (1 - soft) + colour[None, None, :].astype(np.float32) * soft).astype(np.uint8)


def _erase(rgb, product, kind, rng):
    ys, xs = np.nonzero(product)
    if len(ys) == 0:
        return rgb.copy()
    share = rng.uniform(0.35, 0.55)
    if rng.random() < 0.5:
        # Everything beyond a line: project the product's pixels on a random direction, cut the top share.
        theta = rng.uniform(0, 2 * np.pi)
        proj = xs * np.cos(theta) + ys * np.sin(theta)
        cut = np.quantile(proj, 1 - share)
        h, w = product.shape
        gy, gx = np.mgrid[0:h, 0:w]
        region = product & ((gx * np.cos(theta) + gy * np.sin(theta)) >= cut)
    else:
        # An ellipse inside the product, grown until it covers the share.
        i = rng.integers(len(ys))
        cy, cx = int(ys[i]), int(xs[i])
        ratio = rng.uniform(0.6, 1.6)
        region = product
        for radius in np.linspace(2, max(product.shape), 64):
            blob = np.zeros(product.shape, np.uint8)
            cv2.ellipse(blob, (cx, cy), (int(radius * ratio), int(radius)), float(rng.uniform(0, 180)), 0, 360, 1, -1)
            region = product & blob.astype(bool)
            if region.sum() >= share * product.sum():
                break
    region = cv2.dilate(region.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & cv2.dilate(
        product.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    return _paint(rgb, region, _backdrop_colour(rgb, product))


def _mark(rgb, product, kind, rng):
    out = rgb.copy()
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab).reshape(-1, 3).astype(np.float32)
    pixels = lab[product.reshape(-1)] if product.any() else lab
    pixels = pixels[rng.choice(len(pixels), min(len(pixels), 4000), replace=False)]
    options = cv2.cvtColor(np.uint8([MARK_COLOURS]), cv2.COLOR_RGB2Lab)[0].astype(np.float32)
    far = [float(np.min(np.linalg.norm(pixels - o, axis=1))) for o in options]
    colour = MARK_COLOURS[int(np.argmax(far))]
    area = rng.uniform(0.04, 0.08) * float(product.sum())
    ys, xs = np.nonzero(cv2.erode(product.astype(np.uint8), np.ones((15, 15), np.uint8)))
    if len(ys) == 0:
        ys, xs = np.nonzero(product)
    i = rng.integers(len(ys))
    cy, cx = int(ys[i]), int(xs[i])
    ink = (255, 255, 255) if sum(colour) < 450 else (20, 20, 20)
    if rng.random() < 0.5:
        r = int(round(np.sqrt(area / np.pi)))
        cv2.circle(out, (cx, cy), r, colour, -1, cv2.LINE_AA)
        half_w, half_h = r, r
    else:
        half_h = int(round(np.sqrt(area / 2.5) / 2))
        half_w = int(round(2.5 * half_h))
        cv2.rectangle(out, (cx - half_w, cy - half_h), (cx + half_w, cy + half_h), colour, -1, cv2.LINE_AA)
    letters = "".join(chr(int(c)) for c in rng.integers(65, 91, rng.integers(1, 4)))
    scale = max(0.3, half_h / 18.0)
    thick = max(1, int(round(half_h / 9)))
    (tw, th), _ = cv2.getTextSize(letters, cv2.FONT_HERSHEY_DUPLEX, scale, thick)
    cv2.putText(out, letters, (cx - tw // 2, cy + th // 2), cv2.FONT_HERSHEY_DUPLEX, scale, ink, thick, cv2.LINE_AA)
    return out


def _blank(rgb, product, kind, rng):
    if kind in CLOSE_UP_KINDS:
        # A crop of catalogue backdrop: near-white with JPEG-like noise and a faint gradient.
        h, w = rgb.shape[:2]
        base = rng.uniform(238, 252)
        gradient = np.linspace(0, rng.uniform(-6, 6), h, dtype=np.float32)[:, None, None]
        noise = rng.normal(0, 1.2, (h, w, 3)).astype(np.float32)
        return np.clip(base + gradient + noise, 0, 255).astype(np.uint8)
    region = cv2.dilate(product.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    return _paint(rgb, region, _backdrop_colour(rgb, product))


def _recolour(rgb, product, kind, rng):
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab).astype(np.float32)
    a, b = lab[..., 1] - 128, lab[..., 2] - 128
    theta = np.deg2rad(rng.uniform(90, 270))
    ra = a * np.cos(theta) - b * np.sin(theta)
    rb = a * np.sin(theta) + b * np.cos(theta)
    phi = rng.uniform(0, 2 * np.pi)
    push = rng.uniform(35, 50)  # chroma added in one direction: greys, black and white become coloured
    shifted = lab.copy()
    shifted[..., 1] = np.clip(ra + push * np.cos(phi) + 128, 0, 255)
    shifted[..., 2] = np.clip(rb + push * np.sin(phi) + 128, 0, 255)
    # Very light and very dark pixels hold little chroma in 8-bit RGB: bring them towards the mid-tones.
    shifted[..., 0] = np.clip(lab[..., 0] * 0.7 + 255 * 0.15, 0, 255)
    out = cv2.cvtColor(shifted.astype(np.uint8), cv2.COLOR_Lab2RGB)
    soft = cv2.GaussianBlur(product.astype(np.float32), (5, 5), 0)[..., None]
    return (out * soft + rgb * (1 - soft)).astype(np.uint8)
