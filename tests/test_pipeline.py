"""The lesson pipeline on a tiny known-answer embedder (mean colour): split, check, test, CSV, export."""

from __future__ import annotations

import io
import json
import zipfile

import keras
import numpy as np
import pytest
from PIL import Image

from cnnviz.train import lesson, pipeline


def _png(colour, seed) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour)[None, None] + rng.integers(-20, 20, (24, 24, 3)), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def trained():
    blob = io.BytesIO()
    colours = {"red": (220, 30, 30), "green": (30, 200, 40)}
    with zipfile.ZipFile(blob, "w") as archive:
        for name, colour in colours.items():
            for i in range(20):
                archive.writestr(f"training/{name}/{name}{i}.png", _png(colour, i))
            for i in range(3):
                archive.writestr(f"testing/{name}/t-{name}{i}.png", _png(colour, 100 + i))
        archive.writestr("testing/unknown/blue.png", _png((20, 20, 220), 7))
        archive.writestr("training/red/red0-again.png", _png(colours["red"], 0))  # a duplicate in its class
    inputs = keras.Input((16, 16, 3))
    features = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255.0)(inputs))
    embedder = keras.Model(inputs, features)
    return pipeline.train_collection(
        lesson.open_collection(blob.getvalue(), name="colours.zip"),
        embedder,
        base="mean colour",
        epochs=40,
        learning_rate=0.01,
    )


def test_split_follows_teachable_machine_and_the_test_is_the_headline(trained):
    res = trained.results
    assert trained.class_names == ["green", "red"]
    assert res.validation.n_images == lesson.validation_count(20) + lesson.validation_count(21) == 3 + 4
    assert res.headline is res.test and res.test.n_images == 6 and res.test.accuracy == 1.0
    assert any("1 test image(s) are not in a folder named after a training class" in s for s in res.sentences)


def test_mistake_index_points_into_the_test_images_as_given():
    head = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax", use_bias=False)])
    head.layers[0].set_weights([np.eye(2, dtype=np.float32) * 5])  # predicts the larger coordinate
    x_test = np.array([[1, 0], [0, 1], [0, 1], [1, 0]], np.float32)
    results, rows = pipeline.judge_head(
        head,
        ["a", "b"],
        x_val=np.zeros((0, 2), np.float32),
        y_val=np.zeros(0, np.int64),
        val_files=[],
        val_folders=[],
        x_test=x_test,
        test_classes=["a", None, "a", "b"],
        test_files=["0", "1", "2", "3"],
        test_folders=["t/a", "t", "t/a", "t/b"],
    )
    assert results.test is not None
    assert [m.index for m in results.test.mistakes] == [2, 3]  # equal confidence: the given order
    assert {m.file for m in results.test.mistakes} == {"2", "3"} and results.test.n_images == 3
    assert [r["predicted class"] for r in rows] == ["a", "b", "b", "a"] and rows[1]["correct"] == ""


def test_dataset_check_and_csv_rows_come_with_it(trained):
    assert trained.check.duplicates_within_class == [["training/red/red0.png", "training/red/red0-again.png"]]
    rows = {r["file"]: r for r in trained.test_rows}
    assert len(rows) == 7 and rows["blue.png"]["true class"] == "" and rows["blue.png"]["correct"] == ""
    assert rows["t-red0.png"]["folder"] == "testing/red" and rows["t-red0.png"]["correct"] is True


def test_export_holds_test_accuracy_and_a_tfjs_model(trained):
    archive = zipfile.ZipFile(io.BytesIO(pipeline.export_trained(trained, model_name="Colours", include_tflite=False)))
    meta = json.loads(archive.read("metadata.json"))
    assert meta["training"]["test_accuracy"] == 1.0 and meta["training"]["test_images"] == 6
    assert meta["training"]["validation_accuracy"] == trained.results.validation.accuracy
    assert json.loads(archive.read("model/metadata.json"))["labels"] == ["green", "red"]
    assert "example.png" in archive.namelist()


def test_fewer_than_two_classes_is_one_sentence():
    blob = io.BytesIO()
    with zipfile.ZipFile(blob, "w") as archive:
        archive.writestr("training/red/a.png", _png((200, 0, 0), 1))
    inputs = keras.Input((8, 8, 3))
    embedder = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))
    with pytest.raises(ValueError, match="at least two are needed"):
        pipeline.train_collection(lesson.open_collection(blob.getvalue(), name="one.zip"), embedder)
