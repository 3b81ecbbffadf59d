"""A tiny CNN that tells three generated abstract styles apart, shared by the audit tests.

Mondrian grids, Rothko fields and Kandinsky circles are easy to learn at 32 × 32 pixels in
a few seconds, so the audit can be tested on a model that really knows its classes.
"""

from __future__ import annotations

import functools

import numpy as np

from cnnviz.audit import probes

SIZE = 32
KINDS = ("Mondrian grid", "Rothko colour fields", "Kandinsky circles and lines")


def styles(per_class: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """``per_class`` images of each kind, in class order, and their labels (seeds never overlap across calls)."""
    images = [probes.GENERATORS[kind]((SIZE, SIZE), seed * 1000 + i) for kind in KINDS for i in range(per_class)]
    return images, np.repeat(np.arange(len(KINDS)), per_class)


@functools.lru_cache(maxsize=1)
def tiny_model():
    """``(model, card)``: raw 0–255 pixels in, probabilities out, like every model of the app."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu", padding="same")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(16, 3, activation="relu", padding="same")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(16, activation="relu", name="hidden")(x)
    outputs = keras.layers.Dense(len(KINDS), activation="softmax", name="predictions")(x)
    model = keras.Model(inputs, outputs, name="tiny_styles")
    images, labels = styles(30, seed=1)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(np.stack(images).astype("float32"), labels, epochs=15, batch_size=30, verbose=0)
    card = {
        "name": "tiny_styles",
        "title": "Tiny abstract-styles CNN",
        "kind": "visitor",
        "classes": list(KINDS),
        "input_size": [SIZE, SIZE],
        "channels": 3,
        "description": "Trained in the test on generated Mondrian, Rothko and Kandinsky images.",
    }
    return model, card
