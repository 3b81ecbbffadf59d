"""The embedding on LiteRT: the same numbers as Keras, the Keras fallback, and the overlapped pipeline."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Iterable, TypeVar

import numpy as np
import pytest

from cnnviz.model import fast_embed

T = TypeVar("T")


def _present(values: Iterable[T | None]) -> list[T]:
    """``values``, each of which must be there (an unreadable picture fails the test here)."""
    found = []
    for value in values:
        assert value is not None
        found.append(value)
    return found


SIDE = 16
BIG_JOB = fast_embed.CONVERT_MIN_IMAGES  # a job this size converts a model that is not converted yet


def _photos(shared_images: Path, n: int) -> list[Path]:
    paths = sorted(p for p in shared_images.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    assert len(paths) >= n
    return paths[:n]


def _tiny_known(seed: int = 0):
    """Pixels → 1×1 convolution (weights known) → ReLU → average pooling → Dense: the
    embedding is ``mean over pixels of relu(x @ W + b)``, computable with numpy."""
    import keras

    rng = np.random.default_rng(seed)
    weights = rng.normal(0, 0.01, (3, 4)).astype(np.float32)
    bias = np.array([0.1, -0.2, 0.3, 0.0], np.float32)
    inputs = keras.Input((SIDE, SIDE, 3))
    x = keras.layers.Conv2D(4, 1, name="mix")(inputs)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="predictions")(x)
    model = keras.Model(inputs, outputs, name=f"tiny_known_{seed}")
    model.get_layer("mix").set_weights([weights[None, None], bias])
    return model, weights, bias


def _unconvertible():
    """A visitor-style model with a layer whose operation (inverse error function) has no LiteRT kernel."""
    import keras

    class SoftErfinv(keras.layers.Layer):
        def call(self, x):
            return keras.ops.erfinv(keras.ops.tanh(x) * 0.5)

    inputs = keras.Input((SIDE, SIDE, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same")(x)
    x = SoftErfinv(name="soft_erfinv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="visitor_model")


@pytest.fixture(scope="module")
def photos16(shared_images):
    """Real photos and paintings, resized to the tiny models' 16 × 16 input, float32 0–255."""
    from cnnviz.images import load_image_file
    from cnnviz.train.transfer import to_model_input

    images = [load_image_file(p, max_side=256) for p in _photos(shared_images, 12)]
    return images, to_model_input(images, (SIDE, SIDE))


def test_tiny_known_model_on_litert_gives_the_known_answer_and_keras_numbers(keras_home, photos16):
    from cnnviz.model.registry import embedding_model

    model, weights, bias = _tiny_known()
    trunk = embedding_model(model)
    fast = fast_embed.embedder(trunk, images=BIG_JOB)
    assert fast_embed.is_fast(fast)
    _, pixels = photos16
    got = fast(pixels)
    known = np.maximum(pixels.reshape(len(pixels), -1, 3) @ weights + bias, 0).mean(axis=1)
    assert got.shape == (len(pixels), 4) and got.dtype == np.float32
    np.testing.assert_allclose(got, known, atol=1e-4)
    keras_features = trunk.predict(pixels, verbose=0)
    assert np.abs(got - keras_features).max() <= 1e-4
    # Not the Keras callable in disguise: Keras is the other kind of callable.
    assert not fast_embed.is_fast(fast_embed.embedder(trunk, fast=False))


def test_conversion_is_cached_by_content_and_kept_on_disk_only_for_shared_models(keras_home, photos16):
    import keras

    from cnnviz.model.registry import embedding_model

    model, _, _ = _tiny_known(seed=1)
    trunk = embedding_model(model)
    # Not converted yet and a small job: Keras, nothing converted.
    assert not fast_embed.is_fast(fast_embed.embedder(trunk, images=3))
    first = fast_embed.embedder(trunk, persist=True)
    assert fast_embed.is_fast(first)
    kept = keras_home / "litert" / f"{fast_embed.fingerprint(trunk)}.tflite"
    assert kept.is_file() and kept.stat().st_size > 0
    # Another model object with the same layers and weights (a classifier built on this base)
    # gets the same conversion, even for a one-image job.
    x = trunk.outputs[0]
    classifier = keras.Model(trunk.inputs, keras.layers.Dense(3, name="new_head")(x), name="classifier")
    same_trunk = embedding_model(classifier)
    assert same_trunk is not trunk
    assert fast_embed.embedder(same_trunk, images=1) is first
    # A fresh process (the memory cache emptied) reads the kept flatbuffer instead of converting.
    fast_embed._RUNNERS.clear()
    again = fast_embed.embedder(trunk, images=1)
    assert fast_embed.is_fast(again) and again is not first
    np.testing.assert_array_equal(again(photos16[1]), first(photos16[1]))
    # A model with other weights is another model.
    other, _, _ = _tiny_known(seed=2)
    assert fast_embed.fingerprint(embedding_model(other)) != fast_embed.fingerprint(trunk)


