"""Generated backgrounds for the background variant: a prompt's words -> a style and palette -> pixels.

The `classic` backend cannot render "a sunlit marble countertop", but it can honour its words: colour words pick
the palette ("warm beige", "pastel pink", "charcoal"), material and scene words pick the style (marble, wood,
concrete, an out-of-focus outdoor bokeh, a studio wall with a floor), and tone words shift it ("soft", "dark",
"warm"). Unknown words are ignored; with no usable word the seed picks a preset. Rendering is smooth by nature,
so it happens at a quarter of the canvas and is upsampled. Nothing here composites a subject (see compose.py).
"""
from __future__ import annotations

import dataclasses
import re

import cv2
import numpy as np

RGB = tuple[int, int, int]

# Multi-word names first: the longest phrase in the prompt wins over its parts ("sky blue" over "blue").
COLOURS: dict[str, RGB] = {
    "off white": (244, 241, 234), "warm white": (248, 243, 232), "light grey": (222, 222, 224),
    "light gray": (222, 222, 224), "warm beige": (226, 206, 178), "sky blue": (170, 206, 235),
    "baby blue": (190, 215, 238), "navy blue": (36, 48, 84), "dusty rose": (205, 160, 160),
    "soft pink": (244, 208, 214), "pastel pink": (246, 206, 216), "mint green": (190, 228, 206),
    "sage green": (178, 196, 164), "olive green": (128, 132, 84), "forest green": (52, 92, 64),
    "burnt orange": (204, 102, 51), "light wood": (214, 178, 132), "dark wood": (110, 72, 44),
    "white": (246, 246, 246), "ivory": (248, 244, 230), "cream": (242, 232, 210), "beige": (222, 204, 178),
    "sand": (220, 198, 160), "sandy": (220, 198, 160), "taupe": (184, 168, 152), "grey": (200, 200, 204),
    "gray": (200, 200, 204), "silver": (210, 212, 216), "charcoal": (64, 66, 70), "black": (30, 30, 32),
    "pink": (238, 186, 198), "blush": (240, 200, 196), "peach": (246, 204, 172), "coral": (240, 140, 120),
    "red": (196, 58, 52), "burgundy": (112, 32, 44), "lavender": (212, 200, 236), "lilac": (206, 186, 226),
    "purple": (120, 80, 150), "mint": (190, 228, 206), "sage": (178, 196, 164), "green": (120, 170, 110),
    "olive": (128, 132, 84), "teal": (60, 140, 140), "turquoise": (90, 200, 200), "aqua": (150, 220, 220),
    "blue": (110, 150, 210), "navy": (36, 48, 84), "yellow": (242, 216, 110), "mustard": (214, 170, 60),
    "gold": (212, 178, 96), "golden": (222, 188, 110), "orange": (236, 150, 80), "terracotta": (200, 110, 80),
    "brown": (140, 100, 70), "tan": (200, 160, 120), "caramel": (190, 130, 70), "wood": (170, 124, 80),
    "wooden": (170, 124, 80), "oak": (186, 142, 94), "walnut": (110, 76, 50), "marble": (236, 236, 234),
    "concrete": (176, 174, 170), "stone": (186, 180, 170), "linen": (232, 224, 208), "sunset": (246, 170, 120),
    "sky": (176, 210, 236), "ocean": (90, 150, 190), "sea": (100, 160, 196), "beach": (230, 210, 170),
    "grass": (110, 160, 90), "leaf": (110, 160, 90), "leaves": (110, 160, 90), "garden": (120, 165, 105),
    "forest": (70, 110, 76), "snow": (240, 244, 250), "winter": (224, 232, 242), "autumn": (204, 130, 70),
}
STYLES: dict[str, str] = {
    "marble": "marble", "granite": "marble", "countertop": "marble",
    "wood": "wood", "wooden": "wood", "oak": "wood", "walnut": "wood", "parquet": "wood", "plank": "wood",
    "planks": "wood", "floorboards": "wood", "table": "wood", "tabletop": "wood", "deck": "wood",
    "concrete": "concrete", "cement": "concrete", "stone": "concrete", "plaster": "concrete",
    "textured": "concrete", "linen": "concrete", "fabric": "concrete", "wall": "studio",
    "garden": "bokeh", "park": "bokeh", "outdoor": "bokeh", "outdoors": "bokeh", "street": "bokeh",
    "city": "bokeh", "cafe": "bokeh", "beach": "bokeh", "bokeh": "bokeh", "lights": "bokeh", "window": "bokeh",
    "sunlight": "bokeh", "sunlit": "bokeh", "nature": "bokeh", "leaves": "bokeh", "forest": "bokeh",
    "boutique": "bokeh", "interior": "bokeh", "room": "bokeh", "urban": "bokeh",
    "studio": "studio", "seamless": "studio", "backdrop": "studio", "paper": "studio", "floor": "studio",
    "gradient": "gradient", "minimal": "gradient", "minimalist": "gradient", "plain": "gradient",
    "solid": "gradient", "clean": "gradient",
}
LIGHTER = {"soft", "pastel", "light", "pale", "bright", "airy", "muted", "faded", "subtle", "gentle"}
DARKER = {"dark", "deep", "moody", "rich", "dramatic", "night", "shadowy"}
WARMER = {"warm", "cozy", "sunny", "golden", "sunset"}
COOLER = {"cool", "cold", "icy", "fresh", "crisp"}

