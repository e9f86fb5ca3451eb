"""The `classic` image_variants backend: five real, visibly different product images with OpenCV, no models.

Per product, from the validated source image (`_image`):
- subject:    the product cut out on white (Algorithm 1's standardised main-subject image);
- background: the subject standing on a generated backdrop whose style and palette follow a background prompt
              chosen by seed from `background_prompts` (Algorithm 7), or a seeded preset when there are none;
- angle:      the subject turned about its vertical axis by a seeded yaw, with a small roll (Algorithm 2);
- logo:       the most edge-dense region (logos, prints, labels) enlarged on a soft backdrop tinted by the
              product's colour (Algorithm 3); `logo_badge: true` adds a round badge of the brand's initials;
- detail:     a 2-3x close-up of the most textured region away from the logo (Algorithm 4); a product whose
              best window is flat (a plain white skirt) gets `failed:no_detail` instead of a blank close-up.
Every random choice comes from `context.seed(product_id, kind)`, so reruns on one machine are byte-identical. An
operation that fails on one product yields that variant with status `failed:<reason>`; it never stops the batch.
This module must stay free of torch and of any model code: it is the CPU default.
"""
from __future__ import annotations

import dataclasses
import logging

import cv2
import numpy as np

from augment.stages import variants
from augment.core.config import ConfigError
from augment.core.names import WORK_IMAGE
from augment.imaging import backdrop, codec, compose, geometry, regions
from augment.imaging.mask import subject_mask
from augment.core.schema import VARIANT_KINDS
from augment.stages.base import Batch, Stage, StageResult

log = logging.getLogger(__name__)

MODEL = "classic"
VERSION = "classic.v2"  # bump when an operation changes its pixels: it is part of the object-store key


@dataclasses.dataclass
class ClassicOptions:
    size: int = 512  # output canvas side in pixels
    backgrounds: int = 1  # background variants per product
    kinds: list[str] = dataclasses.field(default_factory=lambda: list(VARIANT_KINDS))
    subject_fill: float = 0.82  # the subject's longer side as a fraction of the canvas
    remove_people: bool = True  # cut models (head, skin) out of the subject mask
    yaw_degrees: list[float] = dataclasses.field(default_factory=lambda: [18.0, 32.0])  # |yaw| range
    logo_fraction: float = 0.42  # logo window side relative to the subject's size
    detail_zoom: list[float] = dataclasses.field(default_factory=lambda: [2.0, 3.0])  # close-up zoom range
    # A round badge of the brand's initials in an upper corner of the logo variant: a mark the product does not
    # carry, so off by default (it teaches the model a badge that no real photo of the product shows).
    logo_badge: bool = False
    image_storage: str = "auto"  # inline | uri | auto (uri when the run has an object store)

    def __post_init__(self) -> None:
        key = "stages.image_variants.options"
        if not 64 <= self.size <= 4096:
            raise ConfigError(f"{key}.size: expected 64..4096 pixels, got {self.size}")
        if not 0 <= self.backgrounds <= 10:
            raise ConfigError(f"{key}.backgrounds: expected 0..10, got {self.backgrounds}")
        if not 0.2 <= self.subject_fill <= 1.0:
            raise ConfigError(f"{key}.subject_fill: expected 0.2..1.0, got {self.subject_fill}")
        if not 0.1 <= self.logo_fraction <= 1.0:
            raise ConfigError(f"{key}.logo_fraction: expected 0.1..1.0, got {self.logo_fraction}")
        _check_range(self.yaw_degrees, 0.0, 60.0, f"{key}.yaw_degrees")
        _check_range(self.detail_zoom, 1.0, 6.0, f"{key}.detail_zoom")
        if self.image_storage not in variants.STORAGE_MODES:
            raise ConfigError(f"{key}.image_storage: expected one of {', '.join(variants.STORAGE_MODES)}, got {self.image_storage!r}")
        try:
            variants.check_kinds(self.kinds, f"{key}.kinds")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None


