"""cnnviz.model.features: every number the feature-map page shows matches Keras.

Tiny models are built here with known weights, so the right answer is known in advance.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from PIL import Image

keras = pytest.importorskip("keras")

from cnnviz.model import compiled, features  # noqa: E402


def _tiny_residual_model():  # a keras.Model
    """Conv → BN → ReLU → pool → depthwise → add (residual) → GAP → softmax: every kind of layer the viewer shows."""
    keras.utils.set_random_seed(1)
    inp = keras.Input((16, 16, 3), name="pixels")
    x = keras.layers.Rescaling(1 / 255.0, name="scale")(inp)
    x = keras.layers.Conv2D(6, 3, padding="same", name="conv1")(x)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU(6.0, name="relu1")(x)
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    y = keras.layers.DepthwiseConv2D(3, padding="same", name="dw2")(x)
    y = keras.layers.Activation("relu", name="act2")(y)
    x = keras.layers.Add(name="add2")([x, y])
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu", name="conv3")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    out = keras.layers.Dense(4, activation="softmax", name="probs")(x)
    model = keras.Model(inp, out, name="tiny_residual")
    # Non-trivial batch-norm statistics, so "BN left out" would show if the maps were wrong.
    bn = model.get_layer("bn1")
    bn.set_weights([np.linspace(0.5, 2, 6), np.linspace(-1, 1, 6), np.linspace(-0.2, 0.2, 6), np.linspace(0.5, 3, 6)])
    return model


def _image(h=16, w=16, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_feature_maps_equal_submodels_cut_at_each_layer():
    model = _tiny_residual_model()
    image = _image()
    maps = features.feature_maps(model, image)

    assert list(maps) == ["conv1", "relu1", "pool1", "dw2", "act2", "add2", "conv3"]  # no BN, no GAP/Dense
    x = image.astype(np.float32)[None]
    for name, fmap in maps.items():
        cut = keras.Model(model.input, model.get_layer(name).output)
        expected = np.asarray(cut(x, training=False))[0]
        assert fmap.dtype == np.float32 and fmap.shape == expected.shape
        np.testing.assert_allclose(fmap, expected, rtol=1e-5, atol=1e-5, err_msg=name)
    assert maps["pool1"].shape == (8, 8, 6) and maps["conv3"].shape == (3, 3, 8)


def test_layer_maps_of_two_images_in_one_pass_equal_each_image_alone():
    model = _tiny_residual_model()
    first, second = _image(seed=3), _image(20, 12, seed=4)  # another size: each is resized to the input
    for layer in ("relu1", "add2"):
        both = features.layer_maps(model, [first, second], layer)
        assert len(both) == 2
        for got, image in zip(both, (first, second)):
            np.testing.assert_allclose(got, features.feature_maps(model, image)[layer], rtol=1e-5, atol=1e-5)
    cached: Any = compiled.per_model(model, "features", lambda: None)
    run = cached[2]
    assert run.experimental_get_tracing_count() == 1  # a batch of two is not a new trace


def test_feature_model_is_one_model_built_once_and_traced_once():
    model = _tiny_residual_model()
    fmodel = features.feature_model(model)
    assert fmodel is features.feature_model(model)
    assert len(fmodel.outputs) == len(features.feature_layers(model))
    features.feature_maps(model, _image(seed=1))
    features.feature_maps(model, _image(seed=2))
    cached: Any = compiled.per_model(model, "features", lambda: None)  # the one built above
    run = cached[2]
    assert run.experimental_get_tracing_count() == 1


def test_feature_maps_resize_any_image_and_gray_for_one_channel_models():
    model = keras.Sequential(
        [
            keras.Input((12, 12, 1)),
            keras.layers.Conv2D(2, 3, name="c"),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    gray = np.full((40, 30, 3), 200, np.uint8)
    maps = features.feature_maps(model, gray)
    assert maps["c"].shape == (10, 10, 2)
    expected = np.asarray(model.get_layer("c")(np.full((1, 12, 12, 1), 200, np.float32)))[0]
    np.testing.assert_allclose(maps["c"], expected, rtol=1e-5, atol=1e-4)


def test_probabilities_match_keras():
    model = _tiny_residual_model()
    image = _image(seed=3)
    probs = features.probabilities(model, image)
    np.testing.assert_allclose(probs, np.asarray(model(image.astype(np.float32)[None]))[0], rtol=1e-5, atol=1e-6)
    assert probs.shape == (4,) and abs(probs.sum() - 1) < 1e-5


def _stack(*layers, size=32):  # a keras.Model
    return keras.Sequential([keras.Input((size, size, 3)), *layers])


@pytest.mark.parametrize(
    "layers, rf, jump",
    [
        ([keras.layers.Conv2D(1, 3), keras.layers.Conv2D(1, 3)], 5, 1),
        ([keras.layers.Conv2D(1, 3), keras.layers.MaxPooling2D(2), keras.layers.Conv2D(1, 3)], 8, 2),
        ([keras.layers.Conv2D(1, 3, strides=2), keras.layers.Conv2D(1, 3)], 7, 2),
        ([keras.layers.Conv2D(1, 5), keras.layers.Conv2D(1, 3, dilation_rate=2)], 9, 1),
        (
            [
                keras.layers.Conv2D(1, 7, strides=2, padding="same"),
                keras.layers.MaxPooling2D(3, 2, padding="same"),
                keras.layers.Conv2D(1, 3, padding="same"),
            ],
            19,
            4,
        ),  # the ResNet stem
    ],
)
def test_receptive_field_of_known_stacks(layers, rf, jump):
    model = _stack(*layers)
    last = model.layers[-1].name
    assert features.receptive_fields(model)[last] == (rf, jump)
    row = features.layer_table(model)[-1]
    assert (row.receptive_field, row.jump) == (rf, jump)


def test_layer_table_rows_follow_the_main_path_of_a_residual_model():
    model = _tiny_residual_model()
    rows = {row.name: row for row in features.layer_table(model)}
    assert rows["conv1"].params == 3 * 3 * 3 * 6 + 6
    assert rows["conv1"].output_shape == (16, 16, 6) and rows["conv1"].receptive_field == 3
    assert rows["pool1"].stride == 2 and rows["pool1"].receptive_field == 4 and rows["pool1"].jump == 2
    # dw2 sees 4 + 2·2 = 8; the add takes the larger of its two paths (pool1: 4, act2: 8).
    assert rows["add2"].receptive_field == 8
    assert rows["conv3"].stride == 2 and rows["conv3"].receptive_field == 12 and rows["conv3"].jump == 4
    assert rows["gap"].receptive_field == 16 and not rows["gap"].has_feature_map
    assert rows["bn1"].type == "BatchNormalization" and not rows["bn1"].has_feature_map
    assert rows["probs"].params == 8 * 4 + 4


def test_tile_channels_is_one_uint8_image_with_every_channel_normalised_alone():
    rng = np.random.default_rng(0)
    fmap = rng.normal(size=(4, 6, 5)).astype(np.float32)
    fmap[:, :, 3] *= 1000.0  # a loud channel must not darken the others
    fmap[:, :, 4] = 7.0  # a flat channel carries no pattern
    grid = features.tile_channels(fmap, columns=3, cell=6, gap=1)
    assert grid.dtype == np.uint8 and grid.shape == (2 * 4 + 1, 3 * 6 + 2, 3)
    tile = lambda i: grid[(i // 3) * 5 : (i // 3) * 5 + 4, (i % 3) * 7 : (i % 3) * 7 + 6]  # noqa: E731
    assert tile(0).max() > 200  # bright maximum of an ordinary channel, even next to the loud one
    for i in range(4):
        np.testing.assert_array_equal(
            tile(i), features.colorize((fmap[:, :, i] - fmap[:, :, i].min()) / np.ptp(fmap[:, :, i]))
        )
    np.testing.assert_array_equal(tile(4), features.colorize(np.zeros((4, 6))))
    assert (grid[4, :] == 255).all()  # white gap between rows


def test_tile_channels_sorts_by_mean_activation_and_enlarges_small_maps():
    fmap = np.zeros((3, 3, 4), np.float32)
    means = [0.1, 5.0, -2.0, 1.0]
    for c, m in enumerate(means):
        fmap[:, :, c] = m
        fmap[1, 1, c] = m + 1  # one hot spot so each tile has a pattern
    assert list(features.top_channels(fmap)) == [1, 3, 0, 2]
    assert list(features.top_channels(fmap, 2)) == [1, 3]
    grid = features.tile_channels(fmap, sort=True, columns=4, cell=30, gap=0)
    assert grid.shape == (30, 120, 3)  # 3×3 maps enlarged 10× with visible blocks
    assert (grid[:10, :10] == grid[0, 0]).all()
    big = features.tile_channels(np.random.default_rng(1).random((112, 112, 96), dtype=np.float32))
    assert max(big.shape) <= 1460 and big.shape[0] >= 10 * 112  # never shrinks a map


def test_png_bytes_is_lossless():
    grid = features.tile_channels(np.random.default_rng(2).random((9, 9, 7), dtype=np.float32))
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(features.png_bytes(grid)))), grid)


def test_overlay_and_colorize():
    image = np.zeros((20, 30, 3), np.uint8)
    channel = np.zeros((5, 5), np.float32)
    channel[0, 0] = 3.0
    out = features.overlay(image, channel, alpha=1.0, cmap="viridis")
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8
    assert out[0, 0].sum() > out[-1, -1].sum()  # the active corner is brighter than the rest
    photo = np.full((20, 30, 3), 90, np.uint8)
    out = features.overlay(photo, channel)
    assert (out[-5:, -5:] == 90).all()  # silent areas keep the picture as it is
    assert not (out[0, 0] == 90).all()
    np.testing.assert_array_equal(features.colorize(np.array([0.0, 1.0])), [[68, 1, 84], [253, 231, 37]])


def test_first_layer_kernels_are_rgb_tiles_with_zero_as_mid_gray():
    model = _stack(keras.layers.Conv2D(4, 3, name="first"), keras.layers.Conv2D(2, 3))
    kernel = np.zeros((3, 3, 3, 4), np.float32)
    kernel[:, :, 0, 1] = 1.0  # a "red" filter
    kernel[1, 1, 2, 2] = -1.0  # a "not blue" centre
    model.get_layer("first").set_weights([kernel, np.zeros(4, np.float32)])
    tiles = features.first_layer_kernels(model, scale=4)
    assert tiles.shape == (4, 12, 12, 3) and tiles.dtype == np.uint8
    assert (tiles[0] == 128).all()  # all-zero kernel: mid gray
    assert tuple(tiles[1, 0, 0]) == (255, 128, 128)
    assert tuple(tiles[2, 5, 5]) == (128, 128, 0) and tuple(tiles[2, 0, 0]) == (128, 128, 128)


def _colour_model():  # a keras.Model
    """A model whose answer is known: class 0 = 'red is present', class 1 = 'blue is present'.

    A 1×1 convolution with fixed weights makes channel 0 light up on red pixels and
    channel 1 on blue ones; global average pooling and an identity dense layer turn the
    amount of red/blue into class scores.
    """
    inp = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(2, 1, activation="relu", use_bias=False, name="colour")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(2, activation="softmax", name="probs")(x)
    model = keras.Model(inp, out)
    red, blue = [1.0, -1.0, -1.0], [-1.0, -1.0, 1.0]
    model.get_layer("colour").set_weights([np.array([red, blue], np.float32).T.reshape(1, 1, 3, 2) / 255.0])
    model.get_layer("probs").set_weights([np.eye(2, dtype=np.float32) * 50.0, np.zeros(2, np.float32)])
    return model


def _red_and_blue(h=32, w=32) -> np.ndarray:
    image = np.zeros((h, w, 3), np.uint8)
    image[: h // 2, : w // 2] = (255, 0, 0)  # a big red square, top-left quadrant
    image[3 * h // 4 :, 3 * w // 4 :] = (0, 0, 255)  # a smaller blue square, bottom-right
    return image


def test_grad_cam_highlights_the_region_that_drives_the_class():
    model = _colour_model()
    image = _red_and_blue()
    assert np.argmax(features.probabilities(model, image)) == 0  # more red than blue
    red = features.grad_cam(model, image, class_index=0)
    blue = features.grad_cam(model, image, class_index=1)
    for cam in (red, blue):
        assert cam.shape == (32, 32) and cam.dtype == np.float32
        assert cam.min() >= 0.0 and cam.max() == pytest.approx(1.0)
    top_left, bottom_right = (slice(0, 16), slice(0, 16)), (slice(24, 32), slice(24, 32))
    assert red[2:14, 2:14].min() > 0.9 and red[bottom_right].max() < 0.05
    assert blue[26:32, 26:32].min() > 0.9 and blue[top_left].max() < 0.05
    # No class given: the predicted class (red), even though its probability is ~1 (saturated softmax).
    np.testing.assert_allclose(features.grad_cam(model, image), red, atol=1e-6)


def test_grad_cam_comes_back_at_the_image_size_and_reuses_one_compiled_function():
    model = _colour_model()
    cam = features.grad_cam(model, _red_and_blue(96, 64), class_index=0)
    assert cam.shape == (96, 64)
    assert cam[:40, :24].mean() > 0.8 and cam[60:, :].max() < 0.1
    features.grad_cam(model, _red_and_blue(50, 50), class_index=1)
    run: Any = compiled.per_model(model, "gradcam:None", lambda: None)  # the one built above
    assert run.experimental_get_tracing_count() == 1


def test_grad_cam_default_layer_follows_conv_through_bn_and_activation():
    model = _tiny_residual_model()
    assert features.last_conv_layer(model).name == "conv3"
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="head_conv")(inp)
    x = keras.layers.BatchNormalization(name="head_bn")(x)
    x = keras.layers.ReLU(name="head_relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    chain = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(x))
    assert features.last_conv_layer(chain).name == "head_relu"
    cam = features.grad_cam(chain, _image(8, 8))
    assert cam.shape == (8, 8) and 0.0 <= cam.min() and cam.max() <= 1.0


def test_models_without_convolutions_get_a_sentence():
    model = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Flatten(), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="no convolution"):
        features.feature_maps(model, _image(4, 4))
    with pytest.raises(ValueError, match="no convolution"):
        features.grad_cam(model, _image(4, 4))


def test_shared_layers_use_this_models_graph_like_the_trainers_classifier():
    """The trainer's classifier = base layers + head layers first called inside another model.

    ``layer.output`` of the head's Dense layer belongs to the head model's graph; feature maps,
    the layer table and Grad-CAM must use the classifier's own graph instead.
    """
    base = _colour_model()
    embedder = keras.Model(base.input, base.layers[-2].output)  # up to the global pooling
    head = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax", name="head_probs")])
    head.layers[-1].set_weights([np.eye(2, dtype=np.float32) * 50.0, np.zeros(2, np.float32)])
    x = embedder.outputs[0]
    for layer in head.layers:
        x = layer(x)
    classifier = keras.Model(embedder.inputs, x)
    image = _red_and_blue()

    assert list(features.feature_maps(classifier, image)) == ["colour"]
    rows = {row.name: row for row in features.layer_table(classifier)}
    assert rows["head_probs"].output_shape == (2,) and rows["head_probs"].params == 6
    np.testing.assert_allclose(
        features.grad_cam(classifier, image, class_index=1), features.grad_cam(base, image, class_index=1), atol=1e-5
    )
    cams = features.grad_cams(classifier, [image, image], [0, 1])
    np.testing.assert_allclose(cams[1], features.grad_cam(base, image, class_index=1), atol=1e-5)


def test_a_model_wrapping_another_model_gets_a_clear_sentence():
    inner_in = keras.Input((16, 16, 3))
    inner = keras.Model(inner_in, keras.layers.Conv2D(4, 3, name="conv")(inner_in), name="backbone")
    outer_in = keras.Input((16, 16, 3))
    x = keras.layers.GlobalAveragePooling2D()(inner(outer_in))
    outer = keras.Model(outer_in, keras.layers.Dense(2, activation="softmax")(x), name="wrapped")
    with pytest.raises(ValueError, match="inside another model .*backbone"):
        features.feature_maps(outer, np.zeros((16, 16, 3), np.uint8))
