"""Loading untrusted product images safely and normalising them for the stages.

What arrives as an "image" may be a truncated JPEG, an SVG or HTML page, a decompression bomb, a 16-bit or CMYK
file, an animated GIF or a photo stored sideways with an EXIF flag. `load_image_bytes` fetches bytes only from
allowed places; `normalise` turns bytes into one RGB working image or raises ImageRejected with a stable reason
code. Nothing here mutates PIL's global settings.
"""
from __future__ import annotations

import io
import os
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from augment.core import storage
from augment.core.names import Reason

ACCEPTED_FORMATS = {"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "MPO"}
OPENERS = sorted(ACCEPTED_FORMATS - {"MPO"})  # the only parsers that read a header (JPEG's opens MPO files too)


class ImageRejected(Exception):
    """An image the pipeline will not read; `reason` is a `Reason` (augment/core/names.py) as plain text."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else str(reason))
        self.reason = str(reason)
        self.detail = detail


def image_address(uri: str, base_uri: str) -> str:
    """Where the image `uri` of a row of the input file `base_uri` is: a relative path resolved against the
    file's folder (through symlinks), `file://` read as a path, an S3 address as storage reads it. ImageRejected
    for another scheme, a `..` segment in an S3 key, a relative path that leaves the input's bucket."""
    if "\x00" in uri:
        raise ImageRejected(Reason.IMAGE_NOT_FOUND, f"{uri!r}: no path or key holds a NUL character")
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        if uri[3:5] != "//":
            raise ImageRejected(Reason.IMAGE_URI_UNSUPPORTED, f"{uri!r}: an S3 address is s3://bucket/key")
        if ".." in uri[len("s3://"):].split("/"):  # S3 keeps `..` in a key as it is; a reader may not
            raise ImageRejected(Reason.IMAGE_PATH_OUTSIDE_ROOTS, f"{uri!r}: a `..` segment in an S3 key")
        return "s3://" + uri[len("s3://"):]  # the scheme as storage reads it (`S3://` would be a local path)
    if parsed.scheme == "file":
        uri = unquote(parsed.path)
    elif parsed.scheme == "data":
        raise ImageRejected(Reason.IMAGE_URI_UNSUPPORTED, "a data URL is read from the `image` column of a JSONL or "
                                                          "CSV file, as data:image/<type>;base64,<data>")
    elif parsed.scheme and len(parsed.scheme) > 1:
        raise ImageRejected(Reason.IMAGE_URI_UNSUPPORTED, f"scheme {parsed.scheme!r}: use a local path or s3://")
    if storage.is_s3(base_uri) and not os.path.isabs(uri):
        bucket, key = storage.split_s3(base_uri)
        resolved = os.path.normpath(os.path.join(os.path.dirname(key), uri))
        if resolved.startswith(".."):
            raise ImageRejected(Reason.IMAGE_PATH_OUTSIDE_ROOTS, f"{uri!r} leaves the input's bucket")
        return f"s3://{bucket}/{resolved}"
    base_dir = Path(base_uri).parent if not storage.is_s3(base_uri) else Path.cwd()
    return os.path.realpath(base_dir / uri)


def resolve_image_uri(uri: str, base_uri: str, allowed_roots: list[str], allowed_buckets: list[str]) -> str:
    """The image_address of `uri`, or ImageRejected when it is outside the allowed roots and buckets."""
    address = image_address(uri, base_uri)
    if storage.is_s3(address):
        bucket = urlparse(address).netloc  # "" for s3:///key: in no list
        if bucket not in allowed_buckets:
            raise ImageRejected(Reason.IMAGE_BUCKET_NOT_ALLOWED, f"bucket {bucket!r} is not in input.allowed_buckets")
        return address
    path = Path(address)
    for root in allowed_roots:
        root_path = Path(os.path.realpath(root))
        if path == root_path or root_path in path.parents:
            return str(path)
    raise ImageRejected(Reason.IMAGE_PATH_OUTSIDE_ROOTS, f"{uri!r} resolves outside input.allowed_roots")


def load_image_bytes(uri: str, max_bytes: int) -> bytes:
    """The bytes at `uri`, or ImageRejected with the reason; storage.StorageUnavailable when the store could not
    serve them now (the network, an overloaded S3): the product is not to be quarantined for it."""
    try:
        size = storage.size(uri)
    except FileNotFoundError:
        raise ImageRejected(Reason.IMAGE_NOT_FOUND, uri) from None
    except OSError as exc:
        _raise_unavailable(uri, exc)
        raise ImageRejected(Reason.IMAGE_UNREADABLE, f"{uri}: {exc}") from None
    if size is None or size < 0:
        if not storage.is_s3(uri) and os.path.exists(uri):
            raise ImageRejected(Reason.IMAGE_UNREADABLE, f"{uri}: not a regular file")
        raise ImageRejected(Reason.IMAGE_NOT_FOUND, uri)
    if size > max_bytes:
        raise ImageRejected(Reason.IMAGE_TOO_LARGE, f"{size} bytes > input.max_image_bytes {max_bytes}")
    try:
        return storage.read_bytes(uri)
    except (OSError, ValueError) as exc:
        _raise_unavailable(uri, exc)
        raise ImageRejected(Reason.IMAGE_UNREADABLE, f"{uri}: {exc}") from None


def _raise_unavailable(uri: str, exc: BaseException) -> None:
    if storage.unavailable(exc):
        detail = _first_line(exc)
        raise storage.StorageUnavailable(f"cannot fetch the image {uri} now ({detail}{storage.unreachable_hint(exc)}): "
                                         "its product is left for the resume, not quarantined") from exc


def normalise(data: bytes, max_pixels: int, min_side: int, max_side: int) -> Image.Image:
    """Decode untrusted bytes to an RGB image with EXIF orientation applied and longest side <= max_side."""
    if not data:
        raise ImageRejected(Reason.IMAGE_EMPTY, "zero bytes")
    try:
        image = Image.open(io.BytesIO(data), formats=OPENERS)
    except Image.DecompressionBombError as exc:
        raise ImageRejected(Reason.IMAGE_TOO_MANY_PIXELS, _bomb(exc, max_pixels)) from None
    except UnidentifiedImageError:
        raise ImageRejected(Reason.IMAGE_UNDECODABLE, f"not an image of an accepted format "
                                                       f"({', '.join(OPENERS)})") from None
    except (OSError, ValueError) as exc:
        raise ImageRejected(Reason.IMAGE_UNDECODABLE, _first_line(exc)) from None
    if image.format not in ACCEPTED_FORMATS:
        raise ImageRejected(Reason.IMAGE_UNDECODABLE, f"unsupported format {image.format}")
    width, height = image.size
    if width * height > max_pixels:
        raise ImageRejected(Reason.IMAGE_TOO_MANY_PIXELS, f"{width}x{height} > input.max_image_pixels {max_pixels}")
    if min(width, height) < min_side:
        raise ImageRejected(Reason.IMAGE_TOO_SMALL, f"{width}x{height} < input.min_image_side {min_side}")
    try:
        image.seek(0)  # animated: the first frame
        if image.format == "JPEG":
            image.draft("RGB", (max_side, max_side))  # decode big JPEGs at a reduced scale
        image.load()
        image = ImageOps.exif_transpose(image)
        rgb = to_rgb(image)
    except Image.DecompressionBombError as exc:
        raise ImageRejected(Reason.IMAGE_TOO_MANY_PIXELS, _bomb(exc, max_pixels)) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageRejected(Reason.IMAGE_UNDECODABLE, _first_line(exc)) from None
    if max(rgb.size) > max_side:
        rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        if min(rgb.size) < min_side:  # a strip (10000x10): nothing of it is left at the working size
            raise ImageRejected(Reason.IMAGE_TOO_SMALL, f"{width}x{height} is {rgb.width}x{rgb.height} at "
                                                        f"input.work_image_side {max_side}, under input.min_image_side "
                                                        f"{min_side}")
    return rgb


BLANK_LEVELS = 8  # an image whose every channel spans at most this many levels shows nothing


def blank_colour(rgb: Image.Image) -> tuple[int, int, int] | None:
    """The colour of an image that is one flat colour (every channel within BLANK_LEVELS: the white, grey or black
    placeholders shops show for a missing photo, a transparent PNG on white), else None. Nothing in it is a product:
    its variants would be flat frames that the scores pass."""
    low, high = zip(*rgb.getextrema())
    if max(h - lo for lo, h in zip(low, high)) > BLANK_LEVELS:
        return None
    return tuple(round((lo + h) / 2) for lo, h in zip(low, high))


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode to RGB: alpha composited on white, 16-bit and float scaled, CMYK and palettes converted."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float32)  # exact for 16-bit values, half the memory of float64
        if mode == "F":  # a float TIFF: NaN is no light; values of 0..1 (the usual float range) scale from 1
            array = np.nan_to_num(array, nan=0.0, posinf=0.0, neginf=0.0)
        peak = float(array.max()) if array.size else 0.0
        top = (65535.0 if mode.startswith("I;16") or peak > 255 else
               1.0 if mode == "F" and peak <= 1.0 else 255.0)
        gray = np.clip(array / top * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    if mode == "RGB":
        return image.copy() if image.readonly else image
    return image.convert("RGB")


def _bomb(exc: Image.DecompressionBombError, max_pixels: int) -> str:
    """What Pillow's own limit (twice its MAX_IMAGE_PIXELS) refused, in the terms of the config."""
    claimed = re.search(r"\((\d+) pixels\)", str(exc))
    return f"{claimed.group(1) if claimed else 'more'} pixels > input.max_image_pixels {max_pixels}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
