"""What the feature-map page computes for a model and its pictures, defined once for the page and the warm start.

Each function is one of the page's kept results (:func:`ui.memo.memo`, keyed by the model's
:func:`~ui.memo.token` and the pictures' :func:`~ui.memo.digest`). With ``shared=True`` (a shipped
model on sample pictures: nothing a visitor made) a result is kept for every session of the process,
so a hall of students opening the same page costs the server one network pass, not a hundred, and
:func:`warm_default_view` lets the warm start (``serve.py``) compute the page's first view before
its first visitor comes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from cnnviz.images import downscale
from cnnviz.model import features
from ui.memo import digest, memo, token

__all__ = [
    "SHOWN",
    "second_default",
    "is_shipped",
    "is_public",
    "shown",
    "probabilities",
    "layer_table",
    "layer_maps",
    "grid_png",
    "grad_cam",
    "warm_default_view",
]

SHOWN = 768  # pixels: overlays are drawn at the size a half-page column shows them, not the photo's


def second_default(first: str) -> str:
    """The page's second picture before the visitor picks one: a checkerboard, unless that is the first."""
    return "Checkerboard" if first != "Checkerboard" else "Geometric shapes"


def is_shipped(card: Mapping[str, Any]) -> bool:
    """True for a model that came with the app (the same object for every visitor), not a visitor's."""
    return card.get("kind") in ("imagenet", "bundled")


def is_public(card: Mapping[str, Any], *names: str, samples: Mapping[str, Any], mine: Mapping[str, Any]) -> bool:
    """True when the model is shipped and every picture named is a sample, not one of the visitor's own."""
    return is_shipped(card) and all(n in samples and n not in mine for n in names)


def shown(image: np.ndarray, ikey: str, *, shared: bool) -> np.ndarray:
    """The picture at the size the page draws it (overlays are drawn on this)."""
    return memo("fm_shown", ikey, lambda: downscale(image, SHOWN), shared=shared)


def probabilities(model, image: np.ndarray, ikey: str, *, shared: bool) -> np.ndarray:
    return memo("fm_probs", (token(model), ikey), lambda: features.probabilities(model, image), shared=shared)


def layer_table(model, *, shared: bool) -> list[features.LayerRow]:
    return memo("fm_table", token(model), lambda: features.layer_table(model), shared=shared)


def layer_maps(
    model, image: np.ndarray, ikey: str, other: np.ndarray, okey: str, layer: str, *, shared: bool
) -> tuple[np.ndarray, np.ndarray]:
    """One layer's maps of both pictures, in one pass. Kept only when shared: a visitor's own are
    recomputed (about 40 ms), since every layer's maps would be about 50 MB a visitor."""
    if not shared:
        first, second = features.layer_maps(model, [image, other], layer)
        return first, second
    return memo(
        "fm_maps",
        (token(model), ikey, okey, layer),
        lambda: tuple(features.layer_maps(model, [image, other], layer)),  # type: ignore[return-value]
        shared=True,
    )


def grid_png(
    model,
    fmap: np.ndarray,
    order: np.ndarray,
    ikey: str,
    layer: str,
    sort: bool,
    *,
    ordered_by: str | None = None,
    shared: bool,
) -> bytes:
    """All channels of ``layer`` for picture ``ikey`` tiled in ``order``, as PNG bytes (Streamlit sends them as
    they are). ``ordered_by``: the picture whose channel order a second picture's grid follows."""
    kind, key = (
        ("fm_grid", (token(model), ikey, layer, sort))
        if ordered_by is None
        else ("fm_grid2", (token(model), ikey, layer, sort, ordered_by))
    )
    return memo(kind, key, lambda: features.png_bytes(features.tile_channels(fmap, order=order)), shared=shared)


def grad_cam(model, image: np.ndarray, ikey: str, picture: np.ndarray, cam_class: int, *, shared: bool) -> np.ndarray:
    """Grad-CAM for ``cam_class`` (``-1``: the predicted class) laid over ``picture`` (the shown size)."""
    return memo(
        "fm_cam",
        (token(model), ikey, cam_class),
        lambda: features.overlay(
            picture, features.grad_cam(model, image, None if cam_class < 0 else cam_class), normalise=False
        ),
        shared=shared,
    )


def warm_default_view(model, samples: Mapping[str, np.ndarray]) -> str:
    """What the page computes first for ``model`` and the first sample, with its default settings
    (the first layer with feature maps, channels sorted, the predicted class), into the shared memo.

    Returns the layer. ``tests/test_feature_view.py`` checks that the page's first run then finds
    every one of these results computed.
    """
    first = next(iter(samples))
    image, other = samples[first], samples[second_default(first)]
    ikey, okey = digest(image), digest(other)
    picture = shown(image, ikey, shared=True)
    shown(other, okey, shared=True)
    probabilities(model, image, ikey, shared=True)
    layer = next(r.name for r in layer_table(model, shared=True) if r.has_feature_map)
    fmap, other_map = layer_maps(model, image, ikey, other, okey, layer, shared=True)
    order = features.top_channels(fmap)
    grid_png(model, fmap, order, ikey, layer, True, shared=True)
    grid_png(model, other_map, order, okey, layer, True, ordered_by=ikey, shared=True)
    grad_cam(model, image, ikey, picture, -1, shared=True)
    return layer
