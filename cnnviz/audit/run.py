"""Run a model over the audit's image sets: class probabilities, penultimate features, Grad-CAM.

The measures in :mod:`cnnviz.audit.measures` are pure numpy; this module is the one place the
audit touches Keras. Images go through the model in batches, in ONE compiled call that
returns both the class probabilities and the features entering the final Dense layer
(the "embedding" a feature-distance score compares), so each image is computed once. When the
model's base is converted to LiteRT already (:mod:`cnnviz.model.fast_embed`; the trainer converts
the shipped bases), the features come from LiteRT and only the final Dense layers run on Keras.

Conventions as in :mod:`cnnviz.model.features`: images ``(H, W, 3)`` RGB ``uint8`` of any size,
models take raw 0–255 pixels and output probabilities.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from cnnviz.model import compiled
from cnnviz.model import features as _features
from cnnviz.model import registry

__all__ = ["embedding_output", "predict_with_features", "grad_cams"]


def embedding_output(model: keras.Model) -> Any:
    """The tensor entering the model's final Dense layer (its penultimate features).

    Defined by :func:`cnnviz.model.registry.embedding_model`, so every page agrees on what
    "the features" are. Raises :class:`cnnviz.model.registry.ModelError` for a model without one.
    """
    return registry.embedding_model(model).outputs[0]


def _runner(model: keras.Model) -> Callable:
    """Features and probabilities of a batch in one traced call (built once per model)."""

    def build() -> Callable:
        both = keras.Model(model.inputs, [embedding_output(model), model.outputs[0]], name=f"{model.name}_audit")
        spec = tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32)

        @tf.function(input_signature=[spec], reduce_retracing=True)
        def run(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            feats, probs = both(x, training=False)
            return tf.reshape(feats, (tf.shape(feats)[0], -1)), probs

        return run

    return compiled.per_model(model, "audit", build)


def predict_with_features(
    model: keras.Model,
    images: Sequence[np.ndarray],
    *,
    batch_size: int = 32,
    progress: Callable[[int, int], object] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(probs (N, C) float32, features (N, D) float32)`` for ``N`` images of any size.

    ``progress(done, total)`` is called after each batch (the page drives ``st.progress``).
    """
    run = _runner(model)
    from cnnviz.model import fast_embed  # its base on LiteRT when converted (else this Keras call)

    fast = fast_embed.features_and_outputs(model, images=len(images))
    n_classes = int(model.outputs[0].shape[-1])
    probs, feats = [], []
    for start in range(0, len(images), batch_size):
        batch = np.concatenate([registry.prepare(img, model) for img in images[start : start + batch_size]])
        f, p = fast(batch) if fast is not None else run(tf.constant(batch))
        feats.append(np.asarray(f, dtype=np.float32))
        probs.append(np.asarray(p, dtype=np.float32))
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
    progress: Callable[[int, int], object] | None = None,
) -> list[np.ndarray]:
    """Grad-CAM map ``(H, W) float32`` in [0, 1] per image (:func:`cnnviz.model.features.grad_cam`).

    Maps come back at each image's own size, for the predicted class unless
    ``class_indices`` says otherwise.
    """
    maps: list[np.ndarray] = []
    step = 16
    for start in range(0, len(images), step):
        chunk = list(images[start : start + step])
        indices = None if class_indices is None else list(class_indices[start : start + step])
        maps += _features.grad_cams(model, chunk, indices, batch_size=step)
        if progress is not None:
            progress(len(maps), len(images))
    return maps