def _check_range(pair: list[float], lo: float, hi: float, key: str) -> None:
    if len(pair) != 2 or not lo <= pair[0] <= pair[1] <= hi:
        raise ConfigError(f"{key}: expected [low, high] with {lo} <= low <= high <= {hi}, got {pair}")


class ClassicVariantsStage(Stage):
    name = "image_variants"
    backend = "classic"
    reads = ("product_id", "title", WORK_IMAGE, "brand", "background_prompts")
    writes = ("variants",)
    options_cls = ClassicOptions

    def setup(self) -> None:
        self.sink = variants.ImageSink(self.options.image_storage, self.context.object_store_uri)
        cv2.setNumThreads(1)  # one product per core: Ray runs one task per CPU

    def process(self, batch: Batch) -> StageResult:
        if not hasattr(self, "sink"):
            self.setup()
        out = []
        for pid, image, brands, prompts in zip(
            batch["product_id"], batch[WORK_IMAGE], batch["brand"], batch["background_prompts"]
        ):
            out.append(self.product_variants(pid, image, brands or [], prompts or []))
        return StageResult(columns={"variants": out})

    # -----------------------------------------------------------------------------------------------------------
    def product_variants(self, product_id: str, image: bytes | None, brands: list[str], prompts: list[str]) -> list[dict]:
        """The variant records of one product, in `variants.plan` order; failures become failed records."""
        opts = self.options
        items = variants.plan(opts.kinds, opts.backgrounds)
        seeds = {item: self.context.seed(product_id, variants.seed_key(*item)) for item in items}
        try:
            rgb = codec.decode_rgb(image or b"")
            mask = subject_mask(rgb, remove_people=opts.remove_people)
            product = Product(rgb, mask.alpha, mask.bbox, brands)
        except Exception as exc:  # one bad product must not stop the batch
            reason = "image_undecodable" if image is None or isinstance(exc, ValueError) else variants.reason_code(exc)
            return [variants.failed(kind, reason, model=MODEL, seed=seeds[(kind, i)]) for kind, i in items]
        chosen = variants.backgrounds_to_render(prompts, opts.backgrounds, self.context.seed(product_id, "background_prompt"))
        records = []
        for kind, index in items:
            seed = seeds[(kind, index)]
            prompt = chosen[index] if kind == "background" else None
            try:
                pixels, prompt = self.render(kind, product, np.random.default_rng(seed), prompt)
                data = codec.encode(pixels, self.context.image_format, self.context.image_quality)
                where = self.sink.put(
                    data, product_id=product_id, kind=kind, seed=seed, model=MODEL, version=VERSION,
                    fmt=self.context.image_format,
                )
                records.append(
                    variants.record(
                        kind, **where, fmt=self.context.image_format, width=pixels.shape[1], height=pixels.shape[0],
                        prompt=prompt, model=MODEL, seed=seed,
                    )
                )
            except Exception as exc:  # noqa: BLE001 - a failed operation is recorded on its variant
                # A product with no texture to zoom into is an outcome (failed:no_detail, counted in the run's
                # summary), not something for the job log; any other failure is.
                log.log(logging.DEBUG if isinstance(exc, NoDetail) else logging.WARNING,
                        "classic %s variant of product %s failed: %s", kind, product_id, exc)
                records.append(variants.failed(kind, variants.reason_code(exc), model=MODEL, seed=seed, prompt=prompt))
        return records

    def render(self, kind: str, product: "Product", rng: np.random.Generator, prompt: str | None) -> tuple[np.ndarray, str | None]:
        """(RGB pixels, prompt actually used) of one variant kind."""
        return getattr(self, f"_{kind}")(product, rng, prompt)

    def _subject(self, p: "Product", rng, prompt):
        layer = p.centred(self.options)
        return compose.flatten(compose.solid(self.options.size), layer), None

    def _background(self, p: "Product", rng, prompt):
        size = self.options.size
        spec = backdrop.spec_from_prompt(prompt, rng)
        bg = backdrop.render(spec, size, rng)
        floor = backdrop.HORIZON + rng.uniform(0.12, 0.2) * (1 - backdrop.HORIZON)
        layer = compose.place(p.cutout, size, 0.7 * self.options.subject_fill / 0.82, floor=floor, dx=rng.uniform(-0.04, 0.04))
        return compose.flatten(bg, layer, compose.contact_shadow(layer, 0.3)), spec.description

    def _angle(self, p: "Product", rng, prompt):
        size = self.options.size
        lo, hi = self.options.yaw_degrees
        yaw = rng.uniform(lo, hi) * (1 if rng.random() < 0.5 else -1)
        roll = rng.uniform(-4.0, 4.0)
        layer = p.centred(self.options)
        bbox = layer.box()
        warped = geometry.warp_layer(layer, geometry.yaw_homography(bbox, yaw, roll))
        return compose.flatten(compose.solid(size), warped, compose.contact_shadow(warped, 0.12)), None

    def _logo(self, p: "Product", rng, prompt):
        size = self.options.size
        x, y, s = p.logo_window(self.options)
        crop = compose.Cutout(p.rgb[y : y + s, x : x + s], p.alpha[y : y + s, x : x + s])
        tint = compose.dominant_colour(p.rgb, p.alpha)
        light = tuple(int(v) for v in (np.asarray(tint) * 0.12 + 255 * 0.88))
        spec = backdrop.BackdropSpec("gradient", light, tuple(int(v * 0.9) for v in light), "")
        bg = backdrop.render(spec, size, rng)
        canvas = compose.flatten(bg, compose.place(crop, size, 0.8))
        if self.options.logo_badge:
            canvas = compose.emblem(canvas, compose.initials(p.brands[0]) if p.brands else "", tint, "left" if rng.random() < 0.5 else "right")
        return canvas, None

    def _detail(self, p: "Product", rng, prompt):
        size = self.options.size
        x, y, s = p.regions.detail(rng.uniform(*self.options.detail_zoom), exclude=p.logo_window(self.options))
        on_white = p.on_white()[y : y + s, x : x + s]
        if not regions.shows_detail(on_white, p.alpha[y : y + s, x : x + s]):
            raise NoDetail("the most textured window is flat or mostly off the product")
        zoomed = cv2.resize(on_white, (size, size), interpolation=cv2.INTER_CUBIC)
        # Upscaling softens edges; a mild unsharp mask brings back the texture the close-up is meant to show.
        blur = cv2.GaussianBlur(zoomed, (0, 0), 2.0)
        return cv2.addWeighted(zoomed, 1.4, blur, -0.4, 0), None


