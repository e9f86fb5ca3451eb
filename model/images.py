"""Image bytes -> normalised pixel tensors, for candidates (as they are) and queries (as a shopper shoots them).

A candidate image is padded to a square on white (product photos are framed on white; cropping would cut the
product) and resized. A query image is the same photo re-framed the way a second photo of the product would
differ: a random crop of 55-90 % of the area at a slightly changed aspect, a mirror flip half the time, and
brightness/contrast within +-20 %. Its randomness comes from the caller's `random.Random`, so evaluation queries
are fixed by product id. PIL and numpy only (no torchvision).
"""
from __future__ import annotations

import io
import random
from collections import OrderedDict

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps


class UndecodableImage(ValueError):
    """Image bytes PIL cannot decode: not an image, a format it does not read, or a truncated or damaged file."""


# What PIL raises on bytes it cannot decode (UnidentifiedImageError and "image file is truncated" are OSErrors).
DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)
CHECK_SIZE = 32  # decodable() decodes at about this size where the format can (JPEG's draft mode)


def decode(data: bytes) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        image = ImageOps.exif_transpose(image)
        return image.convert("RGB")
    except DECODE_ERRORS as exc:
        raise UndecodableImage(f"cannot decode image: {exc}") from exc


def decodable(data: bytes, pixels: bool = True) -> bool:
    """Whether `data` is an image PIL decodes: its header, and with `pixels` its pixel data too, at reduced size
    where the format allows (a JPEG decodes scaled down, so a truncated or damaged file is found for about half a
    full decode's cost). Readers skip products whose image fails, instead of failing in a batch later."""
    try:
        image = Image.open(io.BytesIO(data))
        if pixels:
            image.draft("RGB", (CHECK_SIZE, CHECK_SIZE))
            image.load()
        return True
    except DECODE_ERRORS:
        return False


def pad_square(image: Image.Image, fill=(255, 255, 255)) -> Image.Image:
    width, height = image.size
    side = max(width, height)
    if width == height:
        return image
    canvas = Image.new("RGB", (side, side), fill)
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


def candidate_view(image: Image.Image, size: int) -> Image.Image:
    return pad_square(image).resize((size, size), Image.BICUBIC)


class ViewCache:
    """Candidate views of encoded images, kept up to `budget` bytes of pixels (least recently used go first).

    A candidate view depends on the bytes and the size only, so training decodes each image (variants are
    512 px JPEGs, a candidate view is 64 px at the tiny size) once instead of once per epoch. The cached image
    is never modified by its readers."""

    def __init__(self, budget: int = 256 << 20):
        self.budget, self.used = budget, 0
        self.items: OrderedDict[tuple[int, int, int], Image.Image] = OrderedDict()

    def __call__(self, data: bytes, size: int) -> Image.Image:
        key = (hash(data), len(data), size)  # not the bytes themselves: the cache holds pixels only
        view = self.items.get(key)
        if view is not None:
            self.items.move_to_end(key)
            return view
        view = candidate_view(decode(data), size)
        cost = size * size * 3
        if cost <= self.budget:
            self.items[key] = view
            self.used += cost
            while self.used > self.budget:
                _, old = self.items.popitem(last=False)
                self.used -= old.width * old.height * 3
        return view


candidate_from_bytes = ViewCache()


def query_view(image: Image.Image, size: int, rng: random.Random) -> Image.Image:
    square = pad_square(image)
    side = square.size[0]
    area = rng.uniform(0.55, 0.9) * side * side
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    crop_w = min(side, int(round((area * aspect) ** 0.5)))
    crop_h = min(side, int(round((area / aspect) ** 0.5)))
    left = rng.randint(0, side - crop_w)
    top = rng.randint(0, side - crop_h)
    view = square.crop((left, top, left + crop_w, top + crop_h)).resize((size, size), Image.BICUBIC)
    if rng.random() < 0.5:
        view = ImageOps.mirror(view)
    view = ImageEnhance.Brightness(view).enhance(rng.uniform(0.8, 1.2))
    return ImageEnhance.Contrast(view).enhance(rng.uniform(0.8, 1.2))


def to_tensor(images: list[Image.Image], mean, std) -> torch.Tensor:
    """[B] PIL images of one size -> [B, 3, S, S] float32, normalised per channel."""
    array = np.stack([np.asarray(im, dtype=np.float32) for im in images]) / 255.0  # [B, S, S, 3]
    array = (array - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()
