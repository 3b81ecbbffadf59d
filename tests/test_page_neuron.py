"""The neuron page (AppTest): the numbers shown follow the widgets and match hand computation."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "neuron.py")


def run(query: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params.update(query or {})
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metric(at: AppTest, label: str) -> str:
    values = [m.value for m in at.metric if m.label == label]
    assert len(values) == 1, f"no single metric {label!r}: {[m.label for m in at.metric]}"
    return values[0]


def chart_alts(at: AppTest) -> list[str]:
    return [c.proto.alt for c in at.get("vega_lite_chart")]


def chart_titles(at: AppTest) -> list[str]:
    return [json.loads(c.proto.spec).get("title", "") for c in at.get("vega_lite_chart")]


def set_neuron(at: AppTest, **values) -> AppTest:
    if "activation" in values:  # first: it enables the threshold/slope sliders, as in a browser
        at.selectbox(key="activation").set_value(values.pop("activation")).run()
    for key, value in values.items():
        at.slider(key=key).set_value(value)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_defaults_show_the_weighted_sum_and_output():
    at = run()
    z = 0.5 * 3.0 + 1.0 * 2.0 + (-1.0)
    assert metric(at, "weighted sum z") == "2.50"
    assert metric(at, "output y") == f"{1 / (1 + math.exp(-z)):.4f}" == "0.9241"
    assert r"&= 0.50 \times 3.00 + 1.00 \times 2.00 + (-1.00) = \mathbf{2.50}" in at.latex[1].value
    assert all(alt.strip() for alt in chart_alts(at)) and len(chart_alts(at)) == 9  # 2: "Watch them learn"
    assert len(at.caption) >= 5  # a sentence under every chart
    assert dict(at.query_params) == {}  # defaults keep the URL clean


# x = (2, -3), w = (-1.5, 0.5), b = 1  →  z = -3 - 1.5 + 1 = -3.5
@pytest.mark.slow
@pytest.mark.parametrize(
    "activation, extra, expected",
    [
        ("linear", {}, "-3.5000"),
        ("sigmoid", {}, f"{1 / (1 + math.exp(3.5)):.4f}"),
        ("tanh", {}, f"{math.tanh(-3.5):.4f}"),
        ("relu", {}, "0.0000"),
        ("leaky_relu", {}, f"{0.3 * -3.5:.4f}"),
        ("leaky_relu", {"alpha": 0.1}, f"{0.1 * -3.5:.4f}"),
        ("step", {}, "0.0000"),
        ("step", {"threshold": -4.0}, "1.0000"),
    ],
)
def test_changing_widgets_changes_the_numbers(activation, extra, expected):
    at = set_neuron(run(), x1=2.0, x2=-3.0, w1=-1.5, w2=0.5, bias=1.0, activation=activation, **extra)
    assert metric(at, "weighted sum z") == "-3.50"
    assert metric(at, "output y") == expected
    assert r"(-1.50) \times 2.00 + 0.50 \times (-3.00) + 1.00 = \mathbf{-3.50}" in at.latex[1].value
    assert rf"f(-3.50) = \mathbf{{{expected}}}" in at.latex[2].value
    assert f"z = -3.50, y = {expected}" in chart_alts(at)[1]


@pytest.mark.slow
def test_the_programming_historian_exercise_reports_the_error():
    at = run()
    assert metric(at, "output") == "5.00" and metric(at, "error = 7.5 − output") == "2.50"
    at.number_input(key="ex_w1").set_value(1.5).run()
    at.number_input(key="ex_w2").set_value(1.5).run()
    assert metric(at, "output") == "7.50" and metric(at, "error = 7.5 − output") == "0.00"
    assert at.success and "7.5" in at.success[0].value
    at.number_input(key="ex_b").set_value(0.5).run()
    assert metric(at, "output") == "8.00" and metric(at, "error = 7.5 − output") == "-0.50"
    assert not at.success
    assert "Error after each of 4 attempts; the latest error is -0.50." in chart_alts(at)


@pytest.mark.slow
def test_softmax_panel_matches_hand_computation():
    at = run()
    at.slider(key="logit1").set_value(3.0)
    at.slider(key="temperature").set_value(2.0).run()
    logits = [3.0, 1.0, 0.1, -1.0]
    e = [math.exp(z / 2.0) for z in logits]
    expected = [f"{v / sum(e):.2%}" for v in e]
    table = at.table[0].value
    assert list(table["probability"]) == expected
    assert list(table["z / T"]) == ["1.500", "0.500", "0.050", "-0.500"]
    assert r"T = 2.0" in at.latex[-1].value
    at.slider(key="temperature").set_value(0.1).run()
    assert at.table[0].value["probability"].iloc[0] == "100.00%"  # cold: the top logit takes all


def _percent_correct(title: str) -> int:
    found = re.search(r"(\d+)% correct", title)
    assert found, f"no accuracy in the chart title {title!r}"
    return int(found.group(1))


def test_one_neuron_fails_on_xor_and_two_layers_do_not():
    at = run()
    titles = [t for t in chart_titles(at) if "correct" in t and " steps: " not in t]
    one, two = (_percent_correct(t) for t in titles)
    assert one <= 75 and two == 100
    # "Watch them learn" stops where the page's training stops: the same networks, the same scores.
    frames = [t for t in chart_titles(at) if "after 1500 steps" in t]
    assert [_percent_correct(t) for t in frames] == [one, two]
    at.slider(key="hidden").set_value(1).run()
    two_with_one_hidden = [t for t in chart_titles(at) if "Two layers" in t and " steps: " not in t][0]
    assert "(1 + 1 neurons)" in two_with_one_hidden
    assert _percent_correct(two_with_one_hidden) <= 75


def test_data_set_choice_changes_the_plane():
    at = run()
    xor_score = metric(at, "points your neuron gets right")
    at.radio(key="data").set_value("circles").run()
    assert not at.exception
    # The radio reruns only its own section and the trained networks' section.
    assert any("circles data" in alt for alt in chart_alts(at))
    assert metric(at, "points your neuron gets right") != xor_score


def test_url_reopens_the_same_view():
    at = run(
        {"activation": "tanh", "w1": "-2.0", "bias": "0.5", "temperature": "0.5", "data": "circles", "hidden": "2"}
    )
    assert at.selectbox(key="activation").value == "tanh"
    assert at.slider(key="w1").value == -2.0 and at.slider(key="hidden").value == 2
    assert at.radio(key="data").value == "circles"
    assert metric(at, "weighted sum z") == "-3.50"  # -2·3 + 1·2 + 0.5
    assert metric(at, "output y") == f"{math.tanh(-3.5):.4f}"
    assert "T = 0.5" in at.latex[-1].value


@pytest.mark.slow
def test_query_params_round_trip():
    first = set_neuron(run(), activation="leaky_relu", w2=-0.7, x1=-4.0, alpha=0.45, temperature=3.2)
    url = dict(first.query_params)
    assert url == {"activation": "leaky_relu", "w2": "-0.7", "x1": "-4", "alpha": "0.45", "temperature": "3.2"}
    second = run(url)
    for label in ("weighted sum z", "output y"):
        assert metric(second, label) == metric(first, label)
    assert list(second.table[0].value["probability"]) == list(first.table[0].value["probability"])
    # Going back to a default removes it from the URL.
    set_neuron(second, activation="sigmoid")
    assert "activation" not in second.query_params


def test_bad_url_values_fall_back_to_defaults():
    at = run({"activation": "softplus", "w1": "abc", "bias": "99", "hidden": "2.5", "data": "../etc"})
    assert at.selectbox(key="activation").value == "sigmoid"
    assert at.slider(key="w1").value == 0.5 and at.slider(key="bias").value == -1.0
    assert at.slider(key="hidden").value == 4 and at.radio(key="data").value == "xor"
    assert metric(at, "weighted sum z") == "2.50"
    assert dict(at.query_params) == {}
