"""Page 3 · Feature maps, driven by Streamlit's AppTest with real Keras models."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

keras = pytest.importorskip("keras")

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "feature_maps.py")
BUNDLED = "fashion_mnist_carpentries"


def _page(**query) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=180)
    for key, value in query.items():
        at.query_params[key] = value
    return at


def _captions(at) -> str:
    texts = [c.value for c in at.caption] + [m.value for m in at.markdown]
    texts += [caption for img in at.image for caption in img.captions]
    return "\n".join(texts)


def _image_count(at) -> int:
    """Images shown; every one must carry alt text (screen readers, projector captions)."""
    alts = [one.alt for img in at.image for one in img.proto.imgs]
    assert all(alt.strip() for alt in alts), "an image without alt text"
    return len(alts)


def _no_exception(at) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


@pytest.mark.slow
def test_pick_a_layer_and_a_channel_and_see_grad_cam_on_a_bundled_cnn():
    at = _page(model=BUNDLED).run()
    _no_exception(at)
    assert at.title[0].value == "3 · Feature maps"
    layers = at.selectbox(key="fm_layer").options
    assert len(layers) >= 4  # conv, pool, conv, pool at least
    assert not at.dataframe  # the layer table is drawn only while its panel is open
    summary = next(m.value for m in at.markdown if "layers**, " in m.value)
    at.session_state["fm_table_panel"] = True  # the visitor opens it
    at.run()
    table = at.dataframe[0].value
    with_maps = table[table["feature maps"] == "✔"]
    assert summary.startswith(f"**{len(table)} layers**, {len(with_maps)} of them with feature maps")
    deepest = with_maps.iloc[-1]  # the sentence is the table's last row with feature maps
    assert f"*{deepest['layer']}*, is {deepest['output (H × W × C)']}" in summary
    assert f"**{deepest['jump (px)']} input pixels** apart" in summary
    rf = deepest["receptive field (px)"]
    assert f"receptive field of {rf}×{rf} input pixels" in summary
    assert table["type"].tolist()[:3] == ["InputLayer", "Rescaling", "Conv2D"]
    assert table["receptive field (px)"].tolist()[2] == 3

    second = layers[2].split(" · ")[0]  # options are shown as "name · type · H×W×C"
    at.selectbox(key="fm_layer").set_value(second).run()
    _no_exception(at)
    assert at.query_params["layer"] == second
    at.slider(key="fm_channel").set_value(3).run()
    _no_exception(at)
    assert at.query_params["channel"] == "3"
    assert "Channel 3 of" in _captions(at)

    # Grad-CAM for a chosen class: its caption names the class, and it is mirrored in the URL.
    at.selectbox(key="fm_cam_class").set_value(7).run()
    _no_exception(at)
    assert "Grad-CAM for “Sneaker”" in _captions(at)
    assert at.query_params["cam"] == "7"
    # input, tiled layer, enlarged channel, overlay, 8 top channels, kernels, Grad-CAM, two compare grids
    assert _image_count(at) >= 15


@pytest.mark.slow
def test_url_reopens_the_same_layer_channel_and_class():
    first = _page(model=BUNDLED).run()
    layer = first.selectbox(key="fm_layer").options[1].split(" · ")[0]
    at = _page(model=BUNDLED, layer=layer, channel="5", cam="2", sort="0").run()
    _no_exception(at)
    assert at.selectbox(key="fm_layer").value == layer
    assert at.slider(key="fm_channel").value == 5
    assert at.selectbox(key="fm_cam_class").value == 2
    assert at.toggle(key="fm_sort").value is False
    # A layer this model does not have falls back to the first one instead of failing.
    at = _page(model=BUNDLED, layer="no_such_layer", channel="9999").run()
    _no_exception(at)
    assert at.selectbox(key="fm_layer").index == 0


def _visitor(at: AppTest, model, name: str = "mine") -> AppTest:
    card = {
        "name": name,
        "title": name,
        "kind": "visitor",
        "classes": ["left", "right"],
        "input_size": list(model.inputs[0].shape[1:3]),
        "channels": int(model.inputs[0].shape[-1]),
    }
    at.session_state["cnnviz_user_models"] = {name: {"model": model, "card": card}}
    at.session_state["fm_model_choice"] = f"mine:{name}"
    return at


def test_a_visitors_own_model_works_and_one_without_convolutions_gets_a_sentence():
    keras.utils.set_random_seed(0)
    conv = keras.Sequential(
        [
            keras.Input((20, 20, 3)),
            keras.layers.Conv2D(4, 3, activation="relu", name="c1"),
            keras.layers.MaxPooling2D(2, name="p1"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2, activation="softmax"),
        ],
        name="visitor_cnn",
    )
    at = _visitor(_page(), conv).run()
    _no_exception(at)
    assert at.selectbox(key="fm_layer").options == ["c1 · Conv2D · 18×18×4", "p1 · MaxPooling2D · 9×9×4"]
    assert "model" not in at.query_params  # a visitor's model never goes into a shareable URL

    dense = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")]
    )
    at = _visitor(_page(), dense, "flat").run()
    assert not at.exception
    assert any("no convolution" in e.value for e in at.error)


@pytest.mark.slow
def test_efficientnet_lite0_page_with_grad_cam_of_the_predicted_class():
    at = _page(layer="block2_expand_relu", channel="10").run()
    _no_exception(at)
    assert at.selectbox(key="fm_model_choice").value == "efficientnet_lite0"
    assert at.selectbox(key="fm_layer").value == "block2_expand_relu"
    from cnnviz.text import plain  # a layer name is the model's, so it is shown as escaped Markdown

    assert f"Channel 10 of {plain('block2_expand_relu')}" in _captions(at)
    assert f"at layer {plain('head_relu')}" in _captions(at)
    assert _image_count(at) >= 15


def test_a_broken_image_upload_gets_a_sentence_and_the_page_keeps_working():
    from tests.test_images import BAD_FILES

    at = _page(model=BUNDLED)
    at.session_state["fm_image_add"] = True  # "Add your own image" is open
    at.run()
    kind, (data, phrase) = next(iter(BAD_FILES.items()))
    at.file_uploader(key="fm_image_upload").set_value((f"{kind}.png", data, "image/png")).run()
    assert not at.exception
    assert any(phrase in e.value for e in at.error), [e.value for e in at.error]
    assert at.selectbox(key="fm_layer").options  # the feature maps are still shown


def test_a_model_that_does_not_take_pictures_gets_a_sentence_and_the_page_stops_cleanly():
    numbers = keras.Sequential([keras.Input((10,)), keras.layers.Dense(2, activation="softmax")], name="tabular")
    at = _visitor(_page(), numbers, "tabular").run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "This model does not take pictures as input, so it has no feature maps to show."
    ]
