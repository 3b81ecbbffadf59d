"""ui.feature_view: the feature-map page's results, shared between sessions only for what no visitor made."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from cnnviz.model import features, shipped
from ui import feature_view, memo
from ui.widgets import samples

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = "fashion_mnist_carpentries"
WORK = ("probabilities", "layer_maps", "grad_cam", "png_bytes")


@pytest.fixture()
def counted(monkeypatch):
    """An empty shared store, and how often the page's network passes and encodings ran."""
    monkeypatch.setattr(memo, "_SHARED", {})
    calls: Counter = Counter()
    for name in WORK:
        real = getattr(features, name)
        monkeypatch.setattr(
            features, name, lambda *a, _real=real, _name=name, **k: calls.update([_name]) or _real(*a, **k)
        )
    return calls


def _page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / "feature_maps.py"), default_timeout=180)
    at.query_params["model"] = BUNDLED
    return at


@pytest.mark.slow
def test_after_the_warm_start_the_first_visitor_finds_the_default_view_computed(counted):
    model = shipped.get(BUNDLED)
    shipped.trace(model)  # the warm start traces, then warms the view
    counted.clear()
    layer = feature_view.warm_default_view(model, samples())
    assert sum(counted.values()) == 5  # probabilities, one pass for both pictures, Grad-CAM, two grids
    counted.clear()
    at = _page().run()
    assert not at.exception
    assert at.selectbox(key="fm_layer").value == layer  # the page's default layer is the one warmed
    assert counted == Counter(), counted  # no network pass, no encoding: all of it was there
    second = _page().run()  # a second visitor (another session) as well
    assert not second.exception and counted == Counter()


@pytest.mark.slow
def test_a_visitors_own_picture_stays_in_their_session(counted):
    at = _page()
    at.session_state["fm_image_add"] = True
    at.run()
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(buf, "PNG")
    at.file_uploader(key="fm_image_upload").set_value(("mine.png", buf.getvalue(), "image/png")).run()
    assert not at.exception and at.selectbox(key="fm_image_choice").value == "mine.png"
    mine = memo.digest(at.session_state["cnnviz_images"]["mine.png"])
    shared_keys = [key for slot in memo._SHARED.values() for key in slot]
    assert not any(mine in (key if isinstance(key, tuple) else (key,)) for key in shared_keys)
    assert "fm_probs" not in memo.shared_kinds() or all(
        mine not in key for key in memo._SHARED["fm_probs"]
    )  # its answer is computed in its session, for it alone


def test_only_a_shipped_model_on_sample_pictures_is_public():
    pics = {"Checkerboard": 1, "Geometric shapes": 2}
    shipped_card, visitor_card = {"kind": "bundled"}, {"kind": "visitor"}
    assert feature_view.is_public(shipped_card, "Checkerboard", samples=pics, mine={})
    assert not feature_view.is_public(visitor_card, "Checkerboard", samples=pics, mine={})
    assert not feature_view.is_public(shipped_card, "mine.png", samples=pics, mine={"mine.png": 0})
    # a visitor's file named like a sample is theirs: the picker shows their own first
    assert not feature_view.is_public(shipped_card, "Checkerboard", samples=pics, mine={"Checkerboard": 0})
    assert feature_view.second_default("Checkerboard") == "Geometric shapes"
