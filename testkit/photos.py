"""Synthetic catalogue photos drawn in code, for tests and benchmarks that must not depend on real data.

A product photo here is a plain backdrop with a filled shape (a shirt-like silhouette, an ellipse or a box), a
high-contrast mark on it (a logo stand-in) and a striped texture patch elsewhere (a detail stand-in), optionally
with a model: a skin-coloured head and arms. The returned mask is the ground truth of the product's pixels.
"""
from __future__ import annotations

import cv2
import numpy as np

from augment.imaging.codec import encode

SKIN = (224, 172, 140)


def product_photo(
    colour: tuple[int, int, int] = (40, 80, 200),
    shape: str = "shirt",
    size: int = 224,
    backdrop: tuple[int, int, int] = (255, 255, 255),
    mark: tuple[int, int, int] | None = (250, 250, 250),
    model: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 photo, boolean product mask) of one synthetic product."""
    img = np.empty((size, size, 3), np.uint8)
    img[:] = backdrop
    mask = np.zeros((size, size), np.uint8)
    s = size / 224.0
    if shape == "shirt":
        body = np.int32([[70, 60], [154, 60], [190, 95], [170, 115], [154, 100], [154, 200], [70, 200], [70, 100], [54, 115], [34, 95]])
        cv2.fillPoly(mask, [(body * s).astype(np.int32)], 1)
    elif shape == "ellipse":
        cv2.ellipse(mask, (int(112 * s), int(120 * s)), (int(80 * s), int(55 * s)), 0, 0, 360, 1, -1)
    elif shape == "box":
        cv2.rectangle(mask, (int(50 * s), int(70 * s)), (int(174 * s), int(180 * s)), 1, -1)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    img[mask > 0] = colour
    if model:
        # Head above the collar and arms below the sleeves, in skin tone: the model the subject mask must cut.
        cv2.ellipse(img, (int(112 * s), int(38 * s)), (int(16 * s), int(21 * s)), 0, 0, 360, SKIN, -1)
        cv2.rectangle(img, (int(104 * s), int(52 * s)), (int(120 * s), int(62 * s)), SKIN, -1)
        for x in (40, 172):
            cv2.rectangle(img, (int((x - 6) * s), int(108 * s)), (int((x + 6) * s), int(190 * s)), SKIN, -1)
    ys, xs = np.nonzero(mask)
    if mark is not None and len(ys):
        cy, cx = int(ys.mean() - 0.15 * (ys.max() - ys.min())), int(xs.mean())
        cv2.circle(img, (cx - int(10 * s), cy), int(7 * s), mark, -1)
        cv2.rectangle(img, (cx, cy - int(3 * s)), (cx + int(18 * s), cy + int(3 * s)), mark, -1)
    if len(ys):
        # Stripes near the bottom: the texture a detail close-up should find.
        y0, y1 = int(ys.max() - 0.3 * (ys.max() - ys.min())), int(ys.max() - 0.05 * (ys.max() - ys.min()))
        dark = tuple(int(c * 0.6) for c in colour)
        for y in range(y0, y1, max(2, int(4 * s))):
            row = mask[y] > 0
            img[y, row] = dark
    return img, mask > 0


def product_jpeg(**kwargs) -> bytes:
    """A synthetic product photo as JPEG bytes (the form `_image` has in the pipeline)."""
    img, _ = product_photo(**kwargs)
    return encode(img, "jpeg", 92)
