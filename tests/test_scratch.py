"""The from-scratch builder: summary numbers equal Keras's, impossible stacks refused in one sentence,
the bundled models are the builder's presets, seeds reproduce, data sources and augmentation work."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from cnnviz.train import scratch as S
from cnnviz.train.demo_data import demo_dataset

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("key", list(S.PRESETS))
@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3)])
def test_summary_equals_keras(key, shape):
    preset = S.PRESETS[key]
    augment = S.Augment(flip=True, rotation=0.05, shift=0.1, noise=0.05) if key == "carpentries" else preset.augment
    rows = S.summary(preset.layers, shape, 10, augment)
    model = S.build_model(preset.layers, shape, 10, augment=augment)
    by_name = {layer.name: layer for layer in model.layers}
    assert [r.name for r in rows] == [layer.name for layer in model.layers]
    for row in rows:
        layer = by_name[row.name]
        assert tuple(layer.output.shape[1:]) == row.shape, row.name
        assert layer.count_params() == row.params, row.name
    assert sum(r.params for r in rows) == model.count_params()


def test_carpentries_shapes_as_the_lesson_prints_them():
    rows = S.summary(S.PRESETS["carpentries"].layers, (32, 32, 3), 10)
    assert [(r.name, r.shape_text, r.params) for r in rows[2:]] == [
        ("conv1", "30 × 30 × 16", 448),
        ("pool1", "15 × 15 × 16", 0),
        ("conv2", "13 × 13 × 32", 4640),
        ("pool2", "6 × 6 × 32", 0),
        ("flatten", "1152", 0),
        ("dense1", "64", 73792),
        ("predictions", "10", 650),
    ]


@pytest.mark.parametrize(
    "layers, words",
    [
        ([S.MaxPooling2D(2)] * 5 + [S.Flatten()], "smaller than the window"),
        ([S.Conv2D(8, 3, stride=2, padding="same")] * 6 + [S.MaxPooling2D(2, padding="same"), S.Flatten()], None),
        ([S.Flatten(), S.Conv2D(8, 3)], "after a Flatten"),
        ([S.Conv2D(8, 3), S.Dense(10)], "put a Flatten layer before it"),
        ([S.Conv2D(8, 3)], "add a Flatten layer"),
        ([S.Flatten(), S.Dropout(1.0)], "rate"),
        ([S.Flatten(), S.Flatten()], "already one row"),
        ([S.Conv2D(8, 30), S.Flatten()], "30×30 window over a 28×28 map"),
        ([S.Flatten(), S.Dense(5000), S.Dense(5000)], "parameters"),
        ([S.Conv2D(0, 3), S.Flatten()], "at least 1"),
    ],
)
def test_impossible_stacks_get_one_sentence(layers, words):
    if words is None:  # 'same' padding never shrinks a map below 1×1: allowed
        S.validate(layers, (28, 28, 1), 10)
        return
    with pytest.raises(S.ArchitectureError) as err:
        S.build_model(layers, (28, 28, 1), 10)
    text = str(err.value)
    assert words in text and text.endswith(".") and "Error" not in text
    assert text.startswith("Layer ") or "Flatten" in text or "parameters" in text


def test_pooling_below_one_pixel_is_refused_before_keras_sees_it():
    layers = [S.Conv2D(4, 3)] + [S.MaxPooling2D(2)] * 5 + [S.Flatten()]
    with pytest.raises(S.ArchitectureError, match=r"Layer 6 \(MaxPooling2D\) slides a 2×2 window over a 1×1 map"):
        S.summary(layers, (28, 28, 1), 10)
    rows = S.summary(layers[:5] + layers[6:], (28, 28, 1), 10)  # one pooling fewer fits: 26 → 13 → 6 → 3 → 1
    assert rows[-3].shape == (1, 1, 4)


def _layer_facts(model: keras.Model) -> list[tuple]:
    keys = (
        "filters",
        "kernel_size",
        "strides",
        "padding",
        "activation",
        "use_bias",
        "units",
        "rate",
        "pool_size",
        "scale",
        "height_factor",
        "mode",
    )
    return [
        (
            type(layer).__name__,
            layer.name,
            tuple((k, str(layer.get_config().get(k))) for k in keys if k in layer.get_config()),
        )
        for layer in model.layers
    ]


@pytest.mark.parametrize("name", ["carpentries", "lenet5", "better"])
def test_bundled_models_are_the_builders_presets(name):
    """The page and scripts/train_fashion_mnist.py build the same networks as the shipped files hold."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_script", ROOT / "scripts" / "train_fashion_mnist.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    shipped = keras.saving.load_model(ROOT / "data" / "models" / f"fashion_mnist_{name}.keras", compile=False)
    built = script.build(name, "fashion_mnist", (28, 28, 1))
    assert _layer_facts(built) == _layer_facts(shipped)
    assert built.count_params() == shipped.count_params()
    card = json.loads((ROOT / "data" / "models" / f"fashion_mnist_{name}.json").read_text())
    assert card["params"] == built.count_params()


