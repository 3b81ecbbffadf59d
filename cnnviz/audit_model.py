"""Run a model over the audit's image sets: class probabilities, penultimate features, Grad-CAM.

The measures in :mod:`cnnviz.audit` are pure numpy; this module is the one place the
audit touches Keras. Images go through the model in batches, in ONE compiled call that
returns both the class probabilities and the features entering the final Dense layer
(the "embedding" a feature-distance score compares), so each image is computed once.

Conventions as in :mod:`cnnviz.features`: images ``(H, W, 3)`` RGB ``uint8`` of any size,
models take raw 0–255 pixels and output probabilities.
"""
from __future__ import annotations

import threading
import weakref
from typing import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from cnnviz import features as _features

__all__ = ["embedding_output", "predict_with_features", "grad_cams"]

_LOCK = threading.Lock()
# Compiled two-output functions per model object; weak keys: they die with the model and
# are reachable only through it, so one visitor's model never serves another.
_RUN: "weakref.WeakKeyDictionary[keras.Model, Callable]" = weakref.WeakKeyDictionary()


def embedding_output(model: keras.Model):
    """The tensor entering the model's final Dense layer (its penultimate features).

    Uses :func:`cnnviz.models.embedding_model` when the registry provides it, so every
    page agrees on what "the features" are; otherwise the input of the last Dense layer.
    """
    try:
        from cnnviz.models import embedding_model  # the registry's definition wins

        return embedding_model(model).outputs[0]
    except (ImportError, AttributeError):
        pass
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    if not dense:
        raise ValueError(f"The model “{model.name}” has no final Dense layer, so it has no features to compare.")
    return dense[-1].input


def _runner(model: keras.Model) -> Callable:
    with _LOCK:
        run = _RUN.get(model)
        if run is None:
            both = keras.Model(model.inputs, [embedding_output(model), model.outputs[0]], name=f"{model.name}_audit")
            spec = tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32)

            @tf.function(input_signature=[spec], reduce_retracing=True)
            def run(x):
                feats, probs = both(x, training=False)
                return tf.reshape(feats, (tf.shape(feats)[0], -1)), probs

            _RUN[model] = run
    return run


def predict_with_features(
    model: keras.Model,
    images: Sequence[np.ndarray],
    *,
    batch_size: int = 32,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(probs (N, C) float32, features (N, D) float32)`` for ``N`` images of any size.

    ``progress(done, total)`` is called after each batch (the page drives ``st.progress``).
    """
    run = _runner(model)
    n_classes = int(model.outputs[0].shape[-1])
    probs, feats = [], []
    for start in range(0, len(images), batch_size):
        batch = np.concatenate([_features._prepare(img, model) for img in images[start:start + batch_size]])
        f, p = run(tf.constant(batch))
        feats.append(f.numpy().astype(np.float32))
        probs.append(p.numpy().astype(np.float32))
        if progress is not None:
            progress(min(start + batch_size, len(images)), len(images))
    if not probs:
        return np.zeros((0, n_classes), np.float32), np.zeros((0, 0), np.float32)
    return np.concatenate(probs), np.concatenate(feats)


def grad_cams(
    model: keras.Model,
    images: Sequence[np.ndarray],
    class_indices: Sequence[int] | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> list[np.ndarray]:
    """Grad-CAM map ``(H, W) float32`` in [0, 1] per image (:func:`cnnviz.features.grad_cam`).

    Maps come back at each image's own size, for the predicted class unless
    ``class_indices`` says otherwise.
    """
    maps = []
    for i, image in enumerate(images):
        index = None if class_indices is None else int(class_indices[i])
        maps.append(_features.grad_cam(model, image, index))
        if progress is not None:
            progress(i + 1, len(images))
    return maps
