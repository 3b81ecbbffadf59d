"""Per-visitor memo: what depends only on (model, image, …) is computed once and kept for this session's next reruns.

A click on the feature-map page reruns code whose inputs mostly did not change (the same
model, the same picture): its probabilities, Grad-CAM, encoded pictures. :func:`memo` keeps the
last few results of each kind in this visitor's ``st.session_state`` (so they die with the
session, and no visitor can reach another's), bounded by ``keep`` entries per kind, so a session
holds a few megabytes of encoded pictures, never every layer's feature maps.

Keys name their inputs by :func:`token` (a model) and :func:`digest` (an array), never by
``id()``, which Python reuses once an object is gone.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
import weakref
from collections import OrderedDict
from typing import Any, Callable, Hashable, TypeVar

import numpy as np
import streamlit as st

__all__ = ["memo", "token", "digest", "forget_all", "shared_kinds", "SHARED_KEEP"]

T = TypeVar("T")
KEY = "cnnviz_memo"

# One short random string per live model object; weak keys, so this holds no model and no visitor data.
_TOKENS: "weakref.WeakKeyDictionary[Any, str]" = weakref.WeakKeyDictionary()


def token(obj: Any) -> str:
    """A name for this very object (a Keras model) while it lives; a new object gets a new name."""
    found = _TOKENS.get(obj)
    if found is None:
        found = _TOKENS[obj] = uuid.uuid4().hex
    return found


def digest(array: np.ndarray) -> str:
    """A short fingerprint of an array's shape, type and bytes (about 3 ms for a 1024-pixel photo)."""
    array = np.ascontiguousarray(array)
    h = hashlib.blake2b(digest_size=12)
    h.update(f"{array.shape}{array.dtype}".encode())
    h.update(array.data.cast("B"))
    return h.hexdigest()


#: Results shared by every session of the process (``shared=True``), per kind: the latest keys.
SHARED_KEEP = 6  # at most ≈ 45 MB a process: a few layers of a few samples
_SHARED: dict[str, OrderedDict] = {}
_SHARED_LOCK = threading.Lock()


def memo(kind: str, key: Hashable, build: Callable[[], T], *, keep: int = 2, shared: bool = False) -> T:
    """``build()`` for ``key``, or what it returned last time in this session (the ``keep`` latest keys per kind).

    ``shared=True`` keeps it for every session of this process instead (the :data:`SHARED_KEEP` latest
    keys per kind), and works outside a script run (the warm start). Only for what no visitor made: a
    shipped model on a sample picture, which a hall of students all open at once. A visitor's upload or
    model stays in their own session, and leaves with it.
    """
    if shared:
        with _SHARED_LOCK:
            slot = _SHARED.setdefault(kind, OrderedDict())
            if key in slot:
                slot.move_to_end(key)
                return slot[key]
        value = build()  # outside the lock: two first visitors may both build it, neither waits for the other
        with _SHARED_LOCK:
            slot[key] = value
            while len(slot) > max(keep, SHARED_KEEP):
                slot.popitem(last=False)
        return value
    store: dict[str, OrderedDict] = st.session_state.setdefault(KEY, {})
    slot = store.setdefault(kind, OrderedDict())
    if key in slot:
        slot.move_to_end(key)
        return slot[key]
    value = build()
    slot[key] = value
    while len(slot) > keep:
        slot.popitem(last=False)
    return value


def shared_kinds() -> dict[str, int]:
    """How many shared results each kind holds now (for tests and the curious)."""
    with _SHARED_LOCK:
        return {kind: len(slot) for kind, slot in _SHARED.items()}


def forget_all() -> None:
    """Drop everything this session memoised."""
    st.session_state.pop(KEY, None)
