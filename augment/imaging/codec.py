"""Decode image bytes to RGB arrays and encode images to JPEG / WebP / PNG bytes: the project's one codec.

Arrays (the variants, the scorer's inputs) go through OpenCV's codecs, for speed; PIL images (the validated
working image, reference backgrounds, report thumbnails: what decoding untrusted files yields) through Pillow's.
The encoders are deterministic for given pixels, quality and library build, which is what makes reruns
byte-identical; the two libraries give different bytes for the same pixels, so each kind of image keeps its
encoder.
"""
from __future__ import annotations

import io

import cv2
import numpy as np

FORMATS = {"jpeg": ".jpg", "webp": ".webp", "png": ".png"}


REDUCED = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


def decode_rgb(data: bytes, reduce: int = 1) -> np.ndarray:
    """Decode encoded image bytes to a (H, W, 3) uint8 RGB array; ValueError when they are not an image.

    `reduce` (1, 2, 4, 8) decodes at that fraction of the size; JPEG does it in the DCT, far faster than a
    full decode and a resize.
    """
    if not data:
        raise ValueError("empty image bytes")
    buf = np.frombuffer(data, dtype=np.uint8)
    bgr = cv2.imdecode(buf, REDUCED[reduce])
    if bgr is None or bgr.size == 0:
        raise ValueError("bytes are not a decodable image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def encode(rgb, fmt: str = "jpeg", quality: int = 90) -> bytes:
    """Encode an RGB image as `fmt` (jpeg | webp | png); quality applies to jpeg and webp. `rgb` is an (H, W, 3)
    uint8 array (OpenCV encodes it) or an RGB PIL image (Pillow does)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown image format {fmt!r}; formats are {', '.join(FORMATS)}")
    if not isinstance(rgb, np.ndarray):
        return _encode_pil(rgb, fmt, quality)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 array, got {rgb.dtype} {rgb.shape}")
    params: list[int] = []
    if fmt == "jpeg":
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    elif fmt == "webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, int(quality)]
    ok, buf = cv2.imencode(FORMATS[fmt], cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError(f"could not encode image as {fmt}")
    return buf.tobytes()


def _encode_pil(image, fmt: str, quality: int) -> bytes:
    buffer = io.BytesIO()
    if fmt == "jpeg":
        image.save(buffer, format="JPEG", quality=quality, optimize=False)
    elif fmt == "webp":
        image.save(buffer, format="WEBP", quality=quality, method=4)
    else:
        image.save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def resize_max(rgb: np.ndarray, side: int) -> np.ndarray:
    """Downscale so the longest side is at most `side` (never upscales)."""
    h, w = rgb.shape[:2]
    scale = side / max(h, w)
    if scale >= 1.0:
        return rgb
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
