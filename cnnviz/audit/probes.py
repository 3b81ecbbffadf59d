"""Probe images for the audit: generated "out-of-scope" pictures and style transformations.

A classifier trained on paintings of portraits, landscapes and still lifes has to say
*something* about a Mondrian grid, a blank page or a photograph of a coffee cup. These
functions make such probes on demand, reproducibly: every generator takes a ``seed``
and a ``size = (height, width)`` in pixels and returns an ``(H, W, 3)`` RGB ``uint8``
array, identical for identical arguments. The transformations change only the *style*
of an image (colour, orientation, sharpness, compression…) and keep the
``(H, W, 3)`` ``uint8`` contract, so a seminar can ask "does the label change when only
the style changes?".

Pure numpy + OpenCV; never imports TensorFlow.
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "GENERATORS",
    "TRANSFORMATIONS",
    "mondrian",
    "rothko",
    "kandinsky",
    "pollock",
    "plain_colour",
    "gradient",
    "noise",
    "text",
    "blank_page",
    "shapes",
    "probe_set",
    "grayscale",
    "rotate",
    "flip",
    "zoom",
    "blur",
    "add_noise",
    "jpeg",
    "invert",
    "occlude",
    "painterly",
    "sketch",
    "transform",
]

Size = tuple[int, int]

# Mondrian's palette: the three primaries, white, black, a light grey.
_PRIMARIES = np.array(
    [[221, 1, 0], [34, 80, 149], [250, 201, 1], [242, 242, 240], [242, 242, 240], [242, 242, 240]],
    dtype=np.uint8,
)
_WORDS = (
    "the quick brown fox jumps over the lazy dog "
    "a picture is not a painting and a label is not a meaning "
    "who chose these categories and why"
).split()


def _check_size(size: Size) -> tuple[int, int]:
    height, width = (int(v) for v in size)
    if height < 1 or width < 1:
        raise ValueError(f"A probe needs at least 1 × 1 pixels, got {height} × {width}.")
    return height, width


def _canvas(size: Size, colour: ArrayLike) -> np.ndarray:
    height, width = _check_size(size)
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = np.asarray(colour, dtype=np.uint8)
    return image


def _line_width(size: Size, fraction: float) -> int:
    return max(1, round(min(size) * fraction))


# --------------------------------------------------------------------------- generators
def mondrian(size: Size = (224, 224), seed: int = 0) -> np.ndarray:
    """A grid of black lines dividing white space with a few red, blue and yellow fields.

    In the manner of Piet Mondrian's compositions of the 1920s: rectangles are cut
    recursively along random horizontal or vertical lines, then coloured from the
    primaries (white most often).
    """
    rng = np.random.default_rng(seed)
    height, width = _check_size(size)
    image = _canvas(size, (242, 242, 240))
    line = _line_width(size, 0.025)
    boxes = [(0, 0, height, width)]
    for _ in range(rng.integers(4, 8)):
        top, left, bottom, right = boxes.pop(int(rng.integers(len(boxes))))
        if (bottom - top) > (right - left) and bottom - top > 4 * line:
            cut = int(rng.integers(top + (bottom - top) // 4, bottom - (bottom - top) // 4 + 1))
            boxes += [(top, left, cut, right), (cut, left, bottom, right)]
        elif right - left > 4 * line:
            cut = int(rng.integers(left + (right - left) // 4, right - (right - left) // 4 + 1))
            boxes += [(top, left, bottom, cut), (top, cut, bottom, right)]
        else:
            boxes.append((top, left, bottom, right))
    for top, left, bottom, right in boxes:
        image[top:bottom, left:right] = _PRIMARIES[rng.integers(len(_PRIMARIES))]
        cv2.rectangle(image, (left, top), (right - 1, bottom - 1), (20, 20, 20), line)
    return image


def rothko(size: Size = (224, 224), seed: int = 0) -> np.ndarray:
    """Two or three soft-edged colour fields stacked on a coloured ground (after Mark Rothko)."""
    rng = np.random.default_rng(seed)
    height, width = _check_size(size)
    ground = rng.integers(40, 200, 3)
    image = np.empty((height, width, 3), dtype=np.float32)
    image[:] = ground
    fields = int(rng.integers(2, 4))
    margin_y, margin_x = height * 0.06, width * 0.1
    band = (height - 2 * margin_y) / fields
    for i in range(fields):
        mask = np.zeros((height, width), dtype=np.float32)
        top = round(margin_y + i * band + band * 0.05)
        bottom = round(margin_y + (i + 1) * band - band * 0.05)
        mask[top:bottom, round(margin_x) : round(width - margin_x)] = 1.0
        sigma = max(1.0, min(height, width) * 0.03)
        blurred = cv2.GaussianBlur(mask, (0, 0), sigma)[:, :, None]
        colour = rng.integers(20, 256, 3).astype(np.float32)
        image = image * (1 - blurred) + colour * blurred
    grain = rng.normal(0, 4, (height, width, 1)).astype(np.float32)  # canvas texture
    return np.clip(image + grain, 0, 255).astype(np.uint8)


def kandinsky(size: Size = (224, 224), seed: int = 0) -> np.ndarray:
    """Circles, straight lines and arcs in strong colours on a pale ground (after Kandinsky)."""
    rng = np.random.default_rng(seed)
    height, width = _check_size(size)
    image = _canvas(size, rng.integers(200, 250, 3))
    scale = min(height, width)

    def colour() -> tuple[int, ...]:
        return tuple(int(c) for c in rng.integers(0, 256, 3))

    def point() -> tuple[int, int]:
        return int(rng.integers(0, width)), int(rng.integers(0, height))

    for _ in range(rng.integers(3, 7)):
        radius = max(1, int(rng.uniform(0.04, 0.2) * scale))
        cv2.circle(image, point(), radius, colour(), -1, cv2.LINE_AA)
        cv2.circle(image, point(), radius, (15, 15, 15), max(1, scale // 100), cv2.LINE_AA)
    for _ in range(rng.integers(4, 9)):
        cv2.line(image, point(), point(), colour(), _line_width(size, rng.uniform(0.005, 0.02)), cv2.LINE_AA)
    for _ in range(rng.integers(2, 5)):
        axes = (max(1, int(rng.uniform(0.1, 0.35) * scale)), max(1, int(rng.uniform(0.1, 0.35) * scale)))
        start = float(rng.uniform(0, 360))
        cv2.ellipse(
            image,
            point(),
            axes,
            0,
            start,
            start + float(rng.uniform(60, 200)),
            colour(),
            _line_width(size, 0.012),
            cv2.LINE_AA,
        )
    return image


def pollock(size: Size = (224, 224), seed: int = 0) -> np.ndarray:
    """Layers of wandering drips and splatters over a raw canvas (after Jackson Pollock)."""
    rng = np.random.default_rng(seed)
    height, width = _check_size(size)
    image = _canvas(size, (214, 200, 170))
    scale = min(height, width)
    palette = [(20, 20, 20), (245, 245, 240), (180, 40, 30), (200, 160, 60), (60, 80, 120)]
    for _ in range(rng.integers(12, 20)):
        colour = palette[int(rng.integers(len(palette)))]
        steps = int(rng.integers(20, 60))
        walk = np.cumsum(rng.normal(0, scale * 0.04, (steps, 2)), axis=0)
        walk += rng.uniform(0, 1, 2) * (width, height)
        points = np.round(walk).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(image, [points], False, colour, _line_width(size, rng.uniform(0.003, 0.012)), cv2.LINE_AA)
        for x, y in points[rng.integers(0, steps, 3), 0]:
            cv2.circle(image, (int(x), int(y)), max(1, int(rng.uniform(0.005, 0.02) * scale)), colour, -1)
    return image


def plain_colour(size: Size = (224, 224), seed: int = 0) -> np.ndarray:
    """One flat colour, chosen by the seed. No object, no texture: what does the model see?"""
    rng = np.random.default_rng(seed)
    return _canvas(size, rng.integers(0, 256, 3))


def gradient(size: Size = (224, 224), seed: int = 0) -> np.ndarray:
    """A smooth linear blend between two colours in a seeded direction."""
    rng = np.random.default_rng(seed)
    height, width = _check_size(size)
    start, end = rng.integers(0, 256, (2, 3)).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    t = xx * np.cos(angle) / max(width, 1) + yy * np.sin(angle) / max(height, 1)
    t = (t - t.min()) / (np.ptp(t) or 1.0)
    image = start + (end - start) * t[:, :, None]
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def noise(size: Size = (224, 224), seed: int = 0) -> np.ndarray:
    """Uniform random RGB pixels: every pixel independent, no structure at all."""
    height, width = _check_size(size)
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def text(size: Size = (224, 224), seed: int = 0) -> np.ndarray:
    """Lines of black printed words on white paper: writing, not a picture."""
    rng = np.random.default_rng(seed)
    height, width = _check_size(size)
    image = _canvas(size, (250, 250, 246))
    font_scale = max(0.2, min(height, width) / 400)
    thickness = max(1, round(font_scale * 1.5))
    line_height = max(2, int(30 * font_scale))
    y = line_height
    while y < height:
        words = " ".join(rng.choice(_WORDS, 8))
        cv2.putText(
            image,
            words,
            (max(1, width // 20), y),
            cv2.FONT_HERSHEY_SIMPLEX,
            font_scale,
            (15, 15, 15),
            thickness,
            cv2.LINE_AA,
        )
        y += line_height
    return image


def blank_page(size: Size = (224, 224), seed: int = 0) -> np.ndarray:
    """An off-white sheet with faint paper grain: the emptiest "image" there is."""
    rng = np.random.default_rng(seed)
    height, width = _check_size(size)
    grain = rng.normal(0, 2.0, (height, width, 1))
    return np.clip(248 + grain, 0, 255).repeat(3, axis=2).astype(np.uint8)


def shapes(size: Size = (224, 224), seed: int = 0) -> np.ndarray:
    """Filled squares, triangles and circles in flat colours on white, like a textbook figure."""
    rng = np.random.default_rng(seed)
    height, width = _check_size(size)
    image = _canvas(size, (255, 255, 255))
    scale = min(height, width)
    for _ in range(rng.integers(3, 6)):
        colour = tuple(int(c) for c in rng.integers(0, 220, 3))
        cx, cy = int(rng.integers(0, width)), int(rng.integers(0, height))
        r = max(1, int(rng.uniform(0.08, 0.2) * scale))
        kind = rng.integers(3)
        if kind == 0:
            cv2.rectangle(image, (cx - r, cy - r), (cx + r, cy + r), colour, -1)
        elif kind == 1:
            tri = np.array([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]], dtype=np.int32)
            cv2.fillPoly(image, [tri], colour, cv2.LINE_AA)
        else:
            cv2.circle(image, (cx, cy), r, colour, -1, cv2.LINE_AA)
    return image


#: Every generator by a name a seminar understands (shown in the page's probe list).
GENERATORS: dict[str, Callable[..., np.ndarray]] = {
    "Mondrian grid": mondrian,
    "Rothko colour fields": rothko,
    "Kandinsky circles and lines": kandinsky,
    "Pollock drips": pollock,
    "Plain colour": plain_colour,
    "Gradient": gradient,
    "Noise": noise,
    "Printed text": text,
    "Blank page": blank_page,
    "Geometric shapes": shapes,
}


def probe_set(
    kinds: list[str] | tuple[str, ...], count: int, *, size: Size = (224, 224), seed: int = 0
) -> dict[str, np.ndarray]:
    """``count`` generated images cycling through ``kinds`` (names in :data:`GENERATORS`).

    Returns ``{"Mondrian grid #0": image, ...}``; image ``i`` uses seed ``seed + i``,
    so the same call always returns the same set.
    """
    if not kinds:
        raise ValueError("Choose at least one kind of generated probe.")
    unknown = [k for k in kinds if k not in GENERATORS]
    if unknown:
        raise ValueError(f"Unknown probe kind: {unknown[0]}.")
    return {f"{kinds[i % len(kinds)]} #{i}": GENERATORS[kinds[i % len(kinds)]](size, seed + i) for i in range(count)}


# ------------------------------------------------------------------------ transformations
def _as_rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"Expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}.")
    return image


def grayscale(image: np.ndarray) -> np.ndarray:
    """Remove colour (ITU-R BT.601 luma), keeping three identical channels."""
    gray = cv2.cvtColor(_as_rgb(image), cv2.COLOR_RGB2GRAY)
    return np.repeat(gray[:, :, None], 3, axis=2)


def rotate(image: np.ndarray, degrees: float = 90.0) -> np.ndarray:
    """Rotate counter-clockwise about the centre, keeping the size; corners fill with white."""
    height, width = _as_rgb(image).shape[:2]
    if degrees % 360 == 0:
        return image.copy()
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    return cv2.warpAffine(
        image,
        matrix,
        (width, height),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(255, 255, 255),
    )


def flip(image: np.ndarray, horizontal: bool = True) -> np.ndarray:
    """Mirror left–right (or upside-down with ``horizontal=False``)."""
    return np.ascontiguousarray(_as_rgb(image)[:, ::-1] if horizontal else image[::-1])


def zoom(image: np.ndarray, factor: float = 2.0) -> np.ndarray:
    """Crop the central ``1/factor`` of the image and enlarge it back to the original size."""
    height, width = _as_rgb(image).shape[:2]
    factor = max(1.0, float(factor))
    crop_h, crop_w = max(1, round(height / factor)), max(1, round(width / factor))
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    crop = image[top : top + crop_h, left : left + crop_w]
    return cv2.resize(crop, (width, height), interpolation=cv2.INTER_LINEAR)


def blur(image: np.ndarray, sigma: float = 3.0) -> np.ndarray:
    """Gaussian blur with standard deviation ``sigma`` pixels: fine texture disappears."""
    if sigma <= 0:
        return _as_rgb(image).copy()
    return cv2.GaussianBlur(_as_rgb(image), (0, 0), float(sigma))


def add_noise(image: np.ndarray, std: float = 25.0, seed: int = 0) -> np.ndarray:
    """Add Gaussian pixel noise of ``std`` grey levels (0–255 scale), clipped to valid pixels."""
    rng = np.random.default_rng(seed)
    noisy = _as_rgb(image).astype(np.float32) + rng.normal(0, std, image.shape).astype(np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def jpeg(image: np.ndarray, quality: int = 10) -> np.ndarray:
    """Encode as JPEG at ``quality`` (1–100) and decode again: blocky compression artefacts."""
    quality = int(np.clip(quality, 1, 100))
    ok, data = cv2.imencode(
        ".jpg", cv2.cvtColor(_as_rgb(image), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:  # pragma: no cover - OpenCV always encodes a valid uint8 array
        raise ValueError("JPEG encoding failed.")
    decoded = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if decoded is None:  # pragma: no cover - what OpenCV just encoded always decodes
        raise ValueError("JPEG decoding failed.")
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)


def invert(image: np.ndarray) -> np.ndarray:
    """Photographic negative: every channel value ``v`` becomes ``255 - v``."""
    return 255 - _as_rgb(image)


def occlude(image: np.ndarray, fraction: float = 0.3, centre: tuple[float, float] = (0.5, 0.5)) -> np.ndarray:
    """Cover a grey square ``fraction`` of the shorter side wide, centred at ``centre`` = (y, x) in 0–1.

    The classic occlusion test: if the label changes, the covered part mattered.
    """
    height, width = _as_rgb(image).shape[:2]
    side = max(1, round(min(height, width) * float(np.clip(fraction, 0, 1))))
    cy, cx = round(centre[0] * height), round(centre[1] * width)
    top, left = max(0, cy - side // 2), max(0, cx - side // 2)
    out = image.copy()
    out[top : top + side, left : left + side] = 128
    return out


def painterly(image: np.ndarray, strength: float = 60.0) -> np.ndarray:
    """Flatten colours and keep strong edges with ``cv2.stylization`` (a "painted" look).

    ``strength`` is OpenCV's ``sigma_s`` (0–200, neighbourhood size in pixels).
    """
    bgr = cv2.cvtColor(_as_rgb(image), cv2.COLOR_RGB2BGR)
    out = cv2.stylization(bgr, sigma_s=float(np.clip(strength, 1, 200)), sigma_r=0.45)
    return cv2.cvtColor(out, cv2.COLOR_BGR2RGB)


def sketch(image: np.ndarray, strength: float = 60.0) -> np.ndarray:
    """A grey pencil drawing of the image with ``cv2.pencilSketch`` (lines only, no colour)."""
    bgr = cv2.cvtColor(_as_rgb(image), cv2.COLOR_RGB2BGR)
    gray, _colour = cv2.pencilSketch(bgr, sigma_s=float(np.clip(strength, 1, 200)), sigma_r=0.07, shade_factor=0.05)
    return np.repeat(gray[:, :, None], 3, axis=2)


#: Every transformation with its default strength, by a name a seminar understands.
TRANSFORMATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "Original": lambda image: _as_rgb(image).copy(),
    "Grayscale": grayscale,
    "Rotated 90°": lambda image: rotate(image, 90),
    "Rotated 180°": lambda image: rotate(image, 180),
    "Mirrored": flip,
    "Zoomed 2×": zoom,
    "Blurred": blur,
    "Noisy": add_noise,
    "JPEG quality 10": jpeg,
    "Inverted colours": invert,
    "Occluded centre": occlude,
    "Painterly": painterly,
    "Pencil sketch": sketch,
}


def transform(image: np.ndarray, names: list[str] | None = None) -> dict[str, np.ndarray]:
    """Apply each named transformation (default: all of :data:`TRANSFORMATIONS`) to one image."""
    names = list(TRANSFORMATIONS) if names is None else names
    return {name: TRANSFORMATIONS[name](image) for name in names}
