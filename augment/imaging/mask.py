"""The subject mask of a product photo: which pixels are the product, as a soft alpha matte.

Catalogue photos are studio shots on a plain backdrop, often with a model wearing the item. The mask is built
in steps, all classic computer vision:
1. model the backdrop from the border pixels in Lab (one median per side, so gentle gradients are tolerated);
2. foreground = colour distance above a threshold learned from the border, plus strong edges (white-on-white);
3. close gaps, fill holes, keep the large connected components;
4. remove people: when the subject starts with a head (a narrow top with a face, then a neck, then shoulders),
   the head and all skin go; otherwise only limb-shaped skin goes. Either is undone when it would remove most
   of the subject (a beige or tan product), so products are not eaten by it.
It must not guess semantics beyond that (no category rules): a wrong cut is better than an invented one.
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from augment.imaging.codec import resize_max

WORK_SIDE = 256  # masks are computed at most at this size and upsampled: fast, and enough for 224px sources


@dataclasses.dataclass
class SubjectMask:
    alpha: np.ndarray  # float32 (H, W) in [0, 1] at the source resolution
    bbox: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive) of alpha > 0.5, at the source resolution
    person_removed: bool  # skin/head pixels were cut from the mask
    fallback: bool  # no clean backdrop found: the mask is the whole image


def subject_mask(rgb: np.ndarray, remove_people: bool = True) -> SubjectMask:
    """The soft subject mask of an RGB photo (see the module docstring for the steps)."""
    h, w = rgb.shape[:2]
    work = resize_max(rgb, WORK_SIDE)
    fg, dist, thr, white = foreground(work)
    fallback = False
    person = False
    area = fg.mean()
    if area < 0.005 or area > 0.97:
        fg = np.ones(fg.shape, dtype=bool)
        fallback = True
    else:
        if remove_people:
            fg, person = remove_person(work, fg)
        fg = matte(fg, dist, thr)
    alpha = soften(fg, (w, h))
    return SubjectMask(alpha=alpha, bbox=bbox_of(alpha > 0.5), person_removed=person, fallback=fallback)


def foreground(work: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, bool]:
    """(boolean foreground, backdrop distance, threshold used, white-on-white?) of a small RGB image."""
    lab = cv2.cvtColor(work.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    dist = backdrop_distance(lab)
    border = np.concatenate([dist[:3].ravel(), dist[-3:].ravel(), dist[:, :3].ravel(), dist[:, -3:].ravel()])
    # The border is mostly backdrop: its upper quartile measures backdrop noise (JPEG, gradients, shadows). Studio
    # shots on pure white have none, and then a very low threshold is what separates white products from it.
    thr = float(np.clip(1.5 + 1.5 * np.percentile(border, 75), 1.5, 30.0))
    gray = cv2.cvtColor(work, cv2.COLOR_RGB2GRAY)
    # Two passes. The strict one gives the silhouette of anything that stands out. The lenient one (faint
    # differences and edges, outline filled) is only trusted when the strict one found less than half of it:
    # a white product on white. Otherwise the lenient area is the light JPEG noise box many catalogue photos
    # carry around the product, which must not become part of the subject.
    strict_thr = max(thr, 8.0)
    fg = fill_holes(close(dist > strict_thr, 3), dist, 0.6 * strict_thr)
    lenient = fill_holes(close((dist > thr) | (cv2.Canny(gray, 40, 120) > 0), 5))
    white = bool(fg.sum() < 0.5 * lenient.sum())
    if white:
        fg |= erode(lenient, 5)  # eroded: its outline sits on JPEG ringing
    fg = open_(fg, 3)
    return keep_large_components(fg, 0.12), dist, (thr if white else strict_thr), white


def matte(fg: np.ndarray, dist: np.ndarray, thr: float) -> np.ndarray:
    """A float matte from the boolean mask: opaque inside; along the outline, as opaque as the pixel differs
    from the backdrop, so the light halo of JPEG ringing and soft shadows does not show on coloured backgrounds."""
    alpha = fg.astype(np.float32)
    ring = fg & ~erode(fg, 5)
    alpha[ring] = np.clip(dist[ring] / (2.0 * thr), 0.0, 1.0)
    return alpha


def backdrop_distance(lab: np.ndarray) -> np.ndarray:
    """Per-pixel Lab distance to the nearest backdrop colour, one per image side.

    A side whose median is far from the median of the whole border is covered by the subject (jeans cut off at
    the bottom edge) and is not a backdrop colour.
    """
    sides = (lab[:3].reshape(-1, 3), lab[-3:].reshape(-1, 3), lab[:, :3].reshape(-1, 3), lab[:, -3:].reshape(-1, 3))
    overall = np.median(np.concatenate(sides), axis=0)
    refs = [overall]
    for pixels in sides:
        ref = np.median(pixels, axis=0)
        near_backdrop = np.linalg.norm(ref - overall) < 12.0
        if near_backdrop and all(np.linalg.norm(ref - r) > 1.0 for r in refs):
            refs.append(ref)
    best = None
    ones = np.ones((1, 3), np.float32)
    for ref in refs:
        # OpenCV per-pixel arithmetic: an order of magnitude faster than numpy's reductions over channels.
        diff = cv2.subtract(lab, (float(ref[0]), float(ref[1]), float(ref[2]), 0.0))
        d = cv2.sqrt(cv2.transform(cv2.multiply(diff, diff), ones))
        best = d if best is None else np.minimum(best, d)
    return best


# ---------------------------------------------------------------------------------------------------------------
# People
# ---------------------------------------------------------------------------------------------------------------
def skin(work: np.ndarray) -> np.ndarray:
    """Boolean skin pixels: the YCrCb box of Chai & Ngan (1999), narrowed by hue and saturation so that
    saturated reds and oranges (a red backpack, an orange scarf) do not count."""
    ycc = cv2.cvtColor(work, cv2.COLOR_RGB2YCrCb)
    y, cr, cb = ycc[..., 0], ycc[..., 1], ycc[..., 2]
    hsv = cv2.cvtColor(work, cv2.COLOR_RGB2HSV)
    hue, sat = hsv[..., 0], hsv[..., 1]
    box = (cr >= 136) & (cr <= 173) & (cb >= 77) & (cb <= 127) & (y > 60) & (y < 245)
    return box & ((hue <= 20) | (hue >= 172)) & (sat >= 30) & (sat <= 170)


def remove_person(work: np.ndarray, fg: np.ndarray) -> tuple[np.ndarray, bool]:
    """Cut a model from the subject; returns (mask, changed).

    With a head found (see `find_neck`), everything above the neck and every skin pixel goes. Without one, only
    limb-like skin goes (upright, elongated skin blobs: legs under shorts, arms beside jeans), so that a red strap
    or a tan shoe, which the skin colour box also matches, stays.
    """
    sk = open_(skin(work) & fg, 3)
    fg_area = int(fg.sum())
    if fg_area == 0 or sk.sum() < 0.01 * fg_area:
        return fg, False
    # A model shows a face and more (neck, arms, legs): under 3.5 % skin is a product's skin-toned detail.
    neck = find_neck(sk, fg) if sk.sum() >= 0.035 * fg_area else None
    out = fg.copy()
    if neck is not None:
        out[:neck] = False
        cut = sk
        floor = 0.25
    else:
        cut = limbs(sk, fg_area)
        floor = 0.5
    if not cut.any() and neck is None:
        return fg, False
    out &= ~cv2.dilate(cut.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    out = open_(out, 3)
    # Skin in front of the product (a hand on the shorts, the neck inside a collar) stays: cutting it would
    # leave a hole where product pixels are hidden, and the cut-out must not lose the product's outline.
    restore = enclosed(fg & ~out, out, 0.2 * np.sqrt(fg_area))
    if neck is not None:
        restore[:neck] = False  # a face inside a hood or a collar still goes
    out |= restore
    out = keep_large_components(out, 0.2)
    # Guard: a product in skin tones (beige knitwear, tan leather) would mostly vanish; keep the plain mask then.
    if out.sum() < floor * fg_area:
        return fg, False
    return out, True


def enclosed(cut: np.ndarray, kept: np.ndarray, reach: float) -> np.ndarray:
    """The pixels of `cut` with `kept` pixels within `reach` in at least three of the four directions (left,
    right, up, down): holes and notches inside the kept outline, not limbs or a head beside or above it."""
    sides = 0
    for axis in (0, 1):
        for flip in (False, True):
            k = np.flip(kept, axis) if flip else kept
            index = np.arange(k.shape[axis], dtype=np.float32)
            index = index[:, None] if axis == 0 else index[None, :]
            last = np.maximum.accumulate(np.where(k, index, -np.inf), axis=axis)  # nearest kept before
            near = (index - last) <= reach
            sides = sides + (np.flip(near, axis) if flip else near)
    return cut & (sides >= 3)


def find_neck(sk: np.ndarray, fg: np.ndarray) -> int | None:
    """The row under a standing model's chin, or None when the subject does not start with a face.

    Scanning the skin down from the top of the subject: a face is the first skin run, filled with skin,
    narrower than 45 % of the subject, followed by a narrower neck or a collar (no skin). The chin is where the
    run narrows; a face taller than 2x its width is not a face.
    """
    x0, y0, x1, y1 = bbox_of(fg)
    bw, bh = x1 - x0, y1 - y0
    if bh < 40 or bh < 0.8 * bw:
        return None
    limit = y0 + int(0.35 * bh)
    min_run = max(4, int(0.04 * bw))
    start, cx = None, 0
    for r in range(y0, y0 + int(0.12 * bh)):
        run = _run_near(sk[r], None, min_run)
        if run is not None:
            start, cx = r, (run[0] + run[1]) // 2
            break
    # A face is on the subject's vertical axis; skin at the top corners is hands or arms.
    if start is None or abs(cx - (x0 + x1) / 2) > 0.15 * bw:
        return None
    widths = []
    for r in range(start, limit):
        run = _run_near(sk[r], cx, 1)
        if run is None:
            widths.append(0)
            continue
        widths.append(run[1] - run[0])
        cx = (run[0] + run[1]) // 2
    widths = np.array(widths, dtype=np.float32)
    face_w = float(widths[: max(6, int(0.05 * bh))].max())
    if face_w < 0.05 * bw or face_w > 0.45 * bw:
        return None
    below = np.flatnonzero(widths[int(0.8 * face_w) :] < 0.75 * face_w)
    if len(below) == 0:
        return None
    chin = int(0.8 * face_w) + int(below[0])
    if chin > 2.0 * face_w:
        return None
    fill = sk[start : start + chin].sum() / max(1.0, face_w * chin)
    if fill < 0.5:
        return None
    return start + chin + 1


def _run_near(row: np.ndarray, cx: int | None, min_len: int) -> tuple[int, int] | None:
    """The run of True in `row` containing (or nearest to) column cx, or the first run of min_len when cx is None."""
    padded = np.concatenate([[False], row, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    runs = [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2]) if b - a >= min_len]
    if not runs:
        return None
    if cx is None:
        return runs[0]
    return min(runs, key=lambda ab: 0 if ab[0] <= cx < ab[1] else min(abs(ab[0] - cx), abs(ab[1] - cx)))


def limbs(sk: np.ndarray, fg_area: int) -> np.ndarray:
    """Skin blobs shaped like legs or arms: at least 1 % of the subject, upright, elongated, thick and solid.

    Thin or hollow skin-coloured blobs are JPEG blends along red or brown outlines, not limbs.
    """
    n, labels, stats, _ = cv2.connectedComponentsWithStats(sk.astype(np.uint8), connectivity=8)
    keep = np.zeros(n, dtype=bool)
    min_thickness = 0.05 * np.sqrt(fg_area)
    for i in range(1, n):
        area = stats[i, cv2.CC_STAT_AREA]
        if area < 0.01 * fg_area:
            continue
        x, y, w, h = stats[i, :4]
        ys, xs = np.nonzero(labels[y : y + h, x : x + w] == i)
        (_, _), (rw, rh), angle = cv2.minAreaRect(np.stack([xs, ys], axis=1).astype(np.float32))
        long_side, short_side = max(rw, rh), max(1.0, min(rw, rh))
        # minAreaRect's angle is that of the side it calls width; the long side's tilt from vertical:
        tilt = abs(angle) if rh >= rw else 90.0 - abs(angle)
        solid = area / (long_side * short_side)
        if long_side / short_side >= 2.2 and tilt <= 35.0 and short_side >= min_thickness and solid >= 0.5:
            keep[i] = True
    return keep[labels]


# ---------------------------------------------------------------------------------------------------------------
# Morphology helpers
# ---------------------------------------------------------------------------------------------------------------
def _kernel(size: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def close(mask: np.ndarray, size: int) -> np.ndarray:
    return cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, _kernel(size)).astype(bool)


def open_(mask: np.ndarray, size: int) -> np.ndarray:
    return cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, _kernel(size)).astype(bool)


def erode(mask: np.ndarray, size: int) -> np.ndarray:
    return cv2.erode(mask.astype(np.uint8), _kernel(size)).astype(bool)


def fill_holes(mask: np.ndarray, dist: np.ndarray | None = None, backdrop_below: float = 0.0) -> np.ndarray:
    """Fill regions not connected to the image border, except large ones of backdrop colour.

    A hole is backdrop seen through the product (inside a bag handle, between an arm and the body) when it is
    at least 2 % of the subject and its median backdrop distance is below `backdrop_below`; a small light hole
    is part of the product (a white logo on a cap). Without `dist`, every hole is filled.
    """
    h, w = mask.shape
    padded = np.zeros((h + 2, w + 2), np.uint8)
    padded[1:-1, 1:-1] = mask
    cv2.floodFill(padded, np.zeros((h + 4, w + 4), np.uint8), (0, 0), 1)
    holes = padded[1:-1, 1:-1] == 0
    if dist is not None and holes.any():
        n, labels, stats, _ = cv2.connectedComponentsWithStats(holes.astype(np.uint8), connectivity=4)
        limit = 0.02 * (mask.sum() + holes.sum())
        for i in range(1, n):
            if stats[i, cv2.CC_STAT_AREA] >= limit:
                x, y, bw, bh = stats[i, :4]
                region = labels[y : y + bh, x : x + bw] == i
                if np.median(dist[y : y + bh, x : x + bw][region]) < backdrop_below:
                    holes[y : y + bh, x : x + bw] &= ~region
    return mask | holes


def keep_large_components(mask: np.ndarray, min_ratio: float) -> np.ndarray:
    """Keep connected components at least `min_ratio` times the largest one's area."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 2:
        return mask
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.zeros(n, dtype=bool)
    keep[1:] = areas >= min_ratio * areas.max()
    return keep[labels]


def soften(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A float alpha matte at `size` (w, h) with a one-pixel anti-aliased edge."""
    alpha = cv2.GaussianBlur(mask.astype(np.float32), (3, 3), 0)
    if (alpha.shape[1], alpha.shape[0]) != size:
        alpha = cv2.resize(alpha, size, interpolation=cv2.INTER_LINEAR)
    return alpha


def bbox_of(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Bounding box (x0, y0, x1, y1), end exclusive, of a boolean mask; the whole image when empty."""
    x, y, w, h = cv2.boundingRect(mask.astype(np.uint8))
    if w == 0 or h == 0:
        return 0, 0, mask.shape[1], mask.shape[0]
    return x, y, x + w, y + h
