"""Consistency scores of a variant against its product's source image, in [0, 1], without models.

A cheap, explainable default for the filter stage. A variant must
pass every check that applies to its kind; its score is the lowest check score, each a linear ramp from 0
(certainly broken) to 1 (certainly fine) whose midpoint, 0.5, is the filter's default threshold:

- shape (subject, angle): the IoU of the two subject masks after alignment (each cropped to its bounding box,
  padded to a square and scaled to a common grid): a cut-out that lost part of the product, or shows another
  shape, scores low. Ramp 0.4 -> 0.8. A generated backdrop (marble veins, a floor line) defeats segmentation,
  so a background variant is matched instead (`placed_match`: the share of the product's pixels found again
  where its cut-out fits best), ramp 0.6 -> 0.85;
- colour: the histogram intersection of the subjects' Lab colours (subject, angle: 0.4 -> 0.8; background:
  0.2 -> 0.6); close-ups (logo, detail) show part of the product, so they are scored by the share of their
  colour the product has (0.5 -> 0.9): a recoloured product scores low;
- foreign marks: the share of the variant's product pixels (a close-up: all its pixels) in blobs of colours
  the source photo does not have at all (1 at 0, 0 at 2 %): a badge or letters the product does not carry;
- blank: the mean absolute Laplacian of the image (1 -> 6 grey levels): a close-up of plain backdrop, an empty
  canvas. A whole-product kind whose subject cannot be found scores 0 on shape.

`bench/filter_damage.py` measures precision and recall on real product photos with deliberately damaged
variants (testkit/damage.py). The heuristic cannot tell two products of the same colours and shape
apart, nor a mark drawn in the product's own colours. This module knows nothing about stages, rows or
storage; the CLIP scorer and the diffusers backend reuse it.
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
PALETTE_BINS = (8, 16, 16)  # finer Lab bins for "does the source have this colour at all"

# Check ramps (value at score 0, value at score 1); a variant's score is its lowest check score.
RAMPS = {
    "shape": (0.4, 0.8),
    "shape:background": (0.6, 0.85),
    "colour": (0.4, 0.8),
    "colour:background": (0.2, 0.6),
    "colour:close-up": (0.5, 0.9),
    "foreign": (0.02, 0.0),
    "texture": (1.0, 6.0),
}


@dataclasses.dataclass
class Signature:
    """What scoring needs from one image: its aligned subject mask and its subject colour histogram."""

    shape: np.ndarray  # float32 (GRID, GRID) in 0..1
    colours: np.ndarray  # float32 histogram over BINS, sums to 1
    coverage: float  # subject pixels / image pixels
    # Lab colours present anywhere in the image (PALETTE_BINS, grown by one bin); only for a source image
    palette: np.ndarray | None = None
    found: bool = True  # False: no subject could be told from a backdrop (the mask is the whole image)
    # The scoring-size image and its subject matte; only for a source image (backgrounds are matched with them)
    rgb: np.ndarray | None = None
    alpha: np.ndarray | None = None


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
    """The signature of a source photo (or a whole-product variant): subject shape and colours, and the
    palette of the whole photo (product, backdrop and wearer: what a variant may show without a foreign mark)."""
    small = resize_max(rgb, SCORE_SIDE)
    mask = subject_mask(small, remove_people=remove_people)
    sig = signature_from_mask(small, mask.alpha)
    return dataclasses.replace(sig, palette=palette(small), found=not mask.fallback, rgb=small, alpha=mask.alpha)


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


def palette(rgb: np.ndarray, weight: np.ndarray | None = None) -> np.ndarray:
    """Boolean (PALETTE_BINS) grid of the Lab colours present in `rgb` (where weight > 0.5), grown by one bin
    so that JPEG and resampling shifts stay inside."""
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)
    mask = None if weight is None else (weight > 0.5).astype(np.uint8)
    hist = cv2.calcHist([lab], [0, 1, 2], mask, list(PALETTE_BINS), [0, 256, 0, 256, 0, 256])
    present = hist > max(2.0, 1e-4 * float(hist.sum()))
    grown = present.copy()
    for axis in range(3):
        grown |= np.roll(present, 1, axis) | np.roll(present, -1, axis)
    return grown


def foreign_share(rgb: np.ndarray, region: np.ndarray, allowed: np.ndarray, min_blob: float = 0.004) -> float:
    """The share of `region`'s pixels in blobs of colours outside `allowed` (a palette grid): a mark the
    product does not carry. Blobs under `min_blob` of the region (JPEG specks, edge blends) do not count."""
    area = float(region.sum())
    if area == 0:
        return 0.0
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)
    index = [lab[..., c].astype(np.int32) * n // 256 for c, n in enumerate(PALETTE_BINS)]
    strange = ~allowed[index[0], index[1], index[2]] & region
    strange = cv2.morphologyEx(strange.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    _, _, stats, _ = cv2.connectedComponentsWithStats(strange, connectivity=8)
    sizes = stats[1:, cv2.CC_STAT_AREA]
    return float(sizes[sizes >= min_blob * area].sum() / area)


def placed_match(source: Signature, variant_rgb: np.ndarray, tolerance: float = 20.0) -> float:
    """The share of the source product's pixels found again in the variant, where the product fits best.

    The source's cut-out is slid over the variant at 24 scales (its longer side 30-95 % of the picture) and
    placed where the mean squared difference over its matte is lowest; the share of its matte pixels within
    `tolerance` (Lab distance) of the variant there is the score. A product pasted onto a new backdrop scores
    near 1; one with a part painted over scores about the share left; a recoloured or missing one near 0."""
    alpha = source.alpha > 0.5
    x0, y0, x1, y1 = bbox_of(alpha)
    # Both sides blurred a little: a pixel or two of misplacement must not count textured products as lost.
    cut = cv2.GaussianBlur(source.rgb, (0, 0), 1.2)[y0:y1, x0:x1].astype(np.float32)
    matte = cv2.erode(alpha[y0:y1, x0:x1].astype(np.uint8), np.ones((3, 3), np.uint8)).astype(np.float32)
    image = cv2.GaussianBlur(variant_rgb, (0, 0), 1.2).astype(np.float32)
    height, width = image.shape[:2]
    best = None
    for fill in np.geomspace(0.3, 0.95, 24):
        scale = fill * max(height, width) / max(cut.shape[:2])
        w, h = max(4, round(cut.shape[1] * scale)), max(4, round(cut.shape[0] * scale))
        if w > width or h > height:
            continue
        template = cv2.resize(cut, (w, h), interpolation=cv2.INTER_AREA)
        weight = cv2.resize(matte, (w, h), interpolation=cv2.INTER_NEAREST)
        if weight.sum() < 16:
            continue
        diff = cv2.matchTemplate(image, template, cv2.TM_SQDIFF, mask=np.dstack([weight] * 3))
        low, _, (x, y), _ = cv2.minMaxLoc(diff)
        if best is None or low / weight.sum() < best[0]:
            best = (low / weight.sum(), x, y, template, weight)
    if best is None:
        return 0.0
    _, x, y, template, weight = best
    patch = image[y : y + template.shape[0], x : x + template.shape[1]]
    lab = lambda a: cv2.cvtColor(a.astype(np.uint8), cv2.COLOR_RGB2Lab).astype(np.float32)  # noqa: E731
    distance = np.linalg.norm(lab(patch) - lab(template), axis=2)
    return float(((distance < tolerance) & (weight > 0)).sum() / weight.sum())


def texture(rgb: np.ndarray) -> float:
    """Mean absolute Laplacian of the grey image, in grey levels: a blank image has almost none."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(np.abs(cv2.Laplacian(gray, cv2.CV_32F, ksize=3)).mean())


