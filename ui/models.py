"""The model picker every model page shares (feature maps, trainer, audit).

Shipped models (ImageNet networks, bundled CNNs) load once per process with ``st.cache_resource``;
models a visitor uploads or trains live only in that visitor's ``st.session_state`` (``ui.state``).
"""

from __future__ import annotations

from typing import Any, Sequence

import streamlit as st

from cnnviz.model import registry, shipped
from ui import settings
from ui.state import add_visitor_model, take_requested_model, visitor_models
from cnnviz.text import plain

_MINE = "mine:"  # option prefix so a visitor's model can never shadow a shipped one


@st.cache_resource(show_spinner=False, max_entries=8)
def shipped_model(name: str):
    """A registry model, loaded once per process and shared by all visitors (it is read-only).

    Through :func:`cnnviz.model.shipped.get`: the model the server's warm start loaded (or is
    loading) is the one visitors get, never a second copy.
    """
    return shipped.get(name)


def model_picker(
    key: str, *, allow_upload: bool = True, label: str = "Model", query_param: str | None = "model"
) -> tuple[str, Any, dict] | None:
    """Pick a model: shipped ones, this visitor's own, or a ``.keras`` upload.

    Returns ``(name, keras_model, card)``, or ``None`` when the chosen model cannot be loaded (the
    reason is shown with ``st.error``). Unavailable shipped models are listed with their one-sentence
    reason but cannot be chosen. The choice follows :mod:`ui.settings` (it sticks across reruns and
    page switches); a shipped choice is mirrored in ``?query_param=`` so a lecturer can reopen it,
    a visitor's own model never goes into a shareable URL.
    """
    cards = registry.available()
    usable = {c["name"]: c for c in cards if c["available"]}
    mine = visitor_models()

    if allow_upload:
        with st.expander("➕ Upload your own model (.keras)", expanded=False):
            upload = st.file_uploader(
                'Upload a Keras model saved with model.save("name.keras")',
                type=["keras"],
                key=f"{key}_upload",
                help="Only built-in Keras layers are accepted (no Lambda layers or custom code); at most 100 MB.",
            )
            _take_upload(upload, key)

    options = [_MINE + n for n in list(mine)[::-1]] + list(usable)  # newest own model first
    if not options:
        st.error("No model is available on this machine; see the notes below.")
        _unavailable_notes(cards)
        return None
    choice_key = f"{key}_choice"
    wanted = st.session_state.pop(f"{key}_select_next", None) or _requested()
    if wanted in options:
        st.session_state[choice_key] = wanted  # just uploaded, or sent here by another page

    def title(option: str) -> str:
        if option.startswith(_MINE):
            return f"Your model · {option[len(_MINE) :]}"
        return usable[option].get("title", option)

    default = registry.DEFAULT_MODEL if registry.DEFAULT_MODEL in options else options[0]
    choice = settings.selectbox(
        label,
        options,
        key=choice_key,
        default=default,
        url=query_param,
        shareable=lambda o: not o.startswith(_MINE),
        format_func=title,
    )
    _unavailable_notes(cards)

    if choice.startswith(_MINE):
        name = choice[len(_MINE) :]
        entry = mine[name]
        try:
            return name, entry["model"], entry["card"]  # a model reopened from a workspace loads here
        except registry.ModelError as err:
            st.error(plain(err), icon="🚫")
            return None

    card = usable[choice]
    try:
        with st.spinner(f"Loading {card.get('title', choice)} (the first time takes a few seconds)…"):
            model = shipped_model(choice)
    except registry.ModelError as err:
        st.error(plain(err), icon="🚫")
        return None
    if card.get("note"):
        st.caption(card["note"])
    return choice, model, card


def _requested() -> str | None:
    """A visitor model another page asked for (:func:`ui.state.request_model`), as an option."""
    name = take_requested_model()
    return None if name is None else _MINE + name


def image_model_picker(key: str, *, otherwise: str) -> tuple[str, Any, dict]:
    """:func:`model_picker` for pages that feed pictures to the model.

    Stops the page (after the picker) when nothing is chosen, or with one sentence when the
    chosen model does not take pictures: "This model does not take pictures as input, so
    ``otherwise``."
    """
    picked = model_picker(key)
    if picked is None:
        st.stop()
    if not registry.is_image_model(picked[1]):
        st.error(f"This model does not take pictures as input, so {otherwise}.", icon="🚫")
        st.stop()
    return picked


def _unavailable_notes(cards: Sequence[dict]) -> None:
    missing = [c for c in cards if not c["available"]]
    if missing:
        st.caption(
            "Not available here: " + " ".join(f"**{c.get('title', c['name'])}**: {c['reason']}" for c in missing)
        )


def _take_upload(uploaded, key: str) -> None:
    if uploaded is None:
        return
    marker = f"{key}_model_seen_{uploaded.file_id}"
    if marker in st.session_state:
        if st.session_state[marker]:
            st.error(plain(st.session_state[marker]), icon="🚫")  # keep the refusal visible on reruns
        return
    try:
        with st.spinner(f"Checking and loading {plain(uploaded.name)}…"):
            model, card = registry.load_uploaded_model(
                uploaded.getvalue(), uploaded.name, kept_params=registry.kept_upload_params(visitor_models().values())
            )
    except registry.ModelError as err:
        st.session_state[marker] = str(err)
        st.error(plain(err), icon="🚫")
        return
    st.session_state[marker] = ""
    stored = add_visitor_model(card["name"], model, dict(card))
    visitor_models()[stored]["card"]["name"] = stored
    st.session_state[f"{key}_select_next"] = _MINE + stored
    st.rerun()
