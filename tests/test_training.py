"""Transfer learning on the real EfficientNet-Lite0: cached embeddings, the head, its numbers, the slots."""

from __future__ import annotations

import threading

import keras
import numpy as np
import pytest

from cnnviz.train import transfer as training
from cnnviz.train.demo_data import DEMO_CLASSES, demo_dataset

BASE = "efficientnet_lite0"


@pytest.fixture(scope="module")
def embedder(keras_home):
    from cnnviz.model.registry import load_model

    return training.embedding_model_for(load_model(BASE))


@pytest.fixture(scope="module")
def demo():
    data = demo_dataset(30, seed=0)
    images = [im for name in DEMO_CLASSES for im in data[name]]
    labels = np.repeat(np.arange(len(DEMO_CLASSES)), 30)
    return images, labels


@pytest.fixture(scope="module")
def embedded(embedder, demo):
    images, labels = demo
    store = training.EmbeddingStore()
    keys, x = training.embed_images(images, embedder, BASE, store=store)
    return store, keys, x


@pytest.mark.slow
def test_embeddings_are_the_pooled_1280_features_and_match_keras(embedder, demo, embedded):
    images, _ = demo
    _, keys, x = embedded
    assert x.shape == (90, 1280) and x.dtype == np.float32
    assert embedder.output_shape == (None, 1280)
    # Same numbers as Keras's own predict on the same resized pixels.
    from cnnviz.model.registry import prepare

    reference = embedder.predict(np.concatenate([prepare(im, embedder) for im in images[:4]]), verbose=0)
    np.testing.assert_allclose(x[:4], reference, rtol=1e-4, atol=1e-4)
    assert len(set(keys)) == 90  # every generated picture is different


@pytest.mark.slow
def test_retraining_hits_the_embedding_cache(embedder, demo, embedded):
    images, _ = demo
    store, keys, x = embedded
    hits, misses = store.hits, store.misses
    calls = []
    keys2, x2 = training.embed_images(images, embedder, BASE, store=store, on_progress=lambda d, t: calls.append(d))
    assert keys2 == keys
    np.testing.assert_array_equal(x2, x)
    assert store.hits - hits == 90 and store.misses == misses
    assert calls == []  # the network was not run at all
    # Another base name is another cache entry: it misses.
    training.embed_images(images[:2], embedder, "other_base", store=store)
    assert store.misses == misses + 2


@pytest.mark.slow
def test_demo_dataset_reaches_95_percent_validation_accuracy(demo, embedded):
    _, labels = demo
    _, _, x = embedded
    train, val = training.stratified_split(labels, 0.15, seed=0)
    head = training.build_head(1280, 3)
    seen: list[dict] = []
    history = training.train_head(head, x[train], labels[train], x[val], labels[val], on_epoch=seen.append)
    assert len(history.rows) == 50 and seen == history.rows and not history.stopped
    assert history.last is not None and history.last["val_accuracy"] >= 0.95
    result = training.evaluate(training.head_probabilities(head, x[val]), labels[val], list(DEMO_CLASSES))
    assert result.accuracy >= 0.95
    # The loop's reported validation numbers are Keras's own loss and accuracy for this head.
    probs = head.predict(x[val], verbose=0)
    keras_loss = float(keras.losses.SparseCategoricalCrossentropy()(labels[val], probs))
    assert history.last["val_loss"] == pytest.approx(keras_loss, rel=1e-4, abs=1e-6)
    assert history.last["val_accuracy"] == pytest.approx(float((probs.argmax(1) == labels[val]).mean()))


@pytest.mark.slow
def test_head_is_teachable_machines_and_training_is_seeded(embedded):
    _, _, x = embedded
    labels = np.repeat(np.arange(3), 30)
    head = training.build_head(1280, 3)
    assert [type(layer).__name__ for layer in head.layers] == ["Dense", "Dense"]
    assert head.layers[0].units == 100 and head.layers[0].activation.__name__ == "relu"
    assert head.layers[1].activation.__name__ == "softmax"
    runs = []
    for _ in range(2):
        h = training.build_head(1280, 3, seed=3)
        runs.append(training.train_head(h, x, labels, epochs=3, batch_size=16, learning_rate=0.001, seed=3).rows)
    assert [r["loss"] for r in runs[0]] == pytest.approx([r["loss"] for r in runs[1]], rel=1e-5)
    assert runs[0][-1]["loss"] < runs[0][0]["loss"]
    assert runs[0][0]["val_loss"] is None  # no validation set given


@pytest.mark.slow
def test_training_stops_when_the_callback_says_so(embedded):
    _, _, x = embedded
    labels = np.repeat(np.arange(3), 30)
    history = training.History()
    head = training.build_head(1280, 3)
    training.train_head(head, x, labels, epochs=50, on_epoch=lambda row: row["epoch"] >= 3, history=history)
    assert len(history.rows) == 3 and history.stopped and history.epochs_planned == 50


