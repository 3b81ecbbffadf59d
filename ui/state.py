"""Per-visitor stores in ``st.session_state``.

Everything a visitor uploads or trains lives here and nowhere else: no module-level
dict, no file on disk, so no visitor can ever see another's images or models.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st

from cnnviz.limits import PixelBudget

IMAGES_KEY = "cnnviz_images"
MODELS_KEY = "cnnviz_user_models"


def visitor_images() -> dict[str, np.ndarray]:
    """This visitor's uploaded/camera images, by name, in upload order (reused by every page)."""
    return st.session_state.setdefault(IMAGES_KEY, {})


def add_visitor_image(name: str, image: np.ndarray) -> str:
    """Store an image for this visitor and return the (possibly de-duplicated) name it got."""
    images = visitor_images()
    base, n, unique = name, 2, name
    while unique in images and not np.array_equal(images[unique], image):
        unique = f"{base} ({n})"
        n += 1
    images[unique] = image
    return unique


def visitor_models() -> dict[str, dict[str, Any]]:
    """Models this visitor trained or uploaded: ``{name: {"model": keras.Model, "card": dict}}``."""
    return st.session_state.setdefault(MODELS_KEY, {})


def add_visitor_model(name: str, model: Any, card: dict[str, Any]) -> str:
    """Store a model for this visitor (trainer, upload); other pages list it from here."""
    models = visitor_models()
    unique, n = name, 2
    while unique in models:
        unique = f"{name} ({n})"
        n += 1
    models[unique] = {"model": model, "card": card}
    return unique


REQUESTED_KEY = "cnnviz_requested_model"


def request_model(name: str) -> None:
    """Ask the next model page to open with this visitor model chosen (e.g. "open it on page 3")."""
    st.session_state[REQUESTED_KEY] = name


def take_requested_model() -> str | None:
    """The visitor model another page asked for, once (the model picker calls this)."""
    return st.session_state.pop(REQUESTED_KEY, None)


TRAINING_KEY = "trainer"


def last_training() -> Any:
    """This visitor's training session from page 4 (a :class:`cnnviz.train.session.TrainingSession`), or ``None``.

    Other pages read "the last training run" through this, never through page 4's keys:
    ``last_training().run`` and ``last_training().validation_images()``.
    """
    return st.session_state.get(TRAINING_KEY)


BUDGET_KEY = "cnnviz_pixel_budget"


def pixel_budget() -> PixelBudget:
    """The pixels this visitor's uploads and zips may still cost to decode (one budget for every page)."""
    return st.session_state.setdefault(BUDGET_KEY, PixelBudget())