PRESETS: tuple[tuple[str, str, RGB, RGB], ...] = (
    ("soft grey studio backdrop with a seamless floor", "studio", (226, 226, 228), (204, 204, 208)),
    ("warm beige studio backdrop with a seamless floor", "studio", (236, 222, 200), (214, 196, 170)),
    ("pastel pink gradient background", "gradient", (250, 226, 230), (232, 190, 200)),
    ("light blue gradient background", "gradient", (226, 238, 250), (180, 206, 232)),
    ("white marble surface", "marble", (240, 240, 238), (150, 150, 156)),
    ("light oak wooden floor against a cream wall", "wood", (242, 234, 218), (196, 152, 104)),
    ("pale grey concrete wall", "concrete", (212, 210, 206), (188, 186, 182)),
    ("soft green garden bokeh", "bokeh", (206, 226, 196), (140, 180, 120)),
)

# The palette of a style named without colour words ("a marble countertop").
STYLE_COLOURS: dict[str, tuple[RGB, RGB]] = {
    "studio": ((232, 232, 234), (208, 208, 212)),
    "gradient": ((244, 244, 246), (206, 208, 214)),
    "marble": ((240, 240, 238), (150, 150, 156)),
    "wood": ((242, 234, 218), (188, 140, 94)),
    "concrete": ((204, 202, 198), (170, 168, 164)),
    "bokeh": ((214, 226, 204), (150, 176, 140)),
}


@dataclasses.dataclass(frozen=True)
class BackdropSpec:
    style: str  # studio | gradient | marble | wood | concrete | bokeh
    primary: RGB  # the wall / main surface colour
    secondary: RGB  # floor, veins, grain or blur colour
    description: str  # the words it came from (the prompt, or the preset's name)


def spec_from_prompt(prompt: str | None, rng: np.random.Generator) -> BackdropSpec:
    """Read a background description's colour, material and tone words into a BackdropSpec."""
    text = (prompt or "").lower()
    words = re.findall(r"[a-z]+", text)
    if not words:
        return preset(rng)
    colours = _colours_in(" ".join(words))
    style = next((STYLES[w] for w in words if w in STYLES), None)
    if style is None and not colours:
        return preset(rng, description=prompt)
    style = style or ("studio" if rng.random() < 0.5 else "gradient")
    primary, secondary = STYLE_COLOURS[style]
    if colours:
        primary = colours[0]
        secondary = colours[1] if len(colours) > 1 else _shade(primary, 0.82)
        if style == "marble":
            secondary = _shade(primary, 0.6)
    tone = set(words)
    if tone & LIGHTER:
        primary, secondary = _mix(primary, (255, 255, 255), 0.45), _mix(secondary, (255, 255, 255), 0.35)
    if tone & DARKER:
        primary, secondary = _shade(primary, 0.6), _shade(secondary, 0.6)
    if tone & WARMER:
        primary, secondary = _mix(primary, (255, 190, 130), 0.15), _mix(secondary, (255, 190, 130), 0.15)
    if tone & COOLER:
        primary, secondary = _mix(primary, (150, 190, 255), 0.15), _mix(secondary, (150, 190, 255), 0.15)
    return BackdropSpec(style, primary, secondary, prompt or "")