def test_same_seed_same_start_other_seed_other_start():
    layers = S.PRESETS["carpentries"].layers
    a = S.build_model(layers, (28, 28, 1), 10, seed=3).get_weights()
    b = S.build_model(layers, (28, 28, 1), 10, seed=3).get_weights()
    c = S.build_model(layers, (28, 28, 1), 10, seed=4).get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])


@pytest.mark.slow
def test_training_with_a_seed_reproduces(keras_home):
    data = S.demo_shapes(40, size=32, colour=False)
    x, y, xv, yv = S.split_validation(data.x_train, data.y_train, 0.2, seed=0)
    runs = []
    for _ in range(2):
        model = S.build_model(S.PRESETS["carpentries"].layers, data.input_shape, 3, seed=0)
        hist = S.train(model, x, y, xv, yv, epochs=2, batch_size=16, seed=0)
        runs.append((hist, model.get_weights()[0]))
    assert set(runs[0][0]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    np.testing.assert_allclose(runs[0][0]["loss"], runs[1][0]["loss"], rtol=1e-4)
    np.testing.assert_allclose(runs[0][1], runs[1][1], atol=1e-5)


@pytest.mark.slow
def test_augment_preview_changes_training_images_only():
    images = S.demo_shapes(4, size=32).x_train[:3]
    same = S.augment_preview(images, S.Augment(), copies=2)
    assert same.shape == (3, 2, 32, 32, 3) and np.array_equal(same[:, 0], images)
    moved = S.augment_preview(images, S.Augment(flip=True, rotation=0.05, shift=0.1, noise=0.05), copies=3)
    assert moved.shape == (3, 3, 32, 32, 3) and moved.dtype == np.uint8
    assert not np.array_equal(moved[:, 0], images) and not np.array_equal(moved[:, 0], moved[:, 1])
    model = S.build_model([S.Flatten()], (32, 32, 3), 3, augment=S.Augment(flip=True, noise=0.1))
    x = images.astype("float32")
    np.testing.assert_allclose(model(x, training=False), model(x, training=False))  # inference: no randomness


def test_fashion_mnist_from_the_keras_cache(shared_keras_cache):
    data = S.load_keras_dataset("fashion_mnist")
    assert data.x_train.shape == (60000, 28, 28, 1) and data.x_test.shape == (10000, 28, 28, 1)
    assert (
        data.x_train.dtype == np.uint8 and data.class_names[0] == "T-shirt/top" and set(data.y_test) == set(range(10))
    )
    x, y = S.take_subset(data.x_train, data.y_train, 2000, seed=1)
    x2, _ = S.take_subset(data.x_train, data.y_train, 2000, seed=1)
    assert len(x) == 2000 and np.array_equal(x, x2) and len(set(y)) == 10


def test_a_data_set_not_in_the_cache_gets_one_sentence(keras_home):
    if S.keras_dataset_cached("cifar10"):
        pytest.skip("CIFAR-10 is cached here")
    with pytest.raises(S.DataError) as err:
        S.load_keras_dataset("cifar10", download=False)
    assert str(err.value).startswith("CIFAR-10 is not in this server's Keras cache")


def _zip(per_class: int, with_testing: bool) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, images in demo_dataset(per_class, size=80, seed=5).items():
            for i, im in enumerate(images):
                png = io.BytesIO()
                Image.fromarray(im).save(png, format="PNG")
                part = "training/" if with_testing else ""
                archive.writestr(f"{part}{name}/{i}.png", png.getvalue())
                if with_testing and i < 2:
                    archive.writestr(f"testing/{name}/t{i}.png", png.getvalue())
        archive.writestr("notes.txt", "not an image")
    return buffer.getvalue()


def test_class_folders_from_a_zip_resized_gray_or_colour():
    gray = S.dataset_from_zip(_zip(10, False), size=32, colour=False, test_fraction=0.2)
    assert gray.x_train.shape[1:] == (32, 32, 1) and gray.class_names == ["square", "triangle", "circle"]
    assert len(gray.x_train) + len(gray.x_test) == 30 and sorted(np.bincount(gray.y_test)) == [2, 2, 2]
    assert any("notes.txt" in line for line in gray.skipped)
    colour = S.dataset_from_zip(_zip(6, True), size=64, colour=True)
    assert colour.x_train.shape == (18, 64, 64, 3) and colour.x_test.shape == (6, 64, 64, 3)
    with pytest.raises(S.DataError, match="not a readable zip"):
        S.dataset_from_zip(b"not a zip at all", size=32)


def test_confident_errors_surest_first():
    from cnnviz.train.transfer import evaluate

    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.55, 0.45]])
    ev = evaluate(probs, [0, 0, 0, 1], ["a", "b"])
    assert S.confident_errors(ev) == [2, 1, 3]
    assert S.confident_errors(ev, 1) == [2]


