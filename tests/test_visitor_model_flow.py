"""A model trained on page 4 must work on every page: feature maps, Grad-CAM, the audit, a round trip.

The trainer's full model is built from a frozen base and a trained head. Built with the head's
own layer objects, every sub-model cut at "the input of the last Dense layer" (the audit's
embedding) reached into the head's graph and failed with "not connected to inputs".
"""

from __future__ import annotations

import numpy as np
import keras
import pytest

from cnnviz.audit import run as audit_run
from cnnviz.model import features, registry
from cnnviz.train import transfer
from cnnviz.train.export import export_zip, import_zip


@pytest.fixture(scope="module")
def trained():
    """A tiny base (conv → pooling → Dense) + a trained head, as the trainer builds them."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255)(inp)
    x = keras.layers.Conv2D(4, 3, name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    base = keras.Model(inp, keras.layers.Dense(10, activation="softmax")(x))
    embedder = transfer.embedding_model_for(base)
    rng = np.random.default_rng(0)
    images = [(rng.random((32, 32, 3)) * 255 * (i % 2)).astype(np.uint8) for i in range(12)]
    _, feats = transfer.embed_images(images, embedder, "tiny")
    head = transfer.build_head(feats.shape[1], 2)
    labels = np.array([i % 2 for i in range(12)])
    transfer.train_head(head, feats, labels, epochs=3, batch_size=4)
    return transfer.full_model(embedder, head, name="mine"), head, feats, images


def test_full_model_gives_the_heads_answers(trained):
    full, head, feats, images = trained
    np.testing.assert_allclose(
        transfer.predict_probabilities(full, images), transfer.head_probabilities(head, feats), atol=1e-5
    )


def test_every_page_can_cut_and_explain_the_trained_model(trained):
    full, _, _, images = trained
    embedding = registry.embedding_model(full)  # the audit's feature distances
    assert embedding.output_shape == (None, transfer.DEFAULTS.hidden_units)
    assert features.grad_cam(full, images[1]).shape == (32, 32)
    assert "conv" in features.feature_maps(full, images[1])
    rows, _ = audit_run.transformation_effect(full, images[1], ["one", "two"])  # page 5, section 7
    assert rows[0]["transformation"] == "Original"


def test_class_names_survive_export_and_a_bare_keras_upload(trained, tmp_path):
    full, *_ = trained
    names = ["Madonna", "Saint Jérôme, c. 1500 — [1]"]
    exported = export_zip(full, names, base_model="tiny", model_name="mine", include_tflite=False)
    _, card = import_zip(exported)
    assert card["classes"] == names
    import io
    import zipfile

    keras_bytes = zipfile.ZipFile(io.BytesIO(exported)).read("model.keras")
    _, uploaded = registry.load_uploaded_model(keras_bytes, "mine.keras")  # page 3 or 5
    assert uploaded["classes"] == names


def test_a_keras_file_without_names_says_why(trained, tmp_path):
    full, *_ = trained
    path = tmp_path / "plain.keras"
    full.save(path)
    _, card = registry.load_uploaded_model(path.read_bytes(), "plain.keras")
    assert card["classes"] == ["class 0", "class 1"]
    assert "carries no class names" in card["note"]
