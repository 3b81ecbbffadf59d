"""An audit's image sets from a visitor's zip, kept at the size the model sees, never as full decodes.

An audit runs each image through the model once (at its input size, 224 × 224 for the ImageNet
networks), shows a Grad-CAM gallery and keeps 96-pixel thumbnails for the report. A probe zip of
5 990 small 512 × 512 PNGs decoded in full held 4.5 GB; read here, at most :data:`MAX_SET_IMAGES`
images are decoded, each shrunk to :func:`set_side` pixels on its longest side as it is read, so
one set costs at most ``500 × 224² × 3`` bytes ≈ 75 MB whatever the zip holds.
Never imports TensorFlow.
"""
from __future__ import annotations

from typing import Any, Mapping

from cnnviz.zips import ZipImage, read_image_zip

__all__ = ["MAX_SET_IMAGES", "MIN_SIDE", "MAX_SIDE", "set_side", "read_set_zip"]

#: Images per set: an audit of a seminar's sample, not of a whole archive.
MAX_SET_IMAGES = 500
#: Smallest kept side: the gallery shows the picture beside its Grad-CAM; 224 still reads on a slide.
MIN_SIDE = 224
#: Largest kept side, for a visitor's model that takes big pictures.
MAX_SIDE = 512


def set_side(card: Mapping[str, Any]) -> int:
    """Longest side to keep a set's images at for the model on ``card``: its input size, 224…512 pixels."""
    size = card.get("input_size") or []
    sides = [int(v) for v in size if isinstance(v, (int, float)) and v]
    return max(MIN_SIDE, min(MAX_SIDE, max(sides, default=MIN_SIDE)))


def read_set_zip(data: bytes, *, zip_name: str = "The zip", side: int = MIN_SIDE,
                 max_images: int = MAX_SET_IMAGES) -> tuple[list[ZipImage], list[str]]:
    """The images of a probe or reference zip, ``(items, skipped)``.

    ``items``: at most ``max_images`` :class:`cnnviz.zips.ZipImage` (class folders first, then
    loose images), each ``(h, w, 3)`` ``uint8`` with ``max(h, w) <= side``; ``skipped``: one
    sentence per file not used, and one for the images beyond ``max_images`` left unread.
    Raises :class:`cnnviz.zips.ZipError` for a zip that cannot be read at all.
    """
    contents = read_image_zip(data, zip_name=zip_name, max_side=side, loose_images=True, max_images=max_images)
    items = [item for group in contents.training.values() for item in group] + contents.testing
    return items[:max_images], contents.skipped
