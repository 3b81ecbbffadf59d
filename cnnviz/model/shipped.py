"""Shipped models, loaded once per process, in the background as soon as a server starts.

Importing TensorFlow and EfficientNet-Lite0 and tracing its feature-map and Grad-CAM functions
takes about ten seconds. Without a warm start the first visitor of a model page pays that; with
it the server pays it right after it starts (:func:`start_warm_up`, called by ``serve.py``), and
a proxy sends visitors only once :func:`readiness` says the warm models are ready.

:func:`get` is the one loader of shipped models in a process: the warm-up thread and the pages'
``st.cache_resource`` function (``ui.models.shipped_model``) both call it, so a model is loaded
once, and a page asking for a model the warm-up is still loading waits for that load instead of
starting a second one.

Which models warm up: ``CNNVIZ_WARM_MODELS`` (comma-separated registry names; ``none`` for
none), by default the default model and the bundled CNNs (cheap: tens of KB each). MobileNetV2
is left to its first visitor: its weights are a download that most servers lack.

This module imports only the standard library at import time, so the readiness route can ask
:func:`readiness` from the web server's event loop without pulling TensorFlow in there.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Callable, Sequence

__all__ = ["DEFAULT", "get", "trace", "warm_names", "warm_up", "start_warm_up", "readiness"]

log = logging.getLogger(__name__)

#: ``cnnviz.model.registry.DEFAULT_MODEL`` (a test keeps them equal; importing the registry here
#: would import TensorFlow).
DEFAULT = "efficientnet_lite0"

_MODELS: dict[str, Any] = {}
_FAILED: dict[str, str] = {}
_TRACED: dict[int, Any] = {}
_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_LOCK = threading.Lock()
_READY = threading.Event()
_STATE: dict[str, Any] = {"started": None, "ready_after_s": None, "warming": None, "thread": None}
_START_LOCK = threading.Lock()


def _lock(name: str) -> threading.Lock:
    with _LOCKS_LOCK:
        return _LOCKS.setdefault(name, threading.Lock())


def get(name: str) -> Any:
    """The shipped model ``name`` (a registry name), loaded the first time any thread asks.

    Raises :class:`cnnviz.model.registry.ModelError` (one sentence) when it cannot be loaded;
    a failed load is not kept, so the next call tries again.
    """
    with _lock(name):
        model = _MODELS.get(name)
        if model is None:
            from cnnviz.model import registry

            model = registry.load_model(name)
            _MODELS[name] = model
            _FAILED.pop(name, None)
        return model


def warm_names() -> list[str]:
    """The models to load at start: ``CNNVIZ_WARM_MODELS``, else the default model and the bundled CNNs."""
    raw = os.environ.get("CNNVIZ_WARM_MODELS")
    if raw is not None:
        names = [n.strip() for n in raw.split(",") if n.strip()]
        return [] if names == ["none"] else names
    from cnnviz.model import registry

    return [registry.DEFAULT_MODEL] + [c["name"] for c in registry.available() if c["kind"] == "bundled"]


def trace(model: Any) -> None:
    """Trace what the feature-map page runs first, so its first visitor finds it compiled.

    Once per model and process: the page asks again for every model it shows (a server started
    without the warm start has not traced it), and a second trace would cost each first visitor
    four forward passes and a gradient (≈ 0.2 s of CPU for EfficientNet-Lite0).
    """
    with _lock(f"trace:{id(model)}"):
        if _TRACED.get(id(model)) is model:
            return
        _trace(model)
        _TRACED[id(model)] = model  # shipped models live as long as the process: the id stays theirs


def _trace(model: Any) -> None:
    import numpy as np

    from cnnviz.model import features

    probe = np.zeros((32, 32, 3), np.uint8)  # resized to the model's input: the traced shape is the real one
    maps = features.feature_maps(model, probe)
    # The page shows one layer of two pictures in one pass: a batch of two is its own trace.
    features.layer_maps(model, [probe, probe], next(iter(maps)))
    features.probabilities(model, probe)
    features.grad_cam(model, probe)
    # The page's charts and table: importing Altair and pandas costs its first visitor about a second.
    import cnnviz.charts.features  # noqa: F401
    import pandas  # noqa: F401


def _also(steps: Sequence[Callable[[], Any]]) -> None:
    for step in steps:
        try:
            step()
        except Exception as err:  # a warm-up step only saves time; the page does it again if needed
            log.warning("warm start: %s failed: %s", getattr(step, "__name__", step), err)


def warm_up(names: list[str] | None = None, also: Sequence[Callable[[], Any]] = ()) -> None:
    """Load and trace ``names`` (default :func:`warm_names`) in order, then run ``also``, then say ready.

    Ready waits for every model in ``names``, not only the default one: a model still tracing
    after the process said ready would take the CPU from its first visitor (on two cores, their
    feature-map page took twice as long). ``also``: more first-visit work (the server's, e.g.
    filling a page's cache). A model that fails is recorded (:func:`readiness` reports its
    sentence) and the rest carry on; only a failed default model keeps the process unready.
    """
    from cnnviz.model import registry

    names = warm_names() if names is None else names
    if _STATE["started"] is None:
        _STATE["started"] = time.monotonic()
    for name in names:
        _STATE["warming"] = name
        try:
            model = get(name)
            if registry.is_image_model(model):
                trace(model)
        except Exception as err:  # one bad model never stops the others, nor the server
            _FAILED[name] = str(err) or type(err).__name__
            log.warning("warm start: %s could not be loaded: %s", name, err)
    _STATE["warming"] = None
    if DEFAULT in _FAILED:
        return  # a proxy keeps visitors away: its readiness check reports why
    _also(also)
    _STATE["ready_after_s"] = round(time.monotonic() - _STATE["started"], 2)
    _READY.set()
    log.info("warm start: ready after %.1f s (%s)", _STATE["ready_after_s"], ", ".join(_MODELS) or "no models")


def start_warm_up(names: list[str] | None = None, also: Sequence[Callable[[], Any]] = ()) -> threading.Thread:
    """Start :func:`warm_up` in a daemon thread, once per process (later calls return the same thread)."""
    with _START_LOCK:
        thread = _STATE["thread"]
        if thread is None:
            _STATE["started"] = time.monotonic()
            thread = threading.Thread(target=warm_up, args=(names, also), name="cnnviz-warm-up", daemon=True)
            _STATE["thread"] = thread
            thread.start()
        return thread


def readiness() -> dict[str, Any]:
    """What a proxy's health check reads: ``ready`` is true once the warm models (the default one without
    fail) are loaded and traced.

    Also ``loaded`` (names), ``warming`` (the model loading now, or null), ``failed`` (name ->
    sentence) and ``ready_after_s`` (seconds from :func:`start_warm_up` to ready). Never blocks.
    """
    return {
        "ready": _READY.is_set(),
        "default": DEFAULT,
        "loaded": sorted(_MODELS),
        "warming": _STATE["warming"],
        "failed": dict(_FAILED),
        "started": _STATE["started"] is not None,
        "ready_after_s": _STATE["ready_after_s"],
    }
