"""Widgets every page shares: the image picker and image display with alt text."""

from __future__ import annotations

from typing import Literal

import numpy as np
import streamlit as st

from cnnviz.images import IMAGE_TYPES, ImageError, encode_for_display, load_image, sample_images
from cnnviz.limits import limit
from ui import settings
from cnnviz.text import plain
from ui.state import add_visitor_image, pixel_budget, visitor_images


@st.cache_resource(show_spinner=False)
def _samples() -> dict[str, np.ndarray]:
    # Shipped files, identical for every visitor: safe to share across sessions.
    return sample_images()


def samples() -> dict[str, np.ndarray]:
    """The sample pictures every visitor is offered (shared by the process: never change them)."""
    return _samples()


def warm_samples() -> None:
    """Read the sample pictures into this process's cache (serve.py's warm start: not the first visitor)."""
    _samples()


def image_picker(
    key: str, *, label: str = "Image", default: str | None = None, query_param: str | None = "image"
) -> tuple[str, np.ndarray]:
    """Let the visitor choose a sample, one of their earlier images, an upload or a photo.

    Returns ``(name, rgb_uint8_array)``. Uploads go through :func:`cnnviz.images.load_image`;
    a bad file shows its message here and the previous choice stays. Uploaded images are
    kept in this visitor's session, so a picture uploaded on one page is offered on all.
    The choice follows :mod:`ui.settings`: it sticks across reruns and page switches, and a
    sample (never a visitor's own picture) is mirrored in ``?query_param=``.
    """
    samples = _samples()
    # The uploader and the camera are drawn only while the panel is open (on_change="rerun"): two
    # folded uploaders on a page cost every rerun their widgets and every first visit their scripts.
    adding = st.expander("➕ Add your own image (upload or camera)", key=f"{key}_add", on_change="rerun")
    if adding.open:
        with adding:
            upload = st.file_uploader(
                "Upload an image (PNG, JPEG, WebP, BMP, GIF, TIFF)",
                type=IMAGE_TYPES,
                key=f"{key}_upload",
            )
            _take_new_image(upload, key)
            if st.toggle("Use the camera", key=f"{key}_camera_on"):
                _take_new_image(st.camera_input("Take a photo", key=f"{key}_camera"), key)

    mine = list(visitor_images())
    options = mine[::-1] + list(samples)  # newest own image first
    choice_key = f"{key}_choice"
    wanted = st.session_state.pop(f"{key}_select_next", None)
    if wanted in options:
        st.session_state[choice_key] = wanted  # the picture just uploaded
    name = settings.selectbox(
        label,
        options,
        key=choice_key,
        default=default if default in options else options[0],
        url=query_param,
        shareable=lambda n: n in samples,
    )
    image = visitor_images().get(name)
    return name, (image if image is not None else samples[name])


def _take_new_image(uploaded, key: str) -> None:
    if uploaded is None:
        return
    marker = f"{key}_seen_{uploaded.file_id}"
    if st.session_state.get(marker):
        return
    most = limit("CNNVIZ_MAX_VISITOR_PICTURES")
    if len(visitor_images()) >= most:
        st.error(
            f"You already keep {most} of your own pictures in this session, as many as this server allows; "
            "they are all still in the list above.",
            icon="🚫",
        )
        return
    try:
        image = load_image(uploaded.getvalue(), name=f"“{uploaded.name}”", budget=pixel_budget())
    except ImageError as err:
        st.error(plain(err), icon="🚫")
        return
    st.session_state[marker] = True
    stored = add_visitor_image(uploaded.name or "camera photo", image)
    st.session_state[f"{key}_select_next"] = stored
    st.rerun()


def show_image(
    image: np.ndarray, *, alt: str, caption: str | None = None, width: int | Literal["stretch", "content"] = "stretch"
) -> None:
    """``st.image`` that always carries alt text (screen readers, projector captions)."""
    if image.dtype != np.uint8:  # Streamlit's own scaling of float pictures (0…1) and clamping
        st.image(image, caption=caption, alt=alt, width=width, clamp=True)
        return
    data, fmt = encode_for_display(image)
    st.image(data, caption=caption, alt=alt, width=width, output_format=fmt)