def test_stratified_split_holds_out_15_percent_of_each_class():
    labels = np.array([0] * 20 + [1] * 40 + [2] * 5 + [3] * 1)
    train, val = training.stratified_split(labels, 0.15, seed=0)
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(len(labels)))
    assert np.bincount(labels[val], minlength=4).tolist() == [3, 6, 1, 0]
    again = training.stratified_split(labels, 0.15, seed=0)
    assert np.array_equal(again[1], val)
    assert not np.array_equal(training.stratified_split(labels, 0.15, seed=1)[1], val)


def test_evaluate_counts_by_hand():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.4, 0.6]])
    labels = [0, 0, 1, 1, 1]
    result = training.evaluate(probs, labels, ["cat", "dog"])
    assert result.confusion.tolist() == [[1, 1], [1, 2]]
    assert result.per_class_accuracy.tolist() == [0.5, pytest.approx(2 / 3)]
    assert result.accuracy == pytest.approx(0.6)
    assert result.misclassified == [1, 2]


@pytest.mark.slow
def test_full_model_is_flat_and_gives_the_heads_probabilities(embedder, demo, embedded):
    images, _ = demo
    _, _, x = embedded
    head = training.build_head(1280, 3)
    training.train_head(head, x, np.repeat(np.arange(3), 30), epochs=2)
    model = training.full_model(embedder, head)
    kinds = {type(layer).__name__ for layer in model.layers}
    assert "Lambda" not in kinds and "Functional" not in kinds and "Sequential" not in kinds
    assert model.input_shape == (None, 224, 224, 3) and model.output_shape == (None, 3)
    direct = training.predict_probabilities(model, images[:5])
    via_head = training.head_probabilities(head, x[:5])
    np.testing.assert_allclose(direct, via_head, atol=1e-5)
    np.testing.assert_allclose(direct.sum(axis=1), 1.0, atol=1e-5)


def test_prediction_rows_and_csv_are_the_shared_builders():
    rows = training.prediction_rows(
        ["a.png", "b.png"],
        np.array([[0.25, 0.75], [0.9, 0.1]]),
        ["portrait", "landscape"],
        true_classes=["portrait", None],
    )
    assert rows[0] == {
        "file": "a.png",
        "folder": "",
        "true class": "portrait",
        "predicted class": "landscape",
        "confidence": 0.75,
        "correct": False,
        "unsure": False,
        "probability: portrait": 0.25,
        "probability: landscape": 0.75,
    }
    csv_text = training.rows_to_csv(rows)
    assert csv_text.splitlines()[0] == (
        "file,folder,true class,predicted class,confidence,correct,unsure,probability: portrait,probability: landscape"
    )
    assert csv_text.splitlines()[2] == "b.png,,,portrait,0.9,,no,0.9,0.1"


def test_store_is_bounded_and_keeps_thumbnails_not_images():
    store = training.EmbeddingStore(max_images=3, thumb_side=16)
    images = [np.full((200, 100, 3), i, np.uint8) for i in range(5)]
    for im in images:
        store.put(training.image_key(im), BASE, np.ones(1280, np.float32), im)
    assert len(store) == 3
    assert store.embedding(training.image_key(images[0]), BASE) is None  # oldest dropped
    thumb = store.thumbnail(training.image_key(images[4]))
    assert thumb is not None and thumb.shape == (16, 8, 3)
    # 5 000 images fit in well under 200 MB: measured on a real store filled with photo-sized images.
    full = training.EmbeddingStore()
    assert full.max_images >= 5000
    rng = np.random.default_rng(0)
    side = 3 * training.THUMB_SIDE  # larger than a thumbnail, so each one is as big as it gets
    for _ in range(40):
        im = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        full.put(training.image_key(im), BASE, rng.normal(size=1280), im)
    assert len(full) == 40
    assert 5000 * full.nbytes() / len(full) < 200e6


def test_training_slots_make_extra_trainings_wait():
    held = []
    release = threading.Event()

    def hold():
        with training.training_slot():
            held.append(1)
            release.wait(10)

    threads = [threading.Thread(target=hold) for _ in range(training.MAX_CONCURRENT_TRAININGS)]
    for t in threads:
        t.start()
    while len(held) < training.MAX_CONCURRENT_TRAININGS:
        threading.Event().wait(0.01)
    waits: list[float] = []
    with pytest.raises(training.SlotTimeout):
        with training.training_slot(on_wait=waits.append, poll_s=0.05, timeout_s=0.2):
            pass
    assert waits and waits[0] == 0.0
    release.set()
    for t in threads:
        t.join()
    before = len(waits)
    with training.training_slot(on_wait=waits.append, poll_s=0.05, timeout_s=1):
        pass  # a free slot: no waiting
    assert len(waits) == before >= 2
