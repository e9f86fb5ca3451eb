"""Thumbnails for the report: downscaled JPEG files written beside the pages, never full images inlined.

A thumbnail's file name is a hash of the source bytes and its size, so regenerating a report rewrites the same
files and two products sharing an image share a file. Source images are decoded with the same guards as the
validate stage (decompression bombs, undecodable bytes): a product image that cannot be shown becomes a
placeholder in the page, never an error.
"""
from __future__ import annotations

import hashlib
import logging
import posixpath

from augment.imaging import codec, untrusted
from augment.core import storage

log = logging.getLogger(__name__)
MAX_SOURCE_BYTES = 50_000_000
MAX_SOURCE_PIXELS = 80_000_000
QUALITY = 82


class Thumbnailer:
    """Writes thumbnails under `<report>/img/` and remembers which it wrote (to prune stale ones)."""

    def __init__(self, report_uri: str, subdir: str = "img"):
        self.report_uri = report_uri
        self.subdir = subdir
        self.written: set[str] = set()

    def from_bytes(self, data: bytes | None, side: int) -> str | None:
        """The thumbnail's path relative to the report folder, or None when `data` is not a usable image."""
        if not data:
            return None
        name = hashlib.sha256(data).hexdigest()[:20] + f"-{side}.jpg"
        relative = posixpath.join(self.subdir, name)
        if name in self.written:
            return relative
        try:
            image = untrusted.normalise(data, max_pixels=MAX_SOURCE_PIXELS, min_side=1, max_side=side)
        except untrusted.ImageRejected as exc:
            log.debug("no thumbnail: %s", exc)
            return None
        storage.write_atomic(storage.join(self.report_uri, self.subdir, name), codec.encode(image, "jpeg", QUALITY),
                              content_type="image/jpeg")
        self.written.add(name)
        return relative

    def from_uri(self, uri: str | None, side: int) -> str | None:
        if not uri:
            return None
        try:
            data = untrusted.load_image_bytes(uri, MAX_SOURCE_BYTES)
        except (untrusted.ImageRejected, storage.StorageUnavailable) as exc:  # a report of what can be shown now
            log.debug("no thumbnail for %s: %s", uri, exc)
            return None
        return self.from_bytes(data, side)

    def prune(self) -> int:
        """Delete thumbnails of earlier reports that this one no longer uses; returns how many."""
        folder = storage.join(self.report_uri, self.subdir)
        stale = [uri for uri in storage.list_files(folder, ".jpg") if posixpath.basename(uri) not in self.written]
        for uri in stale:
            storage.delete(uri)
        return len(stale)
