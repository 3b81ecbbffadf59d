"""A crafted or broken link never stops a page: every bad value falls back to the default (ui.settings)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]


def run(page: str, query: dict[str, str]) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / page), default_timeout=300)
    at.query_params.update(query)
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.mark.parametrize(
    "query, key, default",
    [
        ({"epochs": "abc"}, "trainer_epochs", 50),
        ({"epochs": "99999"}, "trainer_epochs", 50),
        ({"epochs": "1e308"}, "trainer_epochs", 50),
        ({"lr": "abc"}, "trainer_lr", 0.001),
        ({"batch": "1e3"}, "trainer_batch", 16),
    ],
)
def test_trainer_falls_back_to_its_defaults(query, key, default, keras_home):
    at = run("trainer.py", query)
    widget = at.number_input(key=key) if key == "trainer_epochs" else at.selectbox(key=key)
    assert widget.value == default


@pytest.mark.parametrize(
    "query",
    [
        {"weights": "1e308,1e308,1e308,1e308,1e308,1e308,1e308,1e308,1e308;1e-308"},
        {"weights": "nan,0,0,0,1,0,0,0,0;1"},
        {"weights": "1,2,3;0"},
        {"stride": "0"},
        {"stride": "abc"},
        {"px": "100000"},
        {"kernel": "<script>"},
        {"row": "-5"},
        {"col": "1e9"},
    ],
)
def test_convolution_ignores_bad_values(query):
    at = run("convolution.py", {"image": "Geometric shapes", **query})
    assert at.slider(key="conv_stride").value == 1
    assert at.selectbox(key="conv_kernel").value == "identity"
    assert any("the weights add up to **1**" in c.value for c in at.caption)  # the identity kernel, not the link's


def test_neuron_ignores_bad_values():
    at = run("neuron.py", {"w1": "inf", "activation": "evil", "hidden": "1e9", "temperature": "-1"})
    assert at.slider(key="w1").value == 0.5 and at.slider(key="hidden").value == 4
    assert at.selectbox(key="activation").value == "sigmoid" and at.slider(key="temperature").value == 1.0
