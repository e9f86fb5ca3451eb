"""The first stage: decide which rows can be processed, and hand later stages one clean working image.

A row is rejected (quarantined with a reason) when it could not be parsed, repeats an earlier product_id, has
no usable title or no readable, decodable, reasonably sized image. Accepted rows get `_image`: the image as RGB
JPEG bytes, EXIF-rotated, alpha flattened on white, longest side capped. Configured under `input:` in the
config (limits, allowed roots and buckets); the runner builds the options from there.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import re

from augment.core import storage
from augment.core.names import DUPLICATE, PARSE_ERROR, SOURCE_URI, WORK_IMAGE, Reason
from augment.imaging import codec, untrusted
from augment.stages.base import Rejection, Stage, StageResult

# Characters that show nothing: controls, zero-width spaces and joiners, bidi marks and isolates, the byte order
# mark, the soft hyphen. A title or product_id of only these (and white space) is blank.
_INVISIBLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\xad"
                        r"\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
FETCH_THREADS = 16  # images read from S3 at once per validate actor (and held at once)


@dataclasses.dataclass
class ValidateOptions:
    """What a row must satisfy. Set under `input:` in the config (augment.config.InputConfig adds the column map);
    the runner resolves the allowed roots and buckets against the input's location (`from_input_config`)."""

    # Local directories that image paths may point into. Empty: the directory of the input file. A path that
    # resolves outside every root (../../etc/passwd, a symlink out) quarantines the row.
    allowed_roots: list[str] = dataclasses.field(default_factory=list)
    # s3 buckets image URIs may point into. Empty: only the input's own bucket, if it is on s3.
    allowed_buckets: list[str] = dataclasses.field(default_factory=list)
    max_image_bytes: int = 20_000_000
    max_image_pixels: int = 40_000_000  # declared width*height above this: decompression bomb, quarantined
    min_image_side: int = 8
    max_title_chars: int = 2_000
    # Working copy of the image handed to later stages: longest side capped at this, RGB, EXIF-rotated.
    work_image_side: int = 1024

    @classmethod
    def from_input_config(cls, input_config, input_uri: str) -> "ValidateOptions":
        """Options from the config's `input:` section; default roots/buckets are the input's own location."""
        roots = list(input_config.allowed_roots)
        buckets = list(input_config.allowed_buckets)
        if storage.is_s3(input_uri):
            buckets = buckets or [storage.split_s3(input_uri)[0]]
        elif not roots:
            roots = [input_uri if storage.is_dir(input_uri) else storage.parent(input_uri)]
        fields = {f.name for f in dataclasses.fields(cls)} - {"allowed_roots", "allowed_buckets"}
        return cls(allowed_roots=roots, allowed_buckets=buckets, **{k: getattr(input_config, k) for k in fields})


def split_reason(text: str) -> Rejection:
    """'wrong_type:title (int)' -> Rejection('wrong_type:title', 'int')."""
    code, _, rest = text.partition(" (")
    return Rejection(code.strip(), rest.rstrip(")"))


class ValidateStage(Stage):
    name = "validate"
    backend = "default"
    reads = ("product_id", "title", "image", "image_uri", PARSE_ERROR, DUPLICATE, SOURCE_URI)
    writes = (WORK_IMAGE,)
    options_cls = ValidateOptions

    def process(self, batch):
        n = len(batch["product_id"])
        work_images: list[bytes | None] = [None] * n
        rejects: list[Rejection | None] = [None] * n
        with concurrent.futures.ThreadPoolExecutor(max_workers=FETCH_THREADS) as pool:
            for start in range(0, n, FETCH_THREADS):  # at most FETCH_THREADS images held at once
                rows = range(start, min(n, start + FETCH_THREADS))
                fetched = self._fetch(batch, rows, pool)
                for i in rows:
                    try:
                        work_images[i] = self._validate_row(batch, i, fetched.get(i))
                    except untrusted.ImageRejected as exc:
                        rejects[i] = Rejection(exc.reason, exc.detail)
                    except _RowRejected as exc:
                        rejects[i] = exc.rejection
        return StageResult({WORK_IMAGE: work_images}, rejects)

    def _fetch(self, batch, rows: range, pool) -> dict[int, bytes | untrusted.ImageRejected]:
        """The image bytes (or why not) of the rows that name an image by URI: on S3 read side by side, since
        each read is a round trip or two; local files one after another."""
        o = self.options
        uris: dict[int, str] = {}
        out: dict[int, bytes | untrusted.ImageRejected] = {}
        for i in rows:
            if batch["image"][i] is None and batch["image_uri"][i] and not batch[PARSE_ERROR][i]:
                try:
                    uris[i] = untrusted.resolve_image_uri(batch["image_uri"][i], batch[SOURCE_URI][i],
                                                          o.allowed_roots, o.allowed_buckets)
                except untrusted.ImageRejected as exc:
                    out[i] = exc

        def load(uri: str) -> bytes | untrusted.ImageRejected:
            try:
                return untrusted.load_image_bytes(uri, o.max_image_bytes)
            except untrusted.ImageRejected as exc:
                return exc

        mapper = pool.map if any(storage.is_s3(uri) for uri in uris.values()) else map
        out.update(zip(uris, mapper(load, uris.values())))
        return out

    def _validate_row(self, batch, i: int, fetched: bytes | untrusted.ImageRejected | None) -> bytes:
        o = self.options
        if batch[PARSE_ERROR][i]:
            raise _RowRejected(split_reason(batch[PARSE_ERROR][i]))
        pid = batch["product_id"][i]
        if pid is None or not _INVISIBLE.sub("", pid).strip():
            raise _RowRejected(Rejection(Reason.MISSING_PRODUCT_ID, "product_id is null or blank"))
        if batch[DUPLICATE][i]:
            raise _RowRejected(Rejection(Reason.DUPLICATE_PRODUCT_ID, f"{pid!r} already occurred earlier in the input"))
        title = batch["title"][i]
        if title is None:
            raise _RowRejected(Rejection(Reason.MISSING_TITLE, "title is null"))
        if not _INVISIBLE.sub("", title).strip():
            raise _RowRejected(Rejection(Reason.EMPTY_TITLE, "title is empty or white space"))
        if len(title) > o.max_title_chars:
            raise _RowRejected(Rejection(Reason.TITLE_TOO_LONG, f"{len(title)} characters > input.max_title_chars {o.max_title_chars}"))
        data = batch["image"][i]
        if data is None:
            uri = batch["image_uri"][i]
            if not uri:
                raise _RowRejected(Rejection(Reason.MISSING_IMAGE, "neither image nor image_uri is set"))
            if isinstance(fetched, untrusted.ImageRejected):
                raise fetched
            data = fetched  # _fetch: resolved against the input file's folder, read within max_image_bytes
        elif len(data) > o.max_image_bytes:
            raise untrusted.ImageRejected(Reason.IMAGE_TOO_LARGE, f"{len(data)} bytes > input.max_image_bytes {o.max_image_bytes}")
        rgb = untrusted.normalise(data, o.max_image_pixels, o.min_image_side, o.work_image_side)
        colour = untrusted.blank_colour(rgb)
        if colour is not None:
            raise untrusted.ImageRejected(Reason.IMAGE_BLANK, f"every pixel is within {untrusted.BLANK_LEVELS} levels "
                                                              f"of RGB{colour}: a placeholder, no product")
        return codec.encode(rgb, "jpeg", 95)


class _RowRejected(Exception):
    def __init__(self, rejection: Rejection):
        super().__init__(rejection.reason)
        self.rejection = rejection
