"""Presenter mode's picture for the first screen of pages whose own pictures come only after a click.

The trainer and the audit show no picture until the visitor adds images or runs something; a hall
must still see one at once (issue 16). These show what the page is about to work on: the trainer's
demo set (or the cards' own images), the audit's sets. Drawn only in presenter mode.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import streamlit as st

from cnnviz.audit.sets import ImageSet
from cnnviz.sheet import contact_sheet
from cnnviz.text import plain
from cnnviz.train.demo_data import demo_dataset
from cnnviz.train.session import TrainingSession
from ui.widgets import show_image

__all__ = ["trainer_picture", "audit_picture"]

PER_ROW = 5
SIDE = 128  # px per picture: the sheet fills half the screen of a 1920-wide projector


@st.cache_resource(show_spinner=False)
def _demo_sheet() -> tuple[np.ndarray, tuple[str, ...]]:
    # The same seed as the demo set the button loads: these are its first training pictures.
    demo = demo_dataset(30, seed=0)
    return contact_sheet([images[:PER_ROW] for images in demo.values()], side=SIDE), tuple(demo)


def trainer_picture(trainer: TrainingSession) -> None:
    """The cards' first images, one row per class; before any image, the demo set's first pictures."""
    rows = [(cls.name, [t for _, _, t in trainer.thumbnails(cls)[:PER_ROW]]) for cls in trainer.classes]
    rows = [(name, thumbs) for name, thumbs in rows if thumbs]
    if rows:
        show_image(
            contact_sheet([thumbs for _, thumbs in rows], side=SIDE),
            alt="Training images: the first images of each class card",
            caption=" · ".join(f"row {i + 1}: {plain(name)}" for i, (name, _) in enumerate(rows)),
        )
        return
    sheet, names = _demo_sheet()
    show_image(
        sheet,
        alt="Training images: the first pictures of the demo dataset",
        caption="The demo dataset (press Load): " + " · ".join(f"row {i + 1}: {n}s" for i, n in enumerate(names)),
    )


def audit_picture(sets: Sequence[tuple[str, ImageSet]]) -> None:
    """The first pictures of each set with any, one row per set (the reference first)."""
    rows = [(name, found.images[:PER_ROW]) for name, found in sets if found.images]
    if not rows:
        st.info("Choose images for the sets: their first pictures are shown here.", icon="🖼️")
        return
    show_image(
        contact_sheet(rows_images := [images for _, images in rows], side=SIDE),
        alt=f"The sets to audit: the first pictures of {len(rows_images)} set{'s' if len(rows_images) != 1 else ''}",
        caption=" · ".join(f"row {i + 1}: {plain(name)}" for i, (name, _) in enumerate(rows)),
    )