class NoDetail(Exception):
    """No window of the product has texture to show: the detail variant fails (`failed:no_detail`)."""


class Product:
    """One product's source pixels, subject matte and the lazily computed things several variants share."""

    def __init__(self, rgb: np.ndarray, alpha: np.ndarray, bbox: tuple[int, int, int, int], brands: list[str]):
        self.rgb, self.alpha, self.bbox, self.brands = rgb, alpha, bbox, brands
        self.cutout = compose.cutout(rgb, alpha, bbox)
        self._regions = None
        self._logo = None
        self._on_white = None
        self._centred = None

    @property
    def regions(self) -> regions.RegionFinder:
        if self._regions is None:
            self._regions = regions.RegionFinder(self.rgb, self.alpha, self.bbox)
        return self._regions

    def logo_window(self, opts: ClassicOptions) -> regions.Window:
        # Shared by the logo variant and the detail variant (which must look elsewhere): image-only, no seed.
        if self._logo is None:
            self._logo = self.regions.logo(opts.logo_fraction)
        return self._logo

    def centred(self, opts: ClassicOptions) -> compose.Layer:
        """The cut-out placed in the middle of the canvas: the subject and angle variants start from it (read-only)."""
        if self._centred is None:
            self._centred = compose.place(self.cutout, opts.size, opts.subject_fill)
        return self._centred

    def on_white(self) -> np.ndarray:
        if self._on_white is None:
            a = self.alpha[..., None]
            self._on_white = (self.rgb * a + 255.0 * (1 - a)).astype(np.uint8)
        return self._on_white