def preset(rng: np.random.Generator, description: str | None = None) -> BackdropSpec:
    name, style, primary, secondary = PRESETS[int(rng.integers(len(PRESETS)))]
    return BackdropSpec(style, primary, secondary, description or name)


def _colours_in(text: str) -> list[RGB]:
    found: list[tuple[int, RGB]] = []
    taken = [False] * len(text)
    for name in sorted(COLOURS, key=len, reverse=True):
        for m in re.finditer(rf"\b{name}\b", text):
            if not any(taken[m.start() : m.end()]):
                found.append((m.start(), COLOURS[name]))
                for i in range(m.start(), m.end()):
                    taken[i] = True
    return [rgb for _, rgb in sorted(found)]


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))  # type: ignore[return-value]


def _shade(a: RGB, f: float) -> RGB:
    return tuple(int(round(x * f)) for x in a)  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------------------------
HORIZON = 0.68  # where the wall meets the floor, as a fraction of the canvas height


def render(spec: BackdropSpec, size: int, rng: np.random.Generator) -> np.ndarray:
    """A (size, size, 3) uint8 RGB background for `spec`; the same rng state gives the same pixels."""
    small = max(32, size // 4)
    painter = {
        "studio": _studio,
        "gradient": _gradient,
        "marble": _marble,
        "wood": _wood,
        "concrete": _concrete,
        "bokeh": _bokeh,
    }[spec.style]
    img = np.clip(painter(spec, small, rng) * _vignette(small), 0, 255).astype(np.uint8)
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_CUBIC)


def _ramp(n: int, a: RGB, b: RGB) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n, dtype=np.float32)[:, None]
    return np.asarray(a, np.float32) * (1 - t) + np.asarray(b, np.float32) * t


def _studio(spec: BackdropSpec, n: int, rng: np.random.Generator) -> np.ndarray:
    """A lit wall fading into a floor, joined by a soft curve (a seamless paper sweep)."""
    wall_top = _mix(spec.primary, (255, 255, 255), 0.25)
    column = np.concatenate(
        [_ramp(int(n * HORIZON), wall_top, spec.primary), _ramp(n - int(n * HORIZON), spec.secondary, _mix(spec.secondary, spec.primary, 0.6))]
    )
    img = np.repeat(column[:, None, :], n, axis=1)
    return cv2.GaussianBlur(img, (0, 0), n * 0.03)


def _gradient(spec: BackdropSpec, n: int, rng: np.random.Generator) -> np.ndarray:
    """A radial gradient: light behind the subject, the secondary colour at the corners."""
    cy, cx = n * (0.42 + 0.1 * rng.random()), n * (0.4 + 0.2 * rng.random())
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    r = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) / (0.85 * n)
    t = np.clip(r, 0, 1)[..., None] ** 1.5
    centre = np.asarray(_mix(spec.primary, (255, 255, 255), 0.3), np.float32)
    return centre * (1 - t) + np.asarray(spec.secondary, np.float32) * t


def _noise(n: int, rng: np.random.Generator, octaves: int = 4) -> np.ndarray:
    """Smooth fractal noise in [0, 1]: random grids of growing resolution, upsampled and summed."""
    out = np.zeros((n, n), np.float32)
    weight = 1.0
    total = 0.0
    for o in range(octaves):
        cells = 2 ** (o + 2)
        grid = rng.random((cells, cells)).astype(np.float32)
        out += weight * cv2.resize(grid, (n, n), interpolation=cv2.INTER_CUBIC)
        total += weight
        weight *= 0.5
    out /= total
    return (out - out.min()) / max(1e-6, float(out.max() - out.min()))


