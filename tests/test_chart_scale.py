"""Chart text follows presenter mode: the UI says the scale once, every builder uses it."""

import numpy as np
import pytest

from cnnviz.charts import convolution, features, neuron, style, training


@pytest.fixture(autouse=True)
def keep_the_apps_scale_source():
    """ui.present registers its source once per process, when imported: every test here puts it back,
    so a test that runs later in the same worker (the AppTest below) still sees it."""
    registered = style._scale_source
    yield
    style._scale_source = registered


@pytest.fixture
def presenting():
    style.use_scale(lambda: style.PRESENTER_SCALE)
    yield


def axis_fonts(spec: dict) -> tuple[int, int]:
    return spec["config"]["axis"]["labelFontSize"], spec["config"]["axis"]["titleFontSize"]


def marks(spec) -> list[dict]:
    found = []
    if isinstance(spec, dict):
        if isinstance(spec.get("mark"), dict):
            found.append(spec["mark"])
        for value in spec.values():
            found += marks(value)
    elif isinstance(spec, list):
        for value in spec:
            found += marks(value)
    return found


def test_axis_and_legend_text_is_24_px_in_presenter_mode_and_16_otherwise(presenting):
    big = features.top_k_chart([("tabby", 0.7), ("tiger cat", 0.2)]).to_dict()
    assert axis_fonts(big) == (24, 27) and big["config"]["legend"]["labelFontSize"] == 24
    assert big["config"]["axis"]["labelColor"] == "#000"
    assert max(m.get("fontSize", 0) for m in marks(big)) == 24  # the bars' own labels too
    style.use_scale(None)
    plain = features.top_k_chart([("tabby", 0.7), ("tiger cat", 0.2)]).to_dict()
    assert axis_fonts(plain) == (16, 18) and "labelColor" not in plain["config"]["axis"]


def test_neuron_and_training_charts_follow_the_scale(presenting):
    assert axis_fonts(neuron.activation_curve("relu", 0.5).to_dict())[0] == 24  # built with a config dict
    assert axis_fonts(training.probability_bars([0.6, 0.4], ["a", "b"]).to_dict())[0] == 24


def test_the_kernel_grid_numbers_and_cells_grow_in_presenter_mode(presenting):
    big = convolution.kernel_chart(np.eye(3)).to_dict()
    style.use_scale(None)
    plain = convolution.kernel_chart(np.eye(3)).to_dict()
    assert max(m.get("fontSize", 0) for m in marks(big)) == 27 and max(m.get("fontSize", 0) for m in marks(plain)) == 18
    assert big["width"] == 3 * 87 and plain["width"] == 3 * 58


def test_a_failing_scale_source_gives_plain_text():
    style.use_scale(lambda: 1 / 0)
    assert style.scale() == 1.0 and style.font() == style.FONT


def test_a_page_in_presenter_mode_sends_charts_with_24_px_axis_labels():
    """The wiring: ui.present tells the builders while presenting (the neuron page, through AppTest)."""
    import json
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from ui import settings

    page = str(Path(__file__).resolve().parents[1] / "pages" / "neuron.py")
    sizes = {}
    for on in (False, True):
        at = AppTest.from_file(page, default_timeout=60)
        at.session_state[settings._KEPT] = {"present": on}  # as the sidebar's toggle keeps it (app.py draws it)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        specs = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
        sizes[on] = {s.get("config", {}).get("axis", {}).get("labelFontSize") for s in specs}
    assert sizes == {False: {16}, True: {24}}, sizes


@pytest.mark.parametrize("k", [1.0, style.PRESENTER_SCALE])
def test_the_convolution_pages_compiled_specs_equal_altairs_own_charts(k):
    """The page sends kernel_spec/step_spec (layout compiled once, numbers put in): the same chart as
    Altair's to_dict of kernel_chart/step_chart, at both text scales, for gray and colour patches."""
    style.use_scale(lambda: k)
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(3, 3))
    patch, products = rng.uniform(0, 255, size=(5, 5, 3)), rng.normal(size=(5, 5, 3))
    small = rng.normal(size=(5, 5))
    cases = [
        (convolution.kernel_chart(kernel), convolution.kernel_spec(kernel)),
        (
            convolution.step_chart(patch[..., 0], small, products[..., 0]),
            convolution.step_spec(patch[..., 0], small, products[..., 0]),
        ),
        (convolution.step_chart(patch, small, products), convolution.step_spec(patch, small, products)),
    ]
    for chart, spec in cases:
        expected = chart.to_dict()
        values = expected.pop("datasets")[expected.pop("data")["name"]]
        assert spec["data"]["values"].to_pylist() == values
        assert {key: v for key, v in spec.items() if key != "data"} == expected
