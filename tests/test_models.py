"""The model registry: what it lists, what it says offline, and the helpers every page uses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from cnnviz.model import registry as models

ROOT = Path(__file__).resolve().parents[1]


def _tiny_classifier(shape=(28, 28, 1), classes=4, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape)
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(3, 3, activation="relu", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(5, activation="relu", name="hidden")(x)
    outputs = keras.layers.Dense(classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs)


def test_registry_lists_the_imagenet_models_default_first(shared_keras_cache):
    cards = models.available()
    assert cards[0]["name"] == models.DEFAULT_MODEL == "efficientnet_lite0"
    lite0 = cards[0]
    assert lite0.available and lite0.reason == ""
    assert lite0["kind"] == "imagenet" and lite0["input_size"] == [224, 224] and lite0["channels"] == 3
    assert len(lite0["classes"]) == 1000 and lite0["classes"][281] == "tabby"
    assert "mobilenet_v2" in [c["name"] for c in cards]
    json.dumps(cards)  # cards are JSON-able


def test_mobilenet_is_unavailable_without_its_weights_and_never_downloads(keras_home):
    card = models.model_card("mobilenet_v2")
    assert not (keras_home / "models" / models.MOBILENET_V2_WEIGHTS).exists()
    assert not card.available
    assert models.MOBILENET_V2_WEIGHTS in card.reason and "models folder" in card.reason
    # Visitors read it: the server's folders are not theirs to know.
    assert str(keras_home) not in card.reason and "/" not in card.reason.replace(models.MOBILENET_V2_WEIGHTS, "")
    assert card.reason.count(". ") == 0 and card.reason.endswith(".")  # one sentence
    with pytest.raises(models.ModelError, match="MobileNetV2 needs its ImageNet weights"):
        models.load_model("mobilenet_v2")
    assert not (keras_home / "models" / models.MOBILENET_V2_WEIGHTS).exists()


def test_unknown_model_is_a_clear_error():
    with pytest.raises(models.ModelError, match="no model called “nope”"):
        models.load_model("nope")


@pytest.mark.slow
def test_empty_keras_home_offline_sentences(tmp_path):
    # A fresh process: Keras reads KERAS_HOME once at import, so the empty cache needs its own.
    script = (
        "import json; from cnnviz.model import registry as models\n"
        "cards = {c['name']: c for c in models.available()}\n"
        "print(json.dumps({n: {k: c[k] for k in ('available', 'reason', 'note')} for n, c in cards.items()"
        " if c['kind'] == 'imagenet'} | {'names': models.class_names('efficientnet_lite0')[280:282]}))\n"
    )
    env = {**os.environ, "KERAS_HOME": str(tmp_path / "empty-keras")}
    run = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got["efficientnet_lite0"]["available"] is True
    assert got["mobilenet_v2"]["available"] is False
    assert "models folder" in got["mobilenet_v2"]["reason"] and str(tmp_path) not in got["mobilenet_v2"]["reason"]
    # The class names ship in data/ for exactly this case (a fresh clone, an empty cache).
    assert got["names"] == ["grey fox", "tabby"]
    assert got["efficientnet_lite0"]["note"] == ""


def test_bundled_models_are_listed_and_loaded_generically(tmp_path):
    model = _tiny_classifier(classes=3)
    model.save(tmp_path / "demo_cnn.keras")
    card = {
        "name": "demo_cnn",
        "title": "Demo",
        "classes": ["a", "b", "c"],
        "input_size": [28, 28],
        "channels": 1,
        "test_accuracy": 0.5,
    }
    (tmp_path / "demo_cnn.json").write_text(json.dumps(card))
    (tmp_path / "orphan.json").write_text(json.dumps({**card, "name": "orphan"}))  # card without its model
    (tmp_path / "notes.json").write_text("{not json")

    listed = {c["name"]: c for c in models.available(tmp_path) if c["kind"] == "bundled"}
    assert set(listed) == {"demo_cnn", "orphan"}
    assert listed["demo_cnn"].available and listed["demo_cnn"]["test_accuracy"] == 0.5
    assert not listed["orphan"].available and "orphan.keras is missing" in listed["orphan"].reason
    assert models.class_names(listed["demo_cnn"]) == ["a", "b", "c"]

    loaded = models.load_model("demo_cnn", tmp_path)
    x = np.random.default_rng(1).uniform(0, 255, (2, 28, 28, 1)).astype("float32")
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)


@pytest.mark.slow
def test_shipped_bundled_cards_match_their_models():
    bundled = [c for c in models.available() if c["kind"] == "bundled"]
    if not bundled:
        pytest.skip("no bundled models in data/models yet")
    for card in bundled:
        assert card.available, card.reason
        model = models.load_model(card["name"])
        assert list(model.input_shape[1:3]) == card["input_size"] and model.input_shape[3] == card["channels"]
        assert model.output_shape[-1] == len(card["classes"])


def test_prepare_resizes_and_grays_for_the_model():
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    gray_model = _tiny_classifier((28, 28, 1))
    x = models.prepare(image, gray_model)
    assert x.shape == (1, 28, 28, 1) and x.dtype == np.float32
    expected = np.asarray(Image.fromarray(image).convert("L").resize((28, 28), Image.Resampling.BILINEAR), np.float32)
    np.testing.assert_array_equal(x[0, ..., 0], expected)

    rgb_model = _tiny_classifier((32, 40, 3))
    x = models.prepare(image, rgb_model)
    assert x.shape == (1, 32, 40, 3) and 0 <= x.min() and x.max() <= 255 and x.max() > 1  # raw pixels, no scaling


def test_embedding_model_outputs_what_enters_the_last_dense_layer():
    model = _tiny_classifier(classes=4)
    emb = models.embedding_model(model)
    assert emb.output_shape == (None, 5)
    x = np.random.default_rng(3).uniform(0, 255, (3, 28, 28, 1)).astype("float32")
    features = np.asarray(emb(x))
    dense = model.get_layer("predictions")
    w, b = dense.get_weights()
    logits = features @ w + b
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(probs, np.asarray(model(x)), atol=1e-5)

    no_dense = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3)])
    with pytest.raises(models.ModelError, match="no final Dense layer"):
        models.embedding_model(no_dense)


def test_top_k_orders_by_probability():
    probs = np.array([[0.1, 0.5, 0.05, 0.35]])
    assert models.top_k(probs, ["a", "b", "c", "d"], 2) == [("b", 0.5), ("d", 0.35)]
    assert [n for n, _ in models.top_k(probs[0], ["a", "b", "c", "d"], 10)] == ["b", "d", "a", "c"]


@pytest.mark.slow
def test_mobilenet_v2_when_its_weights_are_in_the_keras_cache(tmp_path):
    # Offline there are no real ImageNet weights, so a stand-in weight file (random weights, the
    # real HDF5 layout Keras downloads) checks the wiring: the registry lists the model, and it
    # equals keras.applications.MobileNetV2 applied to pixels scaled to [-1, 1].
    script = r"""
