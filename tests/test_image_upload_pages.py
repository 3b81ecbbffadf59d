"""Every page with an image picker shows a bad upload's message and keeps running (AppTest)."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from tests.test_images import BAD_FILES

ROOT = Path(__file__).resolve().parents[1]

PAGES_WITH_IMAGE_PICKER = ["pages/convolution.py"]


def good_png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("page", PAGES_WITH_IMAGE_PICKER)
def test_bad_uploads_show_a_message_and_the_page_keeps_working(page):
    at = AppTest.from_file(str(ROOT / page), default_timeout=120).run()
    assert not at.exception
    for kind, (data, phrase) in BAD_FILES.items():
        at.file_uploader[0].set_value((f"{kind}.png", data, "image/png")).run()
        assert not at.exception, kind
        assert any(phrase in e.value for e in at.error), (kind, [e.value for e in at.error])
    # A good upload afterwards is accepted, selected, and the page still renders.
    at.file_uploader[0].set_value(("mine.png", good_png(), "image/png")).run()
    assert not at.exception
    assert not at.error
    assert "mine.png" in [box.value for box in at.selectbox]  # the new image is the one shown
