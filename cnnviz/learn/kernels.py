"""Kernel presets (blur, sharpen, edges, …) read from ``data/kernels.json``.

Each preset is stored as a photo editor's "custom filter" stores it: whole-number
``weights`` and a ``divisor``; the kernel applied is ``weights / divisor``. Presets come
in 3×3 and 5×5, each with one sentence on what it does and why.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import NamedTuple

import numpy as np

KERNELS_FILE = Path(__file__).resolve().parents[2] / "data" / "kernels.json"


class Preset(NamedTuple):
    """One kernel preset at one size."""

    name: str  # stable id used in URLs, e.g. "sobel-x"
    title: str  # what a person reads, e.g. "Sobel x (vertical edges)"
    size: int  # kernel is size × size
    explanation: str  # one sentence: what it does and why
    weights: np.ndarray  # (size, size) whole numbers as shown in the editor
    divisor: int

    @property
    def kernel(self) -> np.ndarray:
        """``(size, size)`` float32 kernel = weights / divisor."""
        return (self.weights / self.divisor).astype(np.float32)


@cache
def presets() -> dict[str, dict[int, Preset]]:
    """All presets, ``{name: {size: Preset}}``, in the order of ``data/kernels.json``."""
    data = json.loads(KERNELS_FILE.read_text(encoding="utf-8"))
    table: dict[str, dict[int, Preset]] = {}
    for entry in data["presets"]:
        sizes = {}
        for size, spec in entry["sizes"].items():
            weights = np.array(spec["weights"], dtype=np.float64)
            weights.setflags(write=False)  # shared by every caller: nobody may edit it
            if weights.shape != (int(size), int(size)):
                raise ValueError(f"{entry['name']} {size}×{size} has weights of shape {weights.shape}.")
            sizes[int(size)] = Preset(
                entry["name"], entry["title"], int(size), entry["explanation"], weights, int(spec["divisor"])
            )
        table[entry["name"]] = sizes
    return table


def preset(name: str, size: int = 3) -> Preset:
    """The preset ``name`` at ``size × size`` (KeyError names what exists)."""
    table = presets()
    if name not in table or size not in table[name]:
        raise KeyError(f"no {size}×{size} kernel preset {name!r}; presets: {', '.join(table)}.")
    return table[name][size]


def kernel(name: str, size: int = 3) -> np.ndarray:
    """Shortcut: the float32 ``(size, size)`` kernel of preset ``name``."""
    return preset(name, size).kernel
