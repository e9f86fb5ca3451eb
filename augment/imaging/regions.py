"""Where to zoom: the logo window (dense high-contrast edges) and a detail window (rich texture) elsewhere.

Both are square windows over the subject, scored on a small copy of the image with box filters (integral
images), so choosing them costs a few milliseconds. Logos, prints and labels are where sharp edges crowd; a
detail close-up wants fine texture (knit, stitching, grain) away from the logo, so the two variants show
different parts of the product.
"""
from __future__ import annotations

import cv2
import numpy as np

from augment.imaging.mask import skin

Window = tuple[int, int, int]  # x, y of the top-left corner and the side, in source pixels

WORK_SIDE = 160


def _work(rgb: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    h, w = alpha.shape
    scale = min(1.0, WORK_SIDE / max(h, w))
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(alpha, size, interpolation=cv2.INTER_AREA)
    return rgb, alpha, scale


def best_window(score: np.ndarray, alpha: np.ndarray, side: int, min_inside: float, exclude: Window | None = None) -> Window:
    """The side x side window with the highest mean score among windows mostly inside the subject."""
    h, w = score.shape
    side = max(2, min(side, h, w))
    k = (side, side)
    mean_score = cv2.boxFilter(score, -1, k, normalize=True, borderType=cv2.BORDER_CONSTANT)
    inside = cv2.boxFilter(alpha, -1, k, normalize=True, borderType=cv2.BORDER_CONSTANT)
    # boxFilter centres the window: the value at (cy, cx) is the window centred there.
    half = side // 2
    valid = np.zeros_like(score, dtype=bool)
    valid[half : h - (side - half) + 1, half : w - (side - half) + 1] = True
    blocked = np.zeros_like(valid)
    if exclude is not None:
        ex, ey, es = exclude
        # Centres closer than 3/4 of the mean side on both axes mean heavily overlapping windows: not allowed.
        reach = int(0.75 * (es + side) / 2)
        ecx, ecy = ex + es // 2, ey + es // 2
        blocked[max(0, ecy - reach) : ecy + reach, max(0, ecx - reach) : ecx + reach] = True
    cand = np.where(valid & ~blocked & (inside >= min_inside), mean_score, -1.0)
    if cand.max() < 0:  # nothing qualifies: relax the inside rule, then the exclusion
        cand = np.where(valid & ~blocked, mean_score + inside, -1.0)
    if cand.max() < 0:
        cand = np.where(valid, mean_score + inside, -1.0)
    cy, cx = np.unravel_index(int(np.argmax(cand)), cand.shape)
    return int(cx) - half, int(cy) - half, side


class RegionFinder:
    """Score maps of one product, computed once, for choosing its logo and detail windows."""

    def __init__(self, rgb: np.ndarray, alpha: np.ndarray, bbox: tuple[int, int, int, int]):
        rgb_small, self.alpha, self.scale = _work(rgb, alpha)
        gray = cv2.cvtColor(rgb_small, cv2.COLOR_RGB2GRAY)
        x0, y0, x1, y1 = bbox
        self.subject = np.sqrt(max(1, (x1 - x0) * (y1 - y0))) * self.scale  # the subject's size, work pixels
        inside = self.alpha > 0.5
        # The silhouette's own outline is not a logo: only edges well inside the subject count.
        core = cv2.erode(inside.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))) > 0
        # Logos and prints differ in colour from the garment around them: edges count more where the colour is
        # far from the subject's median colour (a white swoosh on a blue cap, not the cap's stitching).
        lab = cv2.cvtColor(rgb_small, cv2.COLOR_RGB2Lab).astype(np.float32)
        median = np.median(lab[inside], axis=0) if inside.any() else lab.reshape(-1, 3).mean(axis=0)
        distinct = np.clip(np.sqrt(((lab - median) ** 2).sum(axis=2)) / 60.0, 0.0, 1.0)
        # Skin is not a mark: a hand in front of the product stands out from it too.
        self.distinct_px = distinct * core * ~skin(rgb_small)  # per pixel, for finding marks
        distinct = cv2.boxFilter(distinct, -1, (5, 5))
        self.edges = (cv2.Canny(gray, 60, 160) > 0).astype(np.float32) * core * (0.25 + distinct)
        texture = np.abs(cv2.Laplacian(gray.astype(np.float32), cv2.CV_32F, ksize=3)) * inside
        self.texture = texture / max(1e-6, float(texture.max()))

    def logo(self, fraction: float) -> Window:
        """A window around the most logo-like mark, else where high-contrast edges are densest.

        A mark is a compact blob whose colour stands out from the subject's median colour, between 0.05 % and
        8 % of the subject's area (a swoosh, a printed emblem, a label). The window is `fraction` of the
        subject's size, or larger when the mark needs it.
        """
        side = int(round(self.subject * fraction))
        mark = self._mark()
        if mark is None:
            return _to_source(best_window(self.edges, self.alpha, side, 0.6), self.scale)
        mx, my, mw, mh = mark
        h, w = self.alpha.shape
        side = min(max(side, int(1.8 * max(mw, mh))), h, w)
        x = int(np.clip(mx + mw / 2 - side / 2, 0, w - side))
        y = int(np.clip(my + mh / 2 - side / 2, 0, h - side))
        return _to_source((x, y, side), self.scale)

    def _mark(self) -> tuple[int, int, int, int] | None:
        area = float((self.alpha > 0.5).sum())
        n, labels, stats, _ = cv2.connectedComponentsWithStats((self.distinct_px > 0.5).astype(np.uint8), connectivity=8)
        strength = np.bincount(labels.ravel(), weights=self.distinct_px.ravel(), minlength=n)
        best, best_score = None, 0.0
        for i in range(1, n):
            x, y, bw, bh, a = stats[i]
            if not 0.0005 * area <= a <= 0.08 * area:
                continue
            compact = a / float(bw * bh)
            score = a**0.5 * (0.3 + compact) * float(strength[i] / a)
            if score > best_score:
                best, best_score = (int(x), int(y), int(bw), int(bh)), score
        return best

    def detail(self, zoom: float, exclude: Window | None = None) -> Window:
        """The most textured window of side subject/zoom, away from `exclude` (the logo window)."""
        ex = _to_work(exclude, self.scale) if exclude is not None else None
        side = int(round(self.subject / zoom))
        return _to_source(best_window(self.texture, self.alpha, side, 0.85, exclude=ex), self.scale)


def _to_work(window: Window, scale: float) -> Window:
    x, y, s = window
    return int(round(x * scale)), int(round(y * scale)), max(2, int(round(s * scale)))


def _to_source(window: Window, scale: float) -> Window:
    x, y, s = window
    return int(round(x / scale)), int(round(y / scale)), max(2, int(round(s / scale)))


def shows_detail(rgb: np.ndarray, alpha: np.ndarray, min_product: float = 0.6, min_texture: float = 15.0) -> bool:
    """Whether a close-up window shows the product with some texture: at least `min_product` of it is product
    and its mean absolute Laplacian (grey levels) reaches `min_texture`. A window of plain fabric or of
    backdrop is a blank close-up, which teaches a model nothing about the product."""
    if rgb.size == 0 or float(alpha.mean()) < min_product:
        return False
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(np.abs(cv2.Laplacian(gray, cv2.CV_32F, ksize=3)).mean()) >= min_texture
