"""What every image-variant backend shares: variant records, kinds, background choice and image storage.

Both the `classic` and the `diffusers` backend produce the same row contract, a list of `schema.VARIANT`
structs per product, through these functions, and the filter stage reads the pixels back through
`variant_bytes`. Storage: `inline` keeps the encoded bytes in the row; `uri` writes each image once to the
object store under a deterministic key (hash of product, kind, seed, model and prompt version), so a retried
shard overwrites the same objects instead of adding new ones. Nothing here draws pixels or loads models.
"""
from __future__ import annotations

import numpy as np

from augment.core import storage
from augment.core.schema import VARIANT_KINDS, Status
from augment.core.util import stable_hash

STORAGE_MODES = ("auto", "inline", "uri")
EXTENSIONS = {"jpeg": "jpg", "webp": "webp", "png": "png"}


def check_kinds(kinds: list[str], key: str) -> None:
    """Raise ValueError naming `key` when a kind is unknown or repeated."""
    unknown = [k for k in kinds if k not in VARIANT_KINDS]
    if unknown:
        raise ValueError(f"{key}: unknown variant kind {unknown[0]!r}; kinds are {', '.join(VARIANT_KINDS)}")
    if len(set(kinds)) != len(kinds):
        raise ValueError(f"{key}: a variant kind is listed twice: {kinds}")


def plan(kinds: list[str], backgrounds: int) -> list[tuple[str, int]]:
    """The (kind, index) items of one product in output order; `background` repeats `backgrounds` times."""
    items = []
    for kind in VARIANT_KINDS:
        if kind not in kinds:
            continue
        count = backgrounds if kind == "background" else 1
        items.extend((kind, i) for i in range(count))
    return items


def seed_key(kind: str, index: int) -> str:
    """The name a variant's seed is derived from: `background`, `background.1`, ... so each one differs."""
    return kind if index == 0 else f"{kind}.{index}"


def backgrounds_to_render(prompts: list[str] | None, count: int, seed: int) -> list[str | None]:
    """The product's background prompts that its `count` background variants render, chosen by `seed` (None
    entries where no prompts are given). Not the background_prompts stage's choice of descriptions
    (background_prompts/template.py), which writes the prompts this picks from.

    With fewer prompts than `count`, prompts repeat in the seeded order; each background variant still gets its
    own seed, so repeated prompts render differently.
    """
    usable = [p for p in (prompts or []) if p and p.strip()]
    if not usable:
        return [None] * count
    order = np.random.default_rng(seed).permutation(len(usable))
    return [usable[int(order[i % len(usable)])] for i in range(count)]


def record(
    kind: str,
    *,
    image: bytes | None = None,
    uri: str | None = None,
    fmt: str | None = None,
    width: int | None = None,
    height: int | None = None,
    prompt_id: str | None = None,
    prompt: str | None = None,
    model: str | None = None,
    seed: int | None = None,
    score: float | None = None,
    status: str = Status.OK.value,
) -> dict:
    """One variant as a dict with exactly the fields of schema.VARIANT."""
    return {
        "kind": kind,
        "image": image,
        "uri": uri,
        "format": fmt,
        "width": width,
        "height": height,
        "prompt_id": prompt_id,
        "prompt": prompt,
        "model": model,
        "seed": seed,
        "score": score,
        "status": status,
    }


def failed(kind: str, reason: str, *, model: str, seed: int, prompt_id: str | None = None, prompt: str | None = None) -> dict:
    """A variant that could not be produced: no image, status `failed:<reason>`."""
    return record(kind, model=model, seed=seed, prompt_id=prompt_id, prompt=prompt, status=Status.FAILED.because(reason))


def reason_code(exc: BaseException) -> str:
    """A short stable code for an exception: its class name in snake case (ValueError -> value_error)."""
    name = type(exc).__name__
    out = "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
    return out or "error"


class ImageSink:
    """Turns encoded images into the image/uri fields of a variant, inline or in the object store."""

    def __init__(self, mode: str, object_store_uri: str | None):
        if mode not in STORAGE_MODES:
            raise ValueError(f"image_storage: expected one of {', '.join(STORAGE_MODES)}, got {mode!r}")
        if mode == "auto":
            mode = "uri" if object_store_uri else "inline"
        if mode == "uri" and not object_store_uri:
            raise ValueError("image_storage is 'uri' but the run has no object store (context.object_store_uri)")
        self.mode = mode
        self.root = object_store_uri

    def key(self, product_id: str, kind: str, seed: int, model: str, version: str, fmt: str) -> str:
        digest = stable_hash(product_id, kind, seed, model, version, fmt, length=32)
        return f"{digest[:2]}/{digest}.{EXTENSIONS[fmt]}"

    def put(self, data: bytes, *, product_id: str, kind: str, seed: int, model: str, version: str, fmt: str) -> dict:
        """{"image": bytes, "uri": None} inline, or write the object and return {"image": None, "uri": ...}."""
        if self.mode == "inline":
            return {"image": data, "uri": None}
        uri = storage.join(self.root, self.key(product_id, kind, seed, model, version, fmt))
        storage.write_atomic(uri, data)
        return {"image": None, "uri": uri}


def variant_bytes(variant: dict) -> bytes | None:
    """The encoded image of a variant, from the row or from the object store; None when it has none."""
    if variant.get("image"):
        return variant["image"]
    if variant.get("uri"):
        return storage.read_bytes(variant["uri"])
    return None
