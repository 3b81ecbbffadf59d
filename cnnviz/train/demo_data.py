"""An offline demo dataset: squares, triangles and circles, drawn fresh from a seed.

The Programming Historian lesson starts from a toy problem, telling squares from
triangles, before it turns to paintings. This module draws that toy problem (plus
circles, so there are three classes) with everything that should *not* matter varied
at random: size, position, rotation, colour, background colour and texture. A
classifier that learns it has to look at shape. Never imports TensorFlow.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

__all__ = ["DEMO_CLASSES", "demo_dataset", "draw_shape"]

DEMO_CLASSES = ("square", "triangle", "circle")


def demo_dataset(
    per_class: int = 30, *, size: int = 128, seed: int = 0, classes: tuple[str, ...] = DEMO_CLASSES
) -> dict[str, list[np.ndarray]]:
    """``{class name: [image, …]}`` with ``per_class`` RGB ``uint8`` images of ``size × size``.

    The same ``seed`` always gives the same pictures (a lecture can rely on it).
    """
    rng = np.random.default_rng(seed)
    return {name: [draw_shape(name, rng, size=size) for _ in range(per_class)] for name in classes}


def draw_shape(shape: str, rng: np.random.Generator, *, size: int = 128) -> np.ndarray:
    """Draw one ``shape`` ("square", "triangle" or "circle") on a random background.

    Returns ``(size, size, 3)`` RGB ``uint8``. The shape covers 25–70 % of the side, is
    rotated by any angle, and its colour is kept clearly different from the background
    so the shape is always visible, as it would be to a person.
    """
    if shape not in DEMO_CLASSES:
        raise ValueError(f"unknown demo shape {shape!r}; choose one of {', '.join(DEMO_CLASSES)}")
    background = rng.integers(0, 256, size=3)
    foreground = _contrasting(background, rng)
    canvas = _background(background, rng, size)
    draw = ImageDraw.Draw(canvas)

    radius = rng.uniform(0.25, 0.70) * size / 2
    margin = radius + 2
    cx, cy = rng.uniform(margin, size - margin, size=2)
    angle = rng.uniform(0, 2 * math.pi)
    colour = tuple(int(c) for c in foreground)
    if shape == "circle":
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=colour)
    else:
        corners = 4 if shape == "square" else 3
        points = [
            (
                cx + radius * math.cos(angle + 2 * math.pi * k / corners),
                cy + radius * math.sin(angle + 2 * math.pi * k / corners),
            )
            for k in range(corners)
        ]
        draw.polygon(points, fill=colour)
    if rng.random() < 0.3:  # some pictures slightly blurred, like a poor photo
        canvas = canvas.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.5, 1.5))))
    return np.asarray(canvas, dtype=np.uint8).copy()


def _contrasting(background: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random colour at least ~120 (of 441) away from ``background`` in RGB."""
    for _ in range(100):
        colour = rng.integers(0, 256, size=3)
        if np.linalg.norm(colour.astype(float) - background) > 120:
            return colour
    return 255 - background


def _background(colour: np.ndarray, rng: np.random.Generator, size: int) -> Image.Image:
    """Plain, gradient or noisy background of roughly ``colour``."""
    base = np.broadcast_to(colour.astype(np.float32), (size, size, 3)).copy()
    kind = rng.integers(0, 3)
    if kind == 1:  # gentle gradient in a random direction
        direction = rng.uniform(0, 2 * math.pi)
        ys, xs = np.mgrid[0:size, 0:size] / size - 0.5
        ramp = (xs * math.cos(direction) + ys * math.sin(direction))[..., None]
        base += ramp * 60
    elif kind == 2:  # grain
        base += rng.normal(0, 12, size=(size, size, 1))
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