def test_filter_tiles_match_the_feature_page_picture():
    from cnnviz.model.features import first_layer_kernels

    model = S.build_model(S.PRESETS["carpentries"].layers, (28, 28, 1), 10, seed=2)
    np.testing.assert_array_equal(S.filter_tiles(model.layers[2].kernel.numpy()), first_layer_kernels(model))


def test_to_input_squashes_and_grays():
    photo = np.zeros((50, 80, 3), np.uint8)
    photo[:, :40] = 255
    x = S.to_input(photo, (28, 28, 1))
    assert x.shape == (28, 28, 1) and x[:, :10].min() == 255 and x[:, -10:].max() == 0
    assert S.to_input(photo, (32, 32, 3)).shape == (32, 32, 3)


def test_editor_table_round_trip_and_bad_rows():
    for preset in S.PRESETS.values():
        if all(not isinstance(layer, (S.Conv2D)) or layer.use_bias for layer in preset.layers):
            assert S.layers_from_table(S.layers_to_table(preset.layers)) == preset.layers
    rows = S.layers_to_table(S.PRESETS["carpentries"].layers)
    rows.insert(2, {"layer": None})  # a row just added, not yet filled in
    rows[0]["window"] = float("nan")  # an emptied cell takes the default
    assert S.layers_from_table(rows) == S.PRESETS["carpentries"].layers
    with pytest.raises(S.ArchitectureError, match="Row 1 .*whole numbers"):
        S.layers_from_table([{"layer": "Conv2D", "filters or units": "many"}])
    with pytest.raises(S.ArchitectureError, match="Row 1 .*activations"):
        S.layers_from_table([{"layer": "Dense", "activation": "magic"}])


def test_sample_grid_one_row_per_class():
    data = S.demo_shapes(5, size=16, colour=False)
    grid = S.sample_grid(data.x_train, data.y_train, 3, per_class=4, scale=2)
    assert grid.shape == (3 * 32 + 4, 4 * 32 + 6, 3)
    first_triangle = data.x_train[np.flatnonzero(data.y_train == 1)[0]]
    np.testing.assert_array_equal(grid[34:66:2, 0:32:2, 0], first_triangle[..., 0])


@pytest.mark.slow
def test_export_keras_and_tflite_give_the_same_answers_and_load_back_as_an_upload():
    from cnnviz.model.registry import load_uploaded_model
    from cnnviz.train.export import tflite_probabilities

    preset = S.PRESETS["overfit_dropout"]  # Dropout and augmentation layers must survive both formats
    model = S.build_model(
        preset.layers, (28, 28, 1), 10, augment=S.Augment(flip=True, rotation=0.05, shift=0.1, noise=0.05), seed=1
    )
    x = np.random.default_rng(0).integers(0, 256, (3, 28, 28, 1)).astype("float32")
    expected = np.asarray(model(x, training=False))
    back, card = load_uploaded_model(S.keras_bytes(model), "mine.keras")
    np.testing.assert_allclose(np.asarray(back(x, training=False)), expected, atol=1e-6)
    assert card["channels"] == 1 and card["input_size"] == [28, 28]
    np.testing.assert_allclose(tflite_probabilities(S.tflite_bytes(model), x), expected, atol=1e-5)


