"""A contact sheet: a few pictures of each group in one row, for a projector's first screen.

Presenter mode puts one picture on the first screen of a page whose own pictures only come after
the visitor has done something (the trainer's classes, the audit's sets): one row per group.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

__all__ = ["contact_sheet"]


def contact_sheet(rows: Sequence[Sequence[np.ndarray]], *, side: int = 96, gap: int = 4) -> np.ndarray:
    """One row per group, each picture shrunk to fit a ``side × side`` square (its shape kept, centred on white).

    ``rows``: groups of RGB ``uint8`` pictures ``(h, w, 3)`` of any size (grey ``(h, w)`` is accepted).
    Returns RGB ``uint8`` ``(R·side + (R−1)·gap, C·side + (C−1)·gap, 3)`` with ``R`` rows and ``C`` the
    longest row; shorter rows are padded with white.
    """
    if not rows or not any(len(r) for r in rows):
        raise ValueError("A contact sheet needs at least one picture.")
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    sheet = np.full((n_rows * side + (n_rows - 1) * gap, n_cols * side + (n_cols - 1) * gap, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, picture in enumerate(row):
            image = Image.fromarray(np.asarray(picture, np.uint8)).convert("RGB")
            image.thumbnail((side, side), Image.Resampling.LANCZOS)  # keeps the shape; never enlarges
            tile = np.asarray(image)
            y = r * (side + gap) + (side - tile.shape[0]) // 2
            x = c * (side + gap) + (side - tile.shape[1]) // 2
            sheet[y : y + tile.shape[0], x : x + tile.shape[1]] = tile
    return sheet