def test_a_damaged_kept_conversion_is_converted_again(keras_home, photos16):
    from cnnviz.model.registry import embedding_model

    trunk = embedding_model(_tiny_known(seed=7)[0])
    reference = fast_embed.embedder(trunk, persist=True)(photos16[1])
    kept = keras_home / "litert" / f"{fast_embed.fingerprint(trunk)}.tflite"
    kept.write_bytes(kept.read_bytes()[:100])  # a disk that filled up while writing
    fast_embed._RUNNERS.clear()  # a new process
    again = fast_embed.embedder(trunk, persist=True)
    assert fast_embed.is_fast(again)
    np.testing.assert_array_equal(again(photos16[1]), reference)
    assert kept.stat().st_size > 100


def test_a_model_litert_cannot_run_falls_back_to_keras_with_one_log_line(keras_home, photos16, caplog):
    from cnnviz.model.registry import embedding_model
    from cnnviz.train import transfer

    model = _unconvertible()
    trunk = embedding_model(model)
    with pytest.raises(fast_embed.ConversionError, match="Erfinv"):
        fast_embed.convert(trunk)  # really unconvertible, not a simulated failure
    images, pixels = photos16
    with caplog.at_level(logging.INFO, logger="cnnviz.model.fast_embed"):
        call = fast_embed.embedder(trunk, persist=True)
        assert not fast_embed.is_fast(call)
        np.testing.assert_allclose(call(pixels), trunk.predict(pixels, verbose=0), atol=1e-5)
        # The trainer's entry point: no error for the visitor, Keras's numbers.
        _, x = transfer.embed_images(images, trunk, "visitor")
        np.testing.assert_allclose(x, trunk.predict(pixels, verbose=0), atol=1e-5)
        # The pipeline too.
        streamed = np.stack(_present(r.embedding for r in fast_embed.embed_stream(images, trunk, batch_size=5)))
        np.testing.assert_allclose(streamed, x, atol=1e-6)
    ours = [r for r in caplog.records if r.name == "cnnviz.model.fast_embed"]
    assert len(ours) == 1 and ours[0].levelno == logging.WARNING
    assert "Keras" in ours[0].getMessage() and "visitor_model" in ours[0].getMessage()
    assert not (keras_home / "litert" / f"{fast_embed.fingerprint(trunk)}.tflite").exists()


def test_audit_features_of_a_converted_base_equal_keras(keras_home, photos16):
    """A classifier whose base is converted: features on LiteRT, its Dense tail on Keras."""
    from cnnviz.audit import run as audit_model
    from cnnviz.model import registry

    model, _, _ = _tiny_known(seed=3)
    fast_embed.embedder(registry.embedding_model(model), persist=True)  # as the trainer does for a shared base
    images, pixels = photos16
    assert fast_embed.features_and_outputs(model, images=len(images)) is not None
    probs, feats = audit_model.predict_with_features(model, images, batch_size=5)
    assert np.abs(feats - registry.embedding_model(model).predict(pixels, verbose=0)).max() <= 1e-4
    assert np.abs(probs - model.predict(pixels, verbose=0)).max() <= 1e-5
    # A model LiteRT cannot run keeps the audit's own Keras path.
    assert fast_embed.features_and_outputs(_unconvertible(), images=BIG_JOB) is None


# --------------------------------------------------------------------------- the overlapped pipeline