def test_order_numbers_reorder_the_layer_table():
    rows = S.layers_to_table(S.PRESETS["carpentries"].layers)  # Conv, Pool, Conv, Pool, Flatten, Dense
    assert [r["order"] for r in rows] == [1, 2, 3, 4, 5, 6]
    same, moved = S.reorder_table(rows)
    assert not moved and same == rows
    rows[4]["order"] = 2  # "Flatten to the second place": it goes before the row that had 2
    ordered, moved = S.reorder_table(rows)
    assert moved and [r["layer"] for r in ordered] == [
        "Conv2D",
        "Flatten",
        "MaxPooling2D",
        "Conv2D",
        "MaxPooling2D",
        "Dense",
    ]
    assert [r["order"] for r in ordered] == [1, 2, 3, 4, 5, 6]
    rows = S.layers_to_table(S.PRESETS["carpentries"].layers)
    rows[0]["order"] = 3.5  # between rows 3 and 4
    rows.append({"layer": "Dropout", "rate": 0.5, "order": None})  # a new row without a number stays last
    ordered, moved = S.reorder_table(rows)
    assert moved and [r["layer"] for r in ordered] == [
        "MaxPooling2D",
        "Conv2D",
        "Conv2D",
        "MaxPooling2D",
        "Flatten",
        "Dense",
        "Dropout",
    ]
    assert S.layers_from_table(ordered)[2] == S.Conv2D(16, 3)
    ordered, moved = S.reorder_table([{"layer": "Dense", "order": "x"}, {"layer": "Flatten", "order": float("nan")}])
    assert not moved and [r["order"] for r in ordered] == [1, 2]


def test_tfjs_zip_of_a_colour_model_drops_augmentation_and_takes_ml5_pixels():
    import io
    import json
    import zipfile

    augment = S.Augment(flip=True, rotation=0.05, noise=0.1)
    layers = (S.Conv2D(4, 3), S.BatchNormalization(), S.MaxPooling2D(2), S.Dropout(0.2), S.Flatten(), S.Dense(8))
    model = S.build_model(layers, (16, 16, 3), 3, augment=augment, seed=1)
    plain = S.without_augmentation(model)
    assert not [layer.name for layer in plain.layers if layer.name.startswith("augment_")]
    x = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(plain.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    data, why = S.tfjs_zip(model, ["a", "b", "c"], model_name="run_1")
    assert why is None and data is not None
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        topology = json.loads(archive.read("model/model.json"))["modelTopology"]["config"]["layers"]
        assert "model.tflite" not in archive.namelist()
    rescale = [entry for entry in topology if entry["name"] == "rescale"][0]["config"]
    # ml5 feeds t = x/127 - 1; the layer must give back x/255:
    assert rescale["scale"] == pytest.approx(127 / 255) and rescale["offset"] == pytest.approx(127 / 255)
    assert [entry["class_name"] for entry in topology][:3] == ["InputLayer", "Rescaling", "Conv2D"]

    gray = S.build_model(layers, (16, 16, 1), 3, seed=1)
    assert S.tfjs_zip(gray, ["a", "b", "c"], model_name="g") == (None, S.GRAY_TFJS)
    assert S.tfjs_zip(model, ["a", "a", "c"], model_name="r")[0] is None  # repeated names: one sentence, no zip


def test_a_drawing_becomes_a_picture_over_black_and_a_blank_canvas_none():
    blank = np.zeros((4, 4, 4), np.uint8)
    assert S.drawing_to_picture(None) is None and S.drawing_to_picture(blank) is None
    drawn = blank.copy()
    drawn[1, 2] = (255, 255, 255, 255)  # a white stroke
    drawn[0, 0] = (255, 255, 255, 128)  # its half-transparent edge
    picture = S.drawing_to_picture(drawn)
    assert picture is not None
    assert picture.dtype == np.uint8 and picture.shape == (4, 4, 3)
    assert picture[1, 2].tolist() == [255, 255, 255] and picture[0, 0].tolist() == [128, 128, 128]
    assert picture[3, 3].tolist() == [0, 0, 0]
    assert S.to_input(picture, (28, 28, 1)).shape == (28, 28, 1)
