"""The TensorFlow.js writer on tiny known-answer models (the browser test runs the real thing in Chromium)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from cnnviz.train import tfjs


def _tiny(first_rescaling: bool = True) -> keras.Model:
    inputs = keras.Input((8, 8, 3), name="pixels")
    x = keras.layers.Rescaling(1 / 128, offset=-127 / 128, name="rescaling")(inputs) if first_rescaling else inputs
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(max_value=6.0, name="relu6")(x)
    y = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = keras.layers.Add(name="add")([x, y])
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    out = keras.layers.Dense(2, activation="softmax", name="probs")(x)
    return keras.Model(inputs, out, name="tiny")


def _layer(model_json, name):
    return next(layer for layer in model_json["modelTopology"]["config"]["layers"] if layer["name"] == name)


def test_first_rescaling_takes_the_minus_one_to_one_pixels_ml5_feeds():
    model_json, _ = tfjs.tfjs_files(_tiny())
    cfg = _layer(model_json, "rescaling")["config"]
    x = np.arange(0, 256, dtype=np.float64)
    t = x / 127 - 1  # what ml5 and tmImage feed
    np.testing.assert_allclose(cfg["scale"] * t + cfg["offset"], (x - 127) / 128, atol=1e-12)
    assert cfg["scale"] == pytest.approx(127 / 128) and cfg["offset"] == pytest.approx(0.0, abs=1e-12)


def test_a_model_without_rescaling_gets_one_in_front():
    model_json, _ = tfjs.tfjs_files(_tiny(first_rescaling=False))
    added = _layer(model_json, "tm_input_to_0_255")
    assert added["config"]["scale"] == 127.0 and added["config"]["offset"] == 127.0
    assert added["inbound_nodes"] == [[["pixels", 0, 0, {}]]]
    assert _layer(model_json, "conv")["inbound_nodes"] == [[["tm_input_to_0_255", 0, 0, {}]]]


def test_topology_is_keras2_style_and_weights_match_the_manifest():
    model = _tiny()
    model_json, weights = tfjs.tfjs_files(model)
    topology = model_json["modelTopology"]["config"]
    assert _layer(model_json, "pixels")["config"]["batch_input_shape"] == [None, 8, 8, 3]
    assert _layer(model_json, "add")["inbound_nodes"] == [[["relu6", 0, 0, {}], ["dw", 0, 0, {}]]]
    assert topology["input_layers"] == [["pixels", 0, 0]] and topology["output_layers"] == [["probs", 0, 0]]
    manifest = model_json["weightsManifest"][0]
    assert manifest["paths"] == ["weights.bin"]
    names = [w["name"] for w in manifest["weights"]]
    assert "dw/depthwise_kernel" in names and "bn/moving_variance" in names and "probs/kernel" in names
    assert sum(4 * int(np.prod(w["shape"])) for w in manifest["weights"]) == len(weights)
    # The bytes are the Keras weights, in manifest order, float32 little-endian.
    offset = 0
    for spec in manifest["weights"]:
        size = int(np.prod(spec["shape"]))
        layer, weight = spec["name"].split("/")
        keras_name = "kernel" if weight == "depthwise_kernel" else weight
        value = next(v for v in model.get_layer(layer).weights if v.name == keras_name)
        got = np.frombuffer(weights, "<f4", count=size, offset=offset).reshape(spec["shape"])
        np.testing.assert_array_equal(got, keras.ops.convert_to_numpy(value))
        offset += 4 * size
    assert "dtype" not in str(
        [layer["config"].get("dtype") for layer in topology["layers"] if isinstance(layer["config"].get("dtype"), dict)]
    )


def test_an_unsupported_layer_is_refused_with_a_sentence():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(2, 3, name="conv")(inputs)
    x = keras.layers.LayerNormalization(name="norm")(x)
    out = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(x))
    with pytest.raises(tfjs.TfjsError, match="“norm” \\(LayerNormalization\\) has no TensorFlow.js export"):
        tfjs.tfjs_files(keras.Model(inputs, out))


def test_tm_metadata_has_teachable_machines_fields():
    meta = tfjs.tm_metadata(["a", "b"], 224, model_name="M", time_stamp="2026-01-01T00:00:00+00:00")
    assert meta["labels"] == ["a", "b"] and meta["imageSize"] == 224 and meta["tfjsVersion"] == tfjs.TFJS_VERSION


@pytest.mark.slow
def test_mobilenet_v2_as_the_trainer_builds_it_can_be_written():
    """The trainer's other base (MobileNetV2 behind Rescaling(1/127.5, -1)); random weights, same layers."""
    inputs = keras.Input((96, 96, 3), name="pixels")
    x = keras.layers.Rescaling(scale=1 / 127.5, offset=-1.0, name="rescaling")(inputs)
    base = keras.applications.MobileNetV2(weights=None, alpha=0.35, input_tensor=x, include_top=False, pooling="avg")
    out = keras.layers.Dense(3, activation="softmax", name="head")(base.output)
    model_json, weights = tfjs.tfjs_files(keras.Model(inputs, out))
    layers = model_json["modelTopology"]["config"]["layers"]
    assert {layer["class_name"] for layer in layers} <= set(tfjs.SUPPORTED_LAYERS)
    cfg = _layer(model_json, "rescaling")["config"]
    t = np.array([-1.0, 0.0, 1.0])
    np.testing.assert_allclose(cfg["scale"] * t + cfg["offset"], (127 * (t + 1)) / 127.5 - 1, atol=1e-12)
    assert len(weights) == 4 * sum(int(np.prod(w["shape"])) for w in model_json["weightsManifest"][0]["weights"])