def measurements(kind: str, source: Signature, variant_rgb: np.ndarray) -> dict[str, float]:
    """What a variant's checks read: shape (whole kinds), colour, foreign and texture."""
    small = resize_max(variant_rgb, SCORE_SIDE)
    allowed = source.palette if source.palette is not None else np.ones(PALETTE_BINS, bool)
    out = {"texture": texture(small)}
    if kind in WHOLE_KINDS:
        mask = subject_mask(small)
        region = mask.alpha > 0.5
        var = signature_from_mask(small, mask.alpha)
        if kind == "background" and source.rgb is not None:
            # A generated backdrop (marble veins, a floor line) defeats segmentation: find the product instead.
            out["shape"] = placed_match(source, small)
        else:
            out["shape"] = 0.0 if mask.fallback else shape_iou(source, var)
        out["colour"] = colour_overlap(source, var)
        if kind == "background":
            backdrop = palette(small, (~region).astype(np.float32))  # its own generated backdrop
        else:
            backdrop = palette(np.full((4, 4, 3), 255, np.uint8))  # the white canvas
        out["foreign"] = foreign_share(small, region, allowed | backdrop)
    else:
        var = whole_image_signature(small)
        out["colour"] = colour_containment(var, source)
        out["foreign"] = foreign_share(small, np.ones(small.shape[:2], bool), allowed)
    return out


def check_scores(kind: str, values: dict[str, float]) -> dict[str, float]:
    """Each check's score in [0, 1] from `measurements`, on the kind's ramp."""
    group = "background" if kind == "background" else ("close-up" if kind not in WHOLE_KINDS else "")
    out = {}
    for check, value in values.items():
        lo, hi = RAMPS.get(f"{check}:{group}", RAMPS[check])
        out[check] = float(np.clip((value - lo) / (hi - lo), 0.0, 1.0))
    return out


def consistency(kind: str, source: Signature, variant_rgb: np.ndarray) -> float:
    """The score of one variant image of `kind` against its product's source signature: its lowest check."""
    if kind in WHOLE_KINDS and not source.found:
        # Without a source subject there is no shape to compare: colours and marks only.
        values = measurements(kind, source, variant_rgb)
        values.pop("shape", None)
        return min(check_scores(kind, values).values())
    return min(check_scores(kind, measurements(kind, source, variant_rgb)).values())

