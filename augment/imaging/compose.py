"""Putting a cut-out subject on a canvas: crop to the matte, scale, position, shadow, alpha-blend.

A layer is a uint8 RGB image and a float32 alpha in 0..1, both at canvas size; blending runs in OpenCV
(`blendLinear`), which keeps a 512 px composite at about a millisecond. Nothing here decides what to show (see the classic backend) or how backgrounds look (backdrop.py).
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

WHITE = (255, 255, 255)


@dataclasses.dataclass
class Cutout:
    """The subject cropped to its matte's bounding box, with a small margin."""

    rgb: np.ndarray  # uint8 (h, w, 3)
    alpha: np.ndarray  # float32 (h, w)


@dataclasses.dataclass
class Layer:
    rgb: np.ndarray  # uint8 (S, S, 3)
    alpha: np.ndarray  # float32 (S, S)

    def box(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) of the non-transparent pixels; blending and shadows work inside it only."""
        x, y, w, h = cv2.boundingRect((self.alpha > 0.0).astype(np.uint8))
        return x, y, x + w, y + h


def cutout(rgb: np.ndarray, alpha: np.ndarray, bbox: tuple[int, int, int, int], margin: float = 0.02) -> Cutout:
    x0, y0, x1, y1 = bbox
    h, w = alpha.shape
    pad = int(round(margin * max(x1 - x0, y1 - y0)))
    x0, y0, x1, y1 = max(0, x0 - pad), max(0, y0 - pad), min(w, x1 + pad), min(h, y1 + pad)
    return Cutout(rgb=rgb[y0:y1, x0:x1], alpha=alpha[y0:y1, x0:x1])


def place(cut: Cutout, size: int, fill: float, floor: float | None = None, dx: float = 0.0) -> Layer:
    """Scale the cutout so its longer side spans `fill` of the canvas; centre it, or stand it on `floor`.

    `floor` is the canvas height fraction where the subject's bottom rests (a studio floor line); `dx` shifts
    it horizontally by a fraction of the canvas.
    """
    h, w = cut.alpha.shape
    scale = fill * size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    rgb = cv2.resize(cut.rgb, (nw, nh), interpolation=interp)
    alpha = np.clip(cv2.resize(cut.alpha, (nw, nh), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
    x = (size - nw) // 2 + int(round(dx * size))
    y = (size - nh) // 2 if floor is None else int(round(floor * size)) - nh
    return paste(rgb, alpha, size, x, max(0, y))


def paste(rgb: np.ndarray, alpha: np.ndarray, size: int, x: int, y: int) -> Layer:
    """Put an (h, w) rgb/alpha pair at (x, y) on an empty canvas layer, clipping what falls outside."""
    layer = Layer(np.zeros((size, size, 3), np.uint8), np.zeros((size, size), np.float32))
    h, w = alpha.shape
    sx0, sy0 = max(0, -x), max(0, -y)
    dx0, dy0 = max(0, x), max(0, y)
    cw, ch = min(w - sx0, size - dx0), min(h - sy0, size - dy0)
    if cw > 0 and ch > 0:
        layer.rgb[dy0 : dy0 + ch, dx0 : dx0 + cw] = rgb[sy0 : sy0 + ch, sx0 : sx0 + cw]
        layer.alpha[dy0 : dy0 + ch, dx0 : dx0 + cw] = alpha[sy0 : sy0 + ch, sx0 : sx0 + cw]
    return layer


def contact_shadow(layer: Layer, strength: float = 0.35) -> np.ndarray:
    """A soft elliptical shadow under the subject's lowest part, as a darkening factor map (S, S) in 0..1."""
    size = layer.alpha.shape[0]
    shadow = np.zeros((size, size), np.float32)
    x, y, w, h = cv2.boundingRect((layer.alpha > 0.5).astype(np.uint8))
    if w == 0:
        return shadow
    centre = (x + w // 2, min(size - 1, y + h - 1))
    axes = (max(2, int(0.5 * w * 0.95)), max(2, int(0.035 * size)))
    q = 4  # drawn and blurred at a quarter of the canvas: it is a blur anyway
    small = np.zeros((size // q, size // q), np.float32)
    cv2.ellipse(small, (centre[0] // q, centre[1] // q), (max(1, axes[0] // q), max(1, axes[1] // q)), 0, 0, 360, strength, -1)
    small = cv2.GaussianBlur(small, (0, 0), max(1.0, size / 160))
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)


def flatten(background: np.ndarray, layer: Layer, shadow: np.ndarray | None = None) -> np.ndarray:
    """Blend the layer over a (S, S, 3) uint8 background, darkened by `shadow` first; uint8 out."""
    out = background
    if shadow is not None:
        out = cv2.blendLinear(out, np.zeros_like(out), 1.0 - shadow, shadow)
    else:
        out = out.copy()
    x0, y0, x1, y1 = layer.box()
    if x1 > x0 and y1 > y0:
        a = layer.alpha[y0:y1, x0:x1]
        out[y0:y1, x0:x1] = cv2.blendLinear(layer.rgb[y0:y1, x0:x1], out[y0:y1, x0:x1], a, 1.0 - a)
    return out


def pad_square(a: np.ndarray, fill: float | int = 0) -> np.ndarray:
    """`a` ((H, W) or (H, W, C)) centred on a square canvas of its longest side, the margins `fill`: what
    aligns two masks or frames a photo without distorting its aspect ratio."""
    h, w = a.shape[:2]
    side = max(h, w, 1)
    out = np.full((side, side) + a.shape[2:], fill, a.dtype)
    top, left = (side - h) // 2, (side - w) // 2
    out[top : top + h, left : left + w] = a
    return out


def solid(size: int, colour: tuple[int, int, int] = WHITE) -> np.ndarray:
    # Resizing one pixel is the fastest way to fill a uint8 canvas with a colour (numpy broadcasting is ~100x slower).
    return cv2.resize(np.array([[colour]], np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)


def dominant_colour(rgb: np.ndarray, alpha: np.ndarray) -> tuple[int, int, int]:
    """The median colour of the subject's opaque pixels (white when there are none)."""
    pixels = rgb[alpha > 0.5]
    if len(pixels) == 0:
        return WHITE
    return tuple(int(v) for v in np.median(pixels, axis=0))  # type: ignore[return-value]


def emblem(canvas: np.ndarray, text: str, colour: tuple[int, int, int], corner: str) -> np.ndarray:
    """A small round badge with up to two letters in an upper corner (Algorithm 3's brand accent)."""
    out = canvas.copy()
    size = out.shape[0]
    r = max(8, size // 14)
    cx = r + size // 24 if corner == "left" else size - r - size // 24
    cy = r + size // 24
    cv2.circle(out, (cx, cy), r, colour, -1, cv2.LINE_AA)
    ink = (255, 255, 255) if sum(colour) < 3 * 150 else (30, 30, 30)
    cv2.circle(out, (cx, cy), r - max(2, r // 8), ink, max(1, r // 14), cv2.LINE_AA)
    if text:
        scale = r / 24.0
        thick = max(1, int(round(r / 12)))
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_DUPLEX, scale, thick)
        cv2.putText(out, text, (cx - tw // 2, cy + th // 2), cv2.FONT_HERSHEY_DUPLEX, scale, ink, thick, cv2.LINE_AA)
    return out


def initials(brand: str) -> str:
    """Up to two capital letters of a brand name: "United Colors of Benetton" -> "UB", "Nike" -> "N"."""
    words = [w for w in brand.replace("-", " ").split() if w[:1].isalnum()]
    caps = [w[0].upper() for w in words if w[0].isupper() or w[0].isdigit()] or [w[0].upper() for w in words]
    if len(caps) > 2:
        caps = [caps[0], caps[-1]]
    return "".join(caps)