def test_stream_keeps_input_order_reads_every_kind_of_item_and_reports_bad_files(keras_home, shared_images, photos16):
    from cnnviz.images import load_image_file
    from cnnviz.model.registry import embedding_model

    trunk = embedding_model(_tiny_known(seed=4)[0])
    assert fast_embed.is_fast(fast_embed.embedder(trunk, persist=True))  # the stream runs on LiteRT
    paths = _photos(shared_images, 6)
    items = [
        paths[0],
        str(paths[1]),
        paths[2].read_bytes(),
        b"not an image at all",
        load_image_file(paths[3], max_side=512),
        paths[4],
        paths[5].read_bytes(),
    ]
    progress = []
    results = list(
        fast_embed.embed_stream(items, trunk, batch_size=3, on_progress=lambda d, t: progress.append((d, t)))
    )
    assert [r.index for r in results] == list(range(len(items)))
    assert [r.item is item for r, item in zip(results, items)] == [True] * len(items)
    assert progress == [(3, 7), (6, 7), (7, 7)]
    bad = results[3]
    assert (
        bad.image is None
        and bad.embedding is None
        and bad.error is not None
        and "not an image this app can read" in bad.error
    )
    good = [r for r in results if r.error is None]
    assert len(good) == 6
    # Each embedding is the Keras embedding of that very picture (decoded as the trainer decodes).
    from cnnviz.train.transfer import to_model_input

    reference = trunk.predict(to_model_input(_present(r.image for r in good), (SIDE, SIDE)), verbose=0)
    np.testing.assert_allclose(np.stack(_present(r.embedding for r in good)), reference, atol=1e-4)
    np.testing.assert_array_equal(good[0].image, load_image_file(paths[0], max_side=512))


def _decode_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "cnnviz-decode" and t.is_alive()]


def test_stream_reads_ahead_a_bounded_number_of_pictures_and_stops_when_abandoned(keras_home):
    from cnnviz.model.registry import embedding_model

    trunk = embedding_model(_tiny_known(seed=5)[0])
    assert fast_embed.is_fast(fast_embed.embedder(trunk, persist=True))
    rng = np.random.default_rng(0)
    pulled = []

    def collection(n):  # a long collection, generated as it is read
        for i in range(n):
            pulled.append(i)
            yield rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)

    batch, prefetch = 4, 2
    # In the queue, in the worker's hands, and the batch being embedded.
    bound = (prefetch + 2) * batch
    ahead = []
    stream = fast_embed.embed_stream(collection(1000), trunk, batch_size=batch, prefetch=prefetch)
    for result in stream:
        threading.Event().wait(0.002)  # a slow consumer lets the worker run as far ahead as it may
        ahead.append(len(pulled) - (result.index + 1))
        if result.index == 99:
            break
    assert max(ahead) <= bound
    assert max(ahead) >= batch  # it did read ahead, i.e. decoding overlapped the network
    stream.close()  # what leaving a for-loop's generator does when it is collected
    assert _decode_threads() == []
    assert len(pulled) <= 100 + bound


def test_stream_raises_what_the_worker_cannot_handle(keras_home):
    from cnnviz.model.registry import embedding_model

    trunk = embedding_model(_tiny_known(seed=6)[0])
    with pytest.raises(TypeError, match="cannot embed a int"):
        list(fast_embed.embed_stream([np.zeros((8, 8, 3), np.uint8), 42], trunk, batch_size=1))
    assert _decode_threads() == []


def test_thread_count_follows_the_cpu_affinity():
    import os

    assert fast_embed.thread_count() == len(os.sched_getaffinity(0))
    assert fast_embed.THREADS == fast_embed.thread_count()


# --------------------------------------------------------------------------- the real base network


@pytest.mark.slow
def test_efficientnet_lite0_embeddings_on_litert_equal_keras_on_real_images(keras_home, shared_images):
    from cnnviz.audit import run as audit_model
    from cnnviz.images import load_image_file
    from cnnviz.model import registry
    from cnnviz.train import transfer

    base = registry.load_model("efficientnet_lite0")
    embedder = transfer.embedding_model_for(base)
    paths = _photos(shared_images, 16)
    images = [load_image_file(p, max_side=512) for p in paths]
    pixels = transfer.to_model_input(images, (224, 224))
    keras_x = fast_embed.embedder(embedder, fast=False)(pixels)

    _, x = transfer.embed_images(images, embedder, "efficientnet_lite0")
    assert fast_embed.is_fast(fast_embed.embedder(embedder, images=1))
    assert x.shape == (16, 1280)
    assert np.abs(x - keras_x).max() <= 1e-4
    assert np.abs(x - embedder.predict(pixels, verbose=0)).max() <= 1e-4

    streamed = list(fast_embed.embed_stream(paths, embedder, batch_size=6))
    assert np.abs(np.stack(_present(r.embedding for r in streamed)) - keras_x).max() <= 1e-4

    probs, feats = audit_model.predict_with_features(base, images)
    assert np.abs(feats - keras_x).max() <= 1e-4
    assert np.abs(probs - base.predict(pixels, verbose=0)).max() <= 1e-4
