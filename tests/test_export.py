"""The exported zip: .keras and .tflite agree with the in-app model; the zip imports back safely."""

from __future__ import annotations

import io
import json
import zipfile

import keras
import numpy as np
import pytest

from cnnviz.train import export
from cnnviz.train import transfer as training
from cnnviz.train.demo_data import DEMO_CLASSES, demo_dataset

BASE = "efficientnet_lite0"


@pytest.fixture(scope="module")
def trained(keras_home):
    from cnnviz.model.registry import load_model

    embedder = training.embedding_model_for(load_model(BASE))
    data = demo_dataset(12, seed=0)
    images = [im for name in DEMO_CLASSES for im in data[name]]
    labels = np.repeat(np.arange(3), 12)
    _, x = training.embed_images(images, embedder, BASE)
    head = training.build_head(1280, 3)
    training.train_head(head, x, labels, epochs=15)
    model = training.full_model(embedder, head)
    tests = [im for ims in demo_dataset(2, seed=5).values() for im in ims]
    in_app = training.head_probabilities(head, training.embed_images(tests, embedder, BASE)[1])
    blob = export.export_zip(model, list(DEMO_CLASSES), base_model=BASE, model_name="Shapes", training={"epochs": 15})
    return model, tests, in_app, blob


@pytest.mark.slow
def test_zip_holds_the_promised_files(trained):
    _, _, _, blob = trained
    archive = zipfile.ZipFile(io.BytesIO(blob))
    assert sorted(archive.namelist()) == sorted(
        [
            "model.keras",
            "model.tflite",
            "labels.txt",
            "metadata.json",
            "README.md",
            "model/model.json",
            "model/weights.bin",
            "model/metadata.json",
            "index.html",
            "sketch.js",
        ]
    )
    tm = json.loads(archive.read("model/metadata.json"))
    assert (
        tm["labels"] == list(DEMO_CLASSES) and tm["imageSize"] == 224 and tm["packageName"] == "@teachablemachine/image"
    )
    assert set(tm) == {
        "tfjsVersion",
        "tmVersion",
        "packageVersion",
        "packageName",
        "timeStamp",
        "userMetadata",
        "modelName",
        "labels",
        "imageSize",
    }
    assert 'ml5.imageClassifier(url + "model.json")' in archive.read("sketch.js").decode()
    assert "ml5@1.4.0" in archive.read("index.html").decode()
    assert archive.read("labels.txt").decode().splitlines() == list(DEMO_CLASSES)
    meta = json.loads(archive.read("metadata.json"))
    for key in ("labels", "imageSize", "modelName", "timeStamp", "packageName", "packageVersion", "userMetadata"):
        assert key in meta, key
    assert meta["labels"] == list(DEMO_CLASSES) and meta["imageSize"] == 224 and meta["modelName"] == "Shapes"
    assert meta["baseModel"] == BASE and meta["versions"]["keras"] == keras.__version__
    assert meta["training"] == {"epochs": 15}
    readme = archive.read("README.md").decode()
    assert "keras.saving.load_model" in readme and BASE in readme and "```python" in readme


@pytest.mark.slow
def test_exported_keras_matches_the_in_app_model(trained, tmp_path):
    _, tests, in_app, blob = trained
    path = tmp_path / "model.keras"
    path.write_bytes(zipfile.ZipFile(io.BytesIO(blob)).read("model.keras"))
    loaded = keras.saving.load_model(path, safe_mode=True)
    probs = loaded.predict(training.to_model_input(tests, (224, 224)), verbose=0)
    np.testing.assert_allclose(probs, in_app, atol=1e-3)
    assert np.array_equal(probs.argmax(1), in_app.argmax(1))


@pytest.mark.slow
def test_exported_tflite_gives_the_same_top_class(trained):
    _, tests, in_app, blob = trained
    tflite = zipfile.ZipFile(io.BytesIO(blob)).read("model.tflite")
    probs = export.tflite_probabilities(tflite, training.to_model_input(tests, (224, 224)))
    assert probs.shape == in_app.shape
    assert np.array_equal(probs.argmax(1), in_app.argmax(1))


@pytest.mark.slow
def test_readme_snippet_runs(trained, tmp_path, monkeypatch):
    _, tests, in_app, blob = trained
    archive = zipfile.ZipFile(io.BytesIO(blob))
    archive.extractall(tmp_path)  # our own export in a temp folder, as the visitor would unzip it
    from PIL import Image

    Image.fromarray(tests[0]).save(tmp_path / "my_picture.jpg", quality=98)
    snippet = archive.read("README.md").decode().split("```python")[1].split("```")[0]
    monkeypatch.chdir(tmp_path)
    printed = []
    exec(compile(snippet, "README", "exec"), {"print": lambda *a: printed.append(a)})
    assert printed[0][0] == DEMO_CLASSES[int(in_app[0].argmax())]


@pytest.mark.slow
def test_import_back_works_and_keeps_labels_and_base(trained):
    model, tests, in_app, blob = trained
    loaded, card = export.import_zip(blob, filename="shapes.zip")
    assert card["classes"] == list(DEMO_CLASSES) and card["base"] == BASE and card["kind"] == "visitor"
    np.testing.assert_allclose(training.predict_probabilities(loaded, tests), in_app, atol=1e-3)


@pytest.mark.parametrize(
    "make, phrase",
    [
        (lambda blob: b"", "empty"),
        (lambda blob: b"not a zip", "not a readable zip"),
        (lambda blob: _rezip(blob, drop="labels.txt"), "lacks model.keras or labels.txt"),
        (lambda blob: _rezip(blob, replace={"model.keras": b"PK\x03\x04garbage"}), "damaged"),
    ],
)
@pytest.mark.slow
def test_bad_imports_are_refused_with_a_sentence(trained, make, phrase):
    with pytest.raises(export.ExportError) as err:
        export.import_zip(make(trained[3]), filename="shapes.zip")
    assert phrase in str(err.value)


def test_import_refuses_a_model_with_a_lambda_layer(tmp_path):
    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Dense(2, activation="softmax")(
        keras.layers.Lambda(lambda t: t * 2)(keras.layers.Flatten()(inputs))
    )
    path = tmp_path / "evil.keras"
    keras.Model(inputs, outputs).save(path)
    blob = io.BytesIO()
    with zipfile.ZipFile(blob, "w") as archive:
        archive.writestr("model.keras", path.read_bytes())
        archive.writestr("labels.txt", "a\nb\n")
    with pytest.raises(export.ExportError) as err:
        export.import_zip(blob.getvalue())
    assert "Lambda" in str(err.value)


def _rezip(blob: bytes, *, drop: str | None = None, replace: dict[str, bytes] | None = None) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(blob))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name in source.namelist():
            if name == drop:
                continue
            archive.writestr(name, (replace or {}).get(name, source.read(name)))
    return out.getvalue()


@pytest.mark.slow
def test_names_inside_the_keras_file_win_over_a_changed_labels_txt(trained):
    blob = _rezip(trained[3], replace={"labels.txt": b"one\ntwo\n"})
    _, card = export.import_zip(blob, filename="edited.zip")
    assert card["classes"] == list(DEMO_CLASSES)
