"""Synthetic catalogue photos drawn in code, for tests and benchmarks that must not depend on real data.

A product photo here is a plain backdrop with a filled shape (a shirt-like silhouette, an ellipse or a box), a
high-contrast mark on it (a logo stand-in) and a striped texture patch elsewhere (a detail stand-in), optionally
with a model: a skin-coloured head and arms. `product_photo` returns the pixels and the ground truth of the
product's pixels; `product_jpeg` the JPEG the pipeline hands its stages; `photo_file` an image file as a catalogue
would hold it (any size, format and colour mode).
"""
from __future__ import annotations

import io

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
    width: int | None = None,
    height: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 photo, boolean product mask) of one synthetic product, `size` square unless `width` and
    `height` are given (the drawing is laid out on a 224 x 224 grid and stretched to the frame)."""
    w, h = width or size, height or size
    img = np.empty((h, w, 3), np.uint8)
    img[:] = backdrop
    mask = np.zeros((h, w), np.uint8)
    sx, sy = w / 224.0, h / 224.0
    s = min(sx, sy)  # sizes that must stay round (the mark) follow the shorter side
    if shape == "shirt":
        body = np.int32([[70, 60], [154, 60], [190, 95], [170, 115], [154, 100], [154, 200], [70, 200], [70, 100], [54, 115], [34, 95]])
        cv2.fillPoly(mask, [(body * np.array([sx, sy])).astype(np.int32)], 1)
    elif shape == "ellipse":
        cv2.ellipse(mask, (int(112 * sx), int(120 * sy)), (int(80 * sx), int(55 * sy)), 0, 0, 360, 1, -1)
    elif shape == "box":
        cv2.rectangle(mask, (int(50 * sx), int(70 * sy)), (int(174 * sx), int(180 * sy)), 1, -1)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    img[mask > 0] = colour
    if model:
        # Head above the collar and arms below the sleeves, in skin tone: the model the subject mask must cut.
        cv2.ellipse(img, (int(112 * sx), int(38 * sy)), (int(16 * sx), int(21 * sy)), 0, 0, 360, SKIN, -1)
        cv2.rectangle(img, (int(104 * sx), int(52 * sy)), (int(120 * sx), int(62 * sy)), SKIN, -1)
        for x in (40, 172):
            cv2.rectangle(img, (int((x - 6) * sx), int(108 * sy)), (int((x + 6) * sx), int(190 * sy)), SKIN, -1)
    ys, xs = np.nonzero(mask)
    if mark is not None and len(ys):
        cy, cx = int(ys.mean() - 0.15 * (ys.max() - ys.min())), int(xs.mean())
        cv2.circle(img, (cx - int(10 * s), cy), int(7 * s), mark, -1)
        cv2.rectangle(img, (cx, cy - int(3 * s)), (cx + int(18 * s), cy + int(3 * s)), mark, -1)
    if len(ys):
        # Stripes near the bottom: the texture a detail close-up should find.
        y0, y1 = int(ys.max() - 0.3 * (ys.max() - ys.min())), int(ys.max() - 0.05 * (ys.max() - ys.min()))
        dark = tuple(int(c * 0.6) for c in colour)
        for y in range(y0, y1, max(2, int(4 * sy))):
            row = mask[y] > 0
            img[y, row] = dark
    return img, mask > 0


def product_jpeg(**kwargs) -> bytes:
    """A synthetic product photo as JPEG bytes (the form `_image` has in the pipeline)."""
    img, _ = product_photo(**kwargs)
    return encode(img, "jpeg", 92)


def photo_file(width: int = 96, height: int = 128, colour: tuple[int, int, int] = (200, 40, 40), fmt: str = "JPEG",
               mode: str = "RGB") -> bytes:
    """A catalogue's image file: a `width` x `height` product photo on a light grey studio backdrop, in PIL
    format `fmt` (JPEG, PNG, WEBP...) and colour mode `mode` (RGB, CMYK, L, RGBA...)."""
    from PIL import Image

    rgb, _ = product_photo(colour=colour, backdrop=(236, 236, 236), width=width, height=height)
    image = Image.fromarray(rgb)
    if mode != "RGB":
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()
