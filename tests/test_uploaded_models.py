"""Models a visitor uploads: only safe `.keras` files load; everything else gets one clear sentence."""

from __future__ import annotations

import io
import json
import pickle
import zipfile

import keras
import numpy as np
import pytest

from cnnviz.model import registry as models
from cnnviz.model.registry import ModelError, load_uploaded_model


def _save(model, tmp_path, name="model.keras") -> bytes:
    path = tmp_path / name
    model.save(path)
    return path.read_bytes()


def _image_classifier(activation="softmax"):
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(4, 3, activation="relu", kernel_regularizer="l2"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation=activation),
        ]
    )


@pytest.fixture(scope="module")
def good_bytes(tmp_path_factory):
    model = _image_classifier()
    return model, _save(model, tmp_path_factory.mktemp("good"))


def test_a_good_small_keras_model_loads_and_predicts(good_bytes):
    original, data = good_bytes
    model, card = load_uploaded_model(data, "my_cnn.keras")
    x = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(original(x)), atol=1e-6)
    assert card["kind"] == "visitor" and card["name"] == "my_cnn"
    assert card["input_size"] == [16, 16] and card["channels"] == 3
    assert card["classes"] == ["class 0", "class 1", "class 2"]
    json.dumps(card)
    # images of any size are resized to the model's input
    image = np.zeros((40, 30, 3), np.uint8)
    assert np.asarray(model(models.prepare(image, model))).shape == (1, 3)


def test_a_model_saved_after_compile_and_fit_loads(tmp_path):
    """Most tutorials save after compile() and fit(): the optimizer and metrics travel in the file."""
    original = _image_classifier()
    original.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(2)
    original.fit(rng.uniform(0, 255, (8, 16, 16, 3)), rng.integers(0, 3, 8), epochs=1, verbose=0)
    model, card = load_uploaded_model(_save(original, tmp_path), "tutorial.keras")
    x = rng.uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(original(x)), atol=1e-6)
    assert card["classes"] == ["class 0", "class 1", "class 2"]


def test_logits_get_a_softmax(tmp_path):
    original = _image_classifier(activation=None)
    model, card = load_uploaded_model(_save(original, tmp_path), "logits.keras")
    x = np.random.default_rng(1).uniform(0, 255, (1, 16, 16, 3)).astype("float32")
    logits = np.asarray(original(x))
    np.testing.assert_allclose(np.asarray(model(x)), np.exp(logits) / np.exp(logits).sum(), atol=1e-5)
    assert "softmax was added" in card["note"]


def test_lambda_layer_is_refused_before_keras_loads_it(tmp_path):
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Lambda(lambda t: t * 2, name="double")(inputs)
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    data = _save(keras.Model(inputs, outputs), tmp_path)
    with pytest.raises(ModelError, match="contains a Lambda layer \\(“double”\\), which holds Python code"):
        load_uploaded_model(data, "lambda.keras")


def test_lambda_nested_inside_a_submodel_is_refused(tmp_path):
    inner = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Lambda(lambda t: t + 1, name="hidden_code")])
    inputs = keras.Input((16, 16, 3))
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(inner(inputs)))
    with pytest.raises(ModelError, match="Lambda layer"):
        load_uploaded_model(_save(keras.Model(inputs, outputs), tmp_path), "nested.keras")


def test_custom_registered_layer_is_refused(tmp_path):
    @keras.saving.register_keras_serializable(package="evil")
    class Shout(keras.layers.Layer):
        def call(self, x):
            return x * 3

    model = keras.Sequential(
        [keras.Input((16, 16, 3)), Shout(), keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")]
    )
    with pytest.raises(ModelError, match="not a built-in Keras layer"):
        load_uploaded_model(_save(model, tmp_path), "custom.keras")


def _rewrite_config(data: bytes, change) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for name in source.namelist():
            content = source.read(name)
            if name == "config.json":
                config = json.loads(content)
                change(config)
                content = json.dumps(config).encode()
            target.writestr(name, content)
    return out.getvalue()


def test_hand_edited_config_naming_other_modules_is_refused(good_bytes):
    _, data = good_bytes

    def os_module(config):
        config["config"]["layers"][1]["module"] = "os"
        config["config"]["layers"][1]["class_name"] = "system"

    with pytest.raises(ModelError, match="“os.system”, which is not a built-in Keras layer"):
        load_uploaded_model(_rewrite_config(data, os_module), "edited.keras")

    def builtin_function_activation(config):
        config["config"]["layers"][2]["config"]["activation"] = {
            "module": "builtins",
            "class_name": "function",
            "config": "eval",
            "registered_name": "function",
        }

    with pytest.raises(ModelError, match="not a built-in Keras layer"):
        load_uploaded_model(_rewrite_config(data, builtin_function_activation), "edited.keras")


def test_truncated_zip_is_reported_as_damaged(good_bytes):
    _, data = good_bytes
    for cut in (len(data) // 2, len(data) - 30):
        with pytest.raises(ModelError, match="damaged or incomplete|is damaged"):
            load_uploaded_model(data[:cut], "cut.keras")


def test_renamed_text_file_is_not_a_model():
    with pytest.raises(ModelError, match="“notes.keras” is not a Keras model: a .keras file is a zip archive"):
        load_uploaded_model(b"These are my lecture notes, not a model.\n", "notes.keras")


def test_zip_without_keras_parts_is_not_a_model():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("holiday.txt", "photos")
    with pytest.raises(ModelError, match="zip archive but not a Keras model"):
        load_uploaded_model(out.getvalue(), "holiday.keras")


def test_h5_is_refused_even_when_renamed(tmp_path):
    h5 = tmp_path / "model.h5"
    _image_classifier().save(h5)
    data = h5.read_bytes()
    for filename in ("model.h5", "model.keras"):
        with pytest.raises(ModelError, match=r"HDF5 \(.h5\) models are not accepted"):
            load_uploaded_model(data, filename)


def test_pickles_savedmodels_and_other_files_are_refused():
    with pytest.raises(ModelError, match="Pickled models are refused"):
        load_uploaded_model(pickle.dumps({"weights": [1, 2]}), "model.pkl")
    with pytest.raises(ModelError, match="Only Keras .keras model files are accepted"):
        load_uploaded_model(b"\x08\x01", "saved_model.pb")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("my_model/saved_model.pb", b"\x08\x01")
    with pytest.raises(ModelError, match="TensorFlow SavedModel"):
        load_uploaded_model(out.getvalue(), "my_model.keras")
    with pytest.raises(ModelError, match="only .keras files are accepted"):
        load_uploaded_model(b"GIF89a", "cat.gif")


def test_model_whose_input_is_not_an_image(tmp_path):
    tabular = keras.Sequential([keras.Input((10,)), keras.layers.Dense(3, activation="softmax")])
    with pytest.raises(ModelError, match=r"input has shape \(None, 10\), which is not an image"):
        load_uploaded_model(_save(tabular, tmp_path), "tabular.keras")
    four_channels = keras.Sequential(
        [keras.Input((8, 8, 4)), keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")]
    )
    with pytest.raises(ModelError, match="not an image"):
        load_uploaded_model(_save(four_channels, tmp_path, "four.keras"), "four.keras")


def test_size_cap(good_bytes, monkeypatch):
    _, data = good_bytes
    monkeypatch.setattr(models, "MAX_UPLOAD_BYTES", len(data) - 1)
    with pytest.raises(ModelError, match="the limit is"):
        load_uploaded_model(data, "big.keras")
