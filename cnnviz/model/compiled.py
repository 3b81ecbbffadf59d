"""One cache of compiled functions per model, for every page (features, Grad-CAM, training, audit, embeddings).

Tracing a Keras model into a ``tf.function`` takes a second or more; calling the traced
function takes milliseconds. Each module asks :func:`per_model` for the function it needs
under its own ``kind`` ("inference", "features", "gradcam:<layer>", "audit", …); the function
is built once per model object and dies with it (weak keys: a visitor's model, reachable only
from that visitor's session, never serves anyone else, and a dropped model frees its graphs).
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Callable, TypeVar

import keras
import tensorflow as tf

__all__ = ["per_model", "inference"]

T = TypeVar("T")

_CACHE: "weakref.WeakKeyDictionary[keras.Model, dict[str, Any]]" = weakref.WeakKeyDictionary()
_LOCK = threading.RLock()  # re-entrant: building one function may ask for another of the same model


def per_model(model: keras.Model, kind: str, build: Callable[[], T]) -> T:
    """The ``kind`` function of ``model``, built by ``build()`` the first time it is asked for."""
    with _LOCK:
        functions = _CACHE.setdefault(model, {})
        if kind not in functions:
            functions[kind] = build()
        return functions[kind]


def inference(model: keras.Model) -> Callable[[Any], Any]:
    """``model(x, training=False)`` traced once for batches of the model's input size (float32)."""

    def build() -> Callable[[Any], Any]:
        spec = tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32)
        return tf.function(lambda x: model(x, training=False), input_signature=[spec], reduce_retracing=True)

    return per_model(model, "inference", build)