import json, h5py, numpy as np, keras
from keras.src.legacy.saving.legacy_h5_format import save_weights_to_hdf5_group
from cnnviz.model import registry as models
keras.utils.set_random_seed(0)
reference = keras.applications.MobileNetV2(weights=None)
from cnnviz.keras_cache import keras_cache_dir
path = keras_cache_dir() / "models" / models.MOBILENET_V2_WEIGHTS
path.parent.mkdir(parents=True)
with h5py.File(path, "w") as f:
    save_weights_to_hdf5_group(f, reference)
card = models.model_card("mobilenet_v2")
model = models.load_model("mobilenet_v2")
x = np.random.default_rng(0).uniform(0, 255, (2, 224, 224, 3)).astype("float32")
diff = float(np.abs(np.asarray(model(x)) - np.asarray(reference(x / 127.5 - 1))).max())
print(json.dumps({"available": card.available, "diff": diff, "first": model.layers[1].name,
                  "nested": any(isinstance(l, keras.Model) for l in model.layers),
                  "shape": list(model.output_shape)}))
"""
    env = {**os.environ, "KERAS_HOME": str(tmp_path / "keras")}
    run = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got["available"] is True
    assert got["first"] == "rescaling" and got["nested"] is False  # one flat model: every layer visible
    assert got["shape"] == [None, 1000]
    assert got["diff"] < 1e-5