def _marble(spec: BackdropSpec, n: int, rng: np.random.Generator) -> np.ndarray:
    """Veined stone: thin dark lines where a turbulent sine crosses zero."""
    n2 = n * 2  # veins need more resolution than the other styles
    yy, xx = np.mgrid[0:n2, 0:n2].astype(np.float32) / n2
    angle = rng.uniform(0.3, 1.2)
    turb = _noise(n2, rng, 5)
    phase = (xx * np.cos(angle) + yy * np.sin(angle)) * rng.uniform(3.0, 6.0) + turb * 5.0
    veins = np.exp(-np.abs(np.sin(np.pi * phase)) * 9.0)[..., None]
    base = np.asarray(spec.primary, np.float32) * (0.96 + 0.08 * _noise(n2, rng, 3)[..., None])
    img = base * (1 - 0.55 * veins) + np.asarray(spec.secondary, np.float32) * 0.55 * veins
    return cv2.resize(img, (n, n), interpolation=cv2.INTER_AREA)


def _wood(spec: BackdropSpec, n: int, rng: np.random.Generator) -> np.ndarray:
    """A wall in the primary colour over a planked floor with grain in the secondary colour."""
    img = _studio(BackdropSpec("studio", spec.primary, spec.primary, ""), n, rng)
    h0 = int(n * HORIZON)
    fh = n - h0
    yy, xx = np.mgrid[0:fh, 0:n].astype(np.float32)
    grain = 0.5 + 0.5 * np.sin((yy / fh) * 60.0 + _noise(n, rng, 3)[:fh] * 6.0 + xx / n * 2.0)
    planks = ((xx / n * 5 + (yy / fh > 0.5) * 0.5) % 1.0 < 0.02).astype(np.float32)
    wood = np.asarray(spec.secondary, np.float32) * (0.85 + 0.15 * grain[..., None]) * (1 - 0.3 * planks[..., None])
    img[h0:] = wood
    return cv2.GaussianBlur(img, (3, 3), 0)


def _concrete(spec: BackdropSpec, n: int, rng: np.random.Generator) -> np.ndarray:
    """A flat wall with a mottled texture."""
    tex = _noise(n, rng, 5)[..., None]
    return np.asarray(spec.primary, np.float32) * (1 - 0.08 * tex) + np.asarray(spec.secondary, np.float32) * 0.08 * tex


def _bokeh(spec: BackdropSpec, n: int, rng: np.random.Generator) -> np.ndarray:
    """An out-of-focus scene: a two-colour blend with soft light discs."""
    img = _ramp(n, _mix(spec.primary, (255, 255, 255), 0.2), spec.secondary)
    img = np.repeat(img[:, None, :], n, axis=1).copy()
    layer = np.zeros((n, n), np.float32)
    for _ in range(int(rng.integers(10, 18))):
        centre = (int(rng.integers(0, n)), int(rng.integers(0, int(n * 0.8))))
        cv2.circle(layer, centre, int(rng.integers(max(2, n // 16), max(3, n // 6))), float(rng.uniform(0.3, 1.0)), -1)
    layer = cv2.GaussianBlur(layer, (0, 0), n * 0.025)[..., None]
    light = np.asarray(_mix(spec.primary, (255, 255, 255), 0.6), np.float32)
    return img * (1 - 0.5 * layer) + light * 0.5 * layer


def _vignette(size: int) -> np.ndarray:
    """A gentle darkening of the corners (5 %), which makes flat colours read as lit surfaces."""
    t = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    r2 = t[None, :] ** 2 + t[:, None] ** 2
    return (1.0 - 0.05 * np.clip(r2 / 2.0, 0, 1))[..., None]
