"""`ui.models.model_picker` in a real Streamlit script run (AppTest): registry, URL, uploads."""

from __future__ import annotations

from pathlib import Path

import keras
import pytest

from cnnviz.text import plain
from streamlit.testing.v1 import AppTest

pytestmark = pytest.mark.slow  # every test here opens a page whose default model is EfficientNet-Lite0

ROOT = Path(__file__).resolve().parents[1]


def _app():
    import streamlit as st

    from ui.models import model_picker

    picked = model_picker("m")
    if picked is not None:
        name, model, card = picked
        st.markdown(f"picked {name} · {card['kind']} · {tuple(model.input_shape)}")


def _run(query=None):
    at = AppTest.from_function(_app, default_timeout=120)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    return at.run()


def _picked(at) -> str:
    return [m.value for m in at.markdown if m.value.startswith("picked")][0]


@pytest.fixture(scope="module")
def small_keras(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((12, 12, 1)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(2, 3),
            keras.layers.Flatten(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    path = tmp_path_factory.mktemp("upload") / "tiny.keras"
    model.save(path)
    return path.read_bytes()


def test_default_is_efficientnet_and_unavailable_models_are_explained():
    at = _run()
    assert not at.exception and not at.error
    assert _picked(at) == "picked efficientnet_lite0 · imagenet · (None, 224, 224, 3)"
    assert "model" not in at.query_params  # the default keeps the link short
    assert "ImageNet · MobileNetV2" not in at.selectbox[0].options  # cannot be chosen ...
    assert any("MobileNetV2 needs its ImageNet weights" in c.value for c in at.caption)  # ... but is explained


def test_an_unavailable_model_in_the_url_falls_back_to_the_default():
    at = _run({"model": "mobilenet_v2"})
    assert not at.exception
    assert _picked(at).startswith("picked efficientnet_lite0")


def test_upload_good_model_is_selected_and_kept_out_of_the_url(small_keras):
    at = _run()
    at.file_uploader[0].set_value(("tiny.keras", small_keras, "application/octet-stream")).run()
    assert not at.exception and not at.error
    assert _picked(at) == "picked tiny · visitor · (None, 12, 12, 1)"
    assert "model" not in at.query_params
    # switching to a shipped model puts it into the URL; the upload stays on offer
    at.selectbox[0].set_value("fashion_mnist_carpentries").run()
    assert _picked(at).startswith("picked fashion_mnist_carpentries")
    assert at.query_params["model"] == "fashion_mnist_carpentries"
    assert "Your model · tiny" in at.selectbox[0].options


def test_bad_upload_shows_its_sentence_and_the_page_keeps_working():
    at = _run()
    at.file_uploader[0].set_value(("notes.keras", b"just text", "application/octet-stream")).run()
    assert not at.exception
    # Shown as text (escaped Markdown): the file name is the visitor's, it must not become a link.
    assert [e.value for e in at.error] == [
        plain("“notes.keras” is not a Keras model: a .keras file is a zip archive and this one is not.")
    ]
    assert _picked(at).startswith("picked efficientnet_lite0")


def test_empty_keras_home_the_picker_and_the_feature_map_page_still_work(tmp_path, monkeypatch):
    # The registry reads KERAS_HOME when asked (never via Keras's import-time copy), so an empty
    # cache can be tested in-process: no class index, no MobileNetV2 weights, no converted model.
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty"))
    # Nor the copy the repo ships (tests/test_offline.py covers it): the picker says names are missing.
    monkeypatch.setattr("cnnviz.keras_cache.SHIPPED_CLASS_INDEX", tmp_path / "not-shipped.json")
    at = _run()
    assert not at.exception and not at.error
    assert _picked(at).startswith("picked efficientnet_lite0")
    captions = " ".join(c.value for c in at.caption)
    assert "into the models folder of its Keras cache" in captions
    assert str(tmp_path) not in captions  # the server's folders are not shown to visitors
    assert "ImageNet class names are missing" in captions and "“class 281”" in captions

    page = AppTest.from_file(str(ROOT / "pages" / "feature_maps.py"), default_timeout=180).run()
    assert not page.exception, page.exception
    assert not page.error