def run_audit(
    model: keras.Model,
    card: dict,
    class_names: Sequence[str],
    image_sets: dict[str, dict],
    reference: str,
    *,
    threshold: float = 0.5,
    k: int = 5,
    gallery_size: int = 8,
    gradcam_all: bool = False,
    settings: dict | None = None,
    progress: Callable[[float, str], object] | None = None,
) -> dict:
    """The whole audit: run the model over every set, score it, and Grad-CAM the worst failures.

    ``image_sets``: ``{set name: {"files": [str], "images": [(H, W, 3) uint8], "labels": [int] | None}}``.
    Returns the ``run`` dict of :mod:`cnnviz.audit.report` plus ``"gallery"`` (the most confident
    wrong/out-of-scope images with Grad-CAM overlays) and ``"cams"`` (every image's Grad-CAM
    when ``gradcam_all``). ``progress(fraction, message)`` reports what is happening.
    """
    from cnnviz.audit import measures as audit
    from cnnviz.audit import report  # pure numpy; imported here to keep this module's header short

    say = progress or (lambda fraction, message: None)
    total = sum(len(s["images"]) for s in image_sets.values()) or 1
    done = 0
    sets: dict[str, dict] = {}
    for name, data in image_sets.items():

        def step(n: int, _total: int, name: str = name, start: int = done) -> None:
            say(0.7 * (start + n) / total, f"Running the model on “{name}” ({n} of {_total} images)")

        probs, feats = predict_with_features(model, data["images"], progress=step)
        done += len(data["images"])
        labels = data.get("labels")
        sets[name] = {
            "files": list(data["files"]),
            "probs": probs,
            "features": feats,
            "labels": None if labels is None else np.asarray(labels, dtype=np.int64),
        }
    say(0.72, "Measuring confidence, entropy and distances to the reference set")
    evaluation = audit.evaluate(sets, reference, threshold=threshold, k=k)
    run = {
        "card": dict(card),
        "class_names": list(class_names),
        "sets": sets,
        "evaluation": evaluation,
        "settings": dict(settings or {}),
    }
    table = report.results_table(run)
    cams: dict[tuple[str, int], np.ndarray] = {}
    if gradcam_all:
        every = [(name, i) for name, data in image_sets.items() for i in range(len(data["images"]))]
        maps = grad_cams(
            model,
            [image_sets[n]["images"][i] for n, i in every],
            [int(evaluation["scores"][n]["top_class"][i]) for n, i in every],
            progress=lambda n, total: say(0.75 + 0.2 * n / total, f"Grad-CAM {n} of {total}"),
        )
        cams = dict(zip(every, maps))
    failures = report.most_confident_failures(table, gallery_size)
    index_in_set = table.groupby("set").cumcount()
    picked = [(row, int(index_in_set[row_index])) for row_index, row in failures.iterrows()]
    missing = [(row["set"], i) for row, i in picked if (row["set"], i) not in cams]
    if missing:
        say(0.95, f"Grad-CAM for the {len(missing)} images of the gallery")
        maps = grad_cams(
            model,
            [image_sets[n]["images"][i] for n, i in missing],
            [int(evaluation["scores"][n]["top_class"][i]) for n, i in missing],
        )
        cams.update(zip(missing, maps))
    gallery = []
    for row, i in picked:
        image, cam = image_sets[row["set"]]["images"][i], cams[(row["set"], i)]
        gallery.append(
            {
                **row.to_dict(),
                "image": image,
                "cam": cam,
                "heatmap": _features.overlay(image, cam, alpha=0.5, cmap="magma", normalise=False),
            }
        )
    say(1.0, "Done")
    run["gallery"] = gallery
    run["cams"] = cams if gradcam_all else {}
    return run


def transformation_effect(
    model: keras.Model, image: np.ndarray, class_names: Sequence[str], names: Sequence[str] | None = None
) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Predict one image under every style transformation of :mod:`cnnviz.audit.probes`.

    Returns ``(rows, images)``: per transformation its ``top_class``, ``confidence``,
    ``original_class_confidence`` (the probability left for the original's top class) and
    ``changed`` (top class differs from the original's); ``images`` the transformed pictures.
    """
    from cnnviz.audit import probes

    images = probes.transform(image, list(names) if names is not None else None)
    if "Original" not in images:
        images = {"Original": image.copy(), **images}
    probs, _ = predict_with_features(model, list(images.values()))
    original = int(probs[0].argmax())
    rows = []
    for (name, _img), p in zip(images.items(), probs):
        top = int(p.argmax())
        rows.append(
            {
                "transformation": name,
                "top_class": class_names[top],
                "confidence": float(p[top]),
                "original_class_confidence": float(p[original]),
                "changed": top != original,
            }
        )
    return rows, images
