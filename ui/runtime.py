"""How the Streamlit runtime treats this process: Keras's state is left alone after a script run.

Streamlit calls ``keras.backend.clear_session()`` after every script run, fragment reruns
included (``script_runner._clean_problem_modules``). For this app that is pure cost, measured on
the 2-core server: ``clear_session`` runs ``gc.collect()`` over TensorFlow's millions of objects
(≈ 0.14 s of CPU) and empties TensorFlow's kernel cache, so the next forward pass of
EfficientNet-Lite0 costs ≈ 0.34 s instead of ≈ 0.04 s. A feature-map click paid that four times
(two images' maps, the probabilities, Grad-CAM): most of its 1.3 s. It also swapped Keras's
state out from under a training running in the job pool (it retraced and slowed 30-fold).

What ``clear_session`` protects against, models built in every run piling up in Keras's
global state, does not happen here: models are built once (``st.cache_resource``, the
per-model cache in :mod:`cnnviz.model.compiled`), and Keras's global state is thread-local, so a
script thread's state goes with its thread. Matplotlib is still closed, as Streamlit does.
"""

from __future__ import annotations

import ctypes
import gc
import os
import sys
import threading
import time
from typing import Any

from streamlit.runtime.scriptrunner import script_runner

__all__ = ["keep_keras_state", "tidy_memory_every", "TIDY_S"]

TIDY_S = float(os.environ.get("CNNVIZ_TIDY_S", "60"))


def _clean_without_keras() -> None:
    pyplot: Any = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close("all")


_clean_without_keras.cnnviz_keeps_keras = True  # type: ignore[attr-defined]


def keep_keras_state() -> None:
    """Replace Streamlit's after-run clean-up by one that leaves Keras alone (idempotent)."""
    if not getattr(script_runner._clean_problem_modules, "cnnviz_keeps_keras", False):
        script_runner._clean_problem_modules = _clean_without_keras


_TIDY_LOCK = threading.Lock()
_TIDY_STARTED = False


def _malloc_trim() -> None:
    """Hand the allocator's free pages back to the operating system (glibc only; elsewhere nothing)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _tidy_forever(every_s: float) -> None:
    while True:
        time.sleep(every_s)
        gc.collect()
        _malloc_trim()


def tidy_memory_every(every_s: float = TIDY_S) -> None:
    """Collect garbage and trim the allocator every ``every_s`` seconds, on one thread for the process.

    Instead of Streamlit's ``gc.collect()`` after every script run (``runner.postScriptGC`` is off in
    ``.streamlit/config.toml``): a closed session's cyclic garbage (a visitor's Keras model) is freed
    within a minute, and glibc returns the freed pages, which it otherwise keeps in its per-thread
    arenas (every session runs its script on its own thread).
    """
    global _TIDY_STARTED
    with _TIDY_LOCK:
        if _TIDY_STARTED:
            return
        _TIDY_STARTED = True
    threading.Thread(target=_tidy_forever, args=(every_s,), name="cnnviz-tidy-memory", daemon=True).start()
