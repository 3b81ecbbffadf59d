"""Limits a public server can set by environment variable, read when each check runs.

Every limit has a default that keeps a seminar's collection working (5 000 photos in one zip, a
museum scan, a Fashion-MNIST or ImageNet-sized model) and an environment variable a server
operator can lower (or raise) without touching code. Values are read at call time, so a test or
a server started with ``CNNVIZ_MAX_MODEL_PARAMS=1000000`` sees its own value.

==============================  ================  =========================================
variable                        default           what it bounds
==============================  ================  =========================================
CNNVIZ_MAX_IMAGE_PIXELS         100 000 000       pixels an image may claim (JPEG: decoded reduced)
CNNVIZ_MAX_DECODE_PIXELS        25 000 000        pixels actually decoded for one image
CNNVIZ_MAX_ZIP_PIXELS           8 000 000 000     pixels decoded for all images of one zip
CNNVIZ_MAX_ZIP_ENTRIES          6 000             entries in one zip
CNNVIZ_MAX_MODEL_INPUT_PIXELS   1 048 576         height × width a model may take (1024 × 1024)
CNNVIZ_MAX_MODEL_PARAMS         50 000 000        parameters of one uploaded model
CNNVIZ_MAX_VISITOR_MODELS       5                 models one visitor may keep
CNNVIZ_MAX_VISITOR_PARAMS       100 000 000       parameters of all models one visitor keeps
CNNVIZ_MAX_VISITOR_IMAGES       6 000             trainer images one visitor holds (oldest dropped)
CNNVIZ_MAX_VISITOR_PICTURES     50                own pictures one visitor keeps for the pickers
==============================  ================  =========================================

Never imports Streamlit or TensorFlow.
"""

from __future__ import annotations

import os

__all__ = ["DEFAULTS", "limit", "PixelBudget", "BudgetSpent"]

DEFAULTS: dict[str, int] = {
    # A 12 000 × 8 000 photo is 96 MP; beyond that is almost always a decompression bomb.
    "CNNVIZ_MAX_IMAGE_PIXELS": 100_000_000,
    # PNG, WebP, TIFF, BMP and GIF cannot be decoded at a reduced size, so their full size is the
    # cost (a 6 000 × 4 000 camera PNG fits); JPEG is decoded at 1/2 … 1/8 scale and counts that.
    "CNNVIZ_MAX_DECODE_PIXELS": 25_000_000,
    # 5 000 images of 1.6 MP decoded each; a zip of thousands of "tiny" 25 MP bombs stops here.
    "CNNVIZ_MAX_ZIP_PIXELS": 8_000_000_000,
    "CNNVIZ_MAX_ZIP_ENTRIES": 6_000,
    # ImageNet networks take 224 × 224 and the largest common ones 600 × 600; 16 384² is a bomb.
    "CNNVIZ_MAX_MODEL_INPUT_PIXELS": 1024 * 1024,
    # EfficientNet-Lite0 has 4.7 M, ResNet-50 25.6 M parameters (≈ 100 MB as float32).
    "CNNVIZ_MAX_MODEL_PARAMS": 50_000_000,
    "CNNVIZ_MAX_VISITOR_MODELS": 5,
    "CNNVIZ_MAX_VISITOR_PARAMS": 100_000_000,
    # The trainer keeps an embedding and a thumbnail per image (~30 KB): a seminar's 5 000-image
    # collection and its test set fit; beyond, the least recently used are dropped.
    "CNNVIZ_MAX_VISITOR_IMAGES": 6_000,
    # Pictures uploaded to a page's image picker are kept at up to 1024 px (≈ 3 MB each).
    "CNNVIZ_MAX_VISITOR_PICTURES": 50,
    # All the pixels one visitor's uploads and zips may cost to decode in one session: five zips at
    # their limit, or a seminar's 5 000-image collection many times over; a visitor who keeps
    # uploading copies of a costly zip stops here instead of keeping a core busy for hours.
    "CNNVIZ_MAX_VISITOR_PIXELS": 40_000_000_000,
}


class BudgetSpent(Exception):
    """The visitor's decoding budget is spent; ``str()`` is one sentence."""


class PixelBudget:
    """Pixels one visitor may have decoded in a session (``CNNVIZ_MAX_VISITOR_PIXELS``).

    Every page that decodes a visitor's upload charges the decoding cost here first
    (:func:`cnnviz.images.decode_pixels`: JPEG at its reduced scale), so the cost is bounded
    per visitor, not only per image and per zip.

    Examples
    --------
    >>> budget = PixelBudget(total=1_000)
    >>> budget.charge(600)
    >>> budget.remaining
    400
    >>> budget.charge(600)
    Traceback (most recent call last):
    ...
    cnnviz.limits.BudgetSpent: This session has decoded as many pictures as this server allows one visitor ...
    """

    def __init__(self, total: int | None = None) -> None:
        self.total = limit("CNNVIZ_MAX_VISITOR_PIXELS") if total is None else total
        self.used = 0

    @property
    def remaining(self) -> int:
        return max(0, self.total - self.used)

    def charge(self, pixels: int) -> None:
        """Count ``pixels`` against the budget; :class:`BudgetSpent` (nothing counted) when they do not fit."""
        if self.used + pixels > self.total:
            raise BudgetSpent(
                f"This session has decoded as many pictures as this server allows one visitor "
                f"({self.total / 1e9:.0f} billion pixels); what you added so far stays, but nothing more can be "
                "read in this session."
            )
        self.used += pixels


def limit(name: str) -> int:
    """The limit ``name`` (a key of :data:`DEFAULTS`): the environment's value, else the default.

    A value that is not a positive whole number (``"abc"``, ``"-1"``, ``"1e9"``) is ignored, so a
    typo in a server's settings never switches a limit off.
    """
    default = DEFAULTS[name]
    raw = os.environ.get(name, "").strip().replace("_", "")
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    return default
