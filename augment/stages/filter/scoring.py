"""Consistency scores of a variant against its product's source image, in [0, 1], without models.

A cheap, explainable default for the filter stage and the inputs of Dynamic Sample Filtering:
- shape: the IoU of the two subject masks after alignment (each cropped to its bounding box and scaled to a
  common grid), for variants that show the whole product (subject, background, angle);
- colour: histogram intersection of the subjects' colours in Lab (soft-binned), for every kind; close-ups
  (logo, detail) show part of the product, so they are scored by how much of their colour the product has.
A generated image that lost the product, changed its colour or shows something else scores low. This module
knows nothing about stages, rows or storage; the CLIP scorer and the diffusers backend reuse it.
"""
from __future__ import annotations

import dataclasses
import io

import cv2
import numpy as np

from augment.imaging.codec import decode_rgb, resize_max
from augment.imaging.compose import pad_square
from augment.imaging.mask import bbox_of, subject_mask

SCORE_SIDE = 128  # images are scored at this size: shapes and colours need no more
GRID = 32  # aligned masks are compared on a GRID x GRID raster
BINS = (4, 8, 8)  # L, a, b histogram bins
WHOLE_KINDS = ("subject", "background", "angle")
SHAPE_WEIGHT = 0.5


@dataclasses.dataclass
class Signature:
    """What scoring needs from one image: its aligned subject mask and its subject colour histogram."""

    shape: np.ndarray  # float32 (GRID, GRID) in 0..1
    colours: np.ndarray  # float32 histogram over BINS, sums to 1
    coverage: float  # subject pixels / image pixels


def load(data: bytes, longest_side: int | None = None, keep: int = SCORE_SIDE) -> np.ndarray:
    """Decode an image for scoring, at the smallest JPEG reduction that keeps `keep` pixels on the longest side
    (SCORE_SIDE for the heuristic; a model scorer passes its own input size)."""
    if longest_side is None:
        from PIL import Image  # reads only the header here

        with Image.open(io.BytesIO(data)) as im:
            longest_side = max(im.size)
    reduce = 1
    while reduce < 8 and longest_side / (reduce * 2) >= keep:
        reduce *= 2
    return decode_rgb(data, reduce=reduce)


def signature(rgb: np.ndarray, remove_people: bool = True) -> Signature:
    small = resize_max(rgb, SCORE_SIDE)
    mask = subject_mask(small, remove_people=remove_people)
    return signature_from_mask(small, mask.alpha)


def signature_from_mask(rgb: np.ndarray, alpha: np.ndarray) -> Signature:
    inside = alpha > 0.5
    x0, y0, x1, y1 = bbox_of(inside)
    crop = alpha[y0:y1, x0:x1]
    shape = cv2.resize(pad_square(crop.astype(np.float32, copy=False)), (GRID, GRID), interpolation=cv2.INTER_AREA)
    return Signature(shape=shape, colours=colour_histogram(rgb, alpha), coverage=float(inside.mean()))


def whole_image_signature(rgb: np.ndarray) -> Signature:
    """A signature over every pixel (for close-ups, which have no backdrop to separate from)."""
    small = resize_max(rgb, SCORE_SIDE)
    return signature_from_mask(small, np.ones(small.shape[:2], np.float32))


def colour_histogram(rgb: np.ndarray, weight: np.ndarray) -> np.ndarray:
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)  # uint8 Lab: every channel in 0..255
    hist = cv2.calcHist([lab], [0, 1, 2], (weight > 0.5).astype(np.uint8), list(BINS), [0, 256, 0, 256, 0, 256])
    # Soft binning: a colour on a bin edge should not score zero against its neighbour.
    hist = cv2.GaussianBlur(hist.reshape(BINS[0], -1), (3, 3), 0.6).reshape(BINS)
    total = float(hist.sum())
    return (hist / total).astype(np.float32) if total > 0 else hist.astype(np.float32)


def shape_iou(a: Signature, b: Signature) -> float:
    inter = np.minimum(a.shape, b.shape).sum()
    union = np.maximum(a.shape, b.shape).sum()
    return float(inter / union) if union > 0 else 0.0


def colour_overlap(a: Signature, b: Signature) -> float:
    """Histogram intersection: the share of `a`'s colour mass that `b` also has."""
    return float(np.minimum(a.colours, b.colours).sum())


def colour_containment(part: Signature, whole: Signature, presence: float = 0.01) -> float:
    """The share of `part`'s colour mass in colours that make up at least `presence` of `whole`.

    A close-up may show a colour that is rare in the whole product (a logo's white on a blue cap); it is
    consistent as long as the product has that colour at all.
    """
    return float((part.colours * np.minimum(1.0, whole.colours / presence)).sum())


def consistency(kind: str, source: Signature, variant_rgb: np.ndarray) -> float:
    """The score of one variant image of `kind` against its product's source signature."""
    if kind == "background":
        # A generated backdrop can defeat segmentation, so the shape counts less; the product's colours must
        # all be somewhere in the picture.
        var = signature(variant_rgb)
        whole = whole_image_signature(variant_rgb)
        score = 0.25 * shape_iou(source, var) + 0.75 * colour_containment(source, whole)
    elif kind in WHOLE_KINDS:
        var = signature(variant_rgb)
        score = SHAPE_WEIGHT * shape_iou(source, var) + (1 - SHAPE_WEIGHT) * colour_overlap(source, var)
    else:
        var = signature(variant_rgb, remove_people=False)
        if var.coverage > 0.97 or var.coverage < 0.05:  # a close-up fills the frame: every pixel is product
            var = whole_image_signature(variant_rgb)
        score = colour_containment(var, source)
    return float(np.clip(score, 0.0, 1.0))

