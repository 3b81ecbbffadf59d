"""Every page with an image picker shows a bad upload's message and keeps running (AppTest)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from tests.test_images import BAD_FILES

ROOT = Path(__file__).resolve().parents[1]

BUNDLED = {"model": "fashion_mnist_carpentries"}  # a small shipped CNN: the model pages open in seconds
# page -> (image_picker key, URL query to open it with); tested against the pages' source below.
PAGES_WITH_IMAGE_PICKER = {
    "pages/convolution.py": ("conv", {}),
    "pages/feature_maps.py": ("fm_image", BUNDLED),
    "pages/audit.py": ("audit_transform", BUNDLED),
    "pages/trainer.py": ("trainer_test", {"epochs": "1"}),  # its picker appears once a model is trained
}
# Loading a Keras model (and, for the trainer, training one) costs seconds in AppTest: `make test`
# runs these, the fast loop only the convolution page's. The scratch page's picker appears only
# after a from-scratch training (minutes in AppTest); it is the same
# ui.widgets.image_picker, and tests/browser/test_scratch_page.py classifies an image with it.
NOT_HERE = {"pages/scratch.py"}
SLOW_PAGES = {"pages/trainer.py", "pages/feature_maps.py", "pages/audit.py"}


def good_png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_the_list_names_every_page_with_an_image_picker():
    used = {}
    for page in sorted((ROOT / "pages").glob("*.py")):
        keys = re.findall(r"image_picker\(\s*\"(\w+)\"", page.read_text())
        if keys:
            used[f"pages/{page.name}"] = keys
    assert set(used) == set(PAGES_WITH_IMAGE_PICKER) | NOT_HERE
    assert all(PAGES_WITH_IMAGE_PICKER[page][0] in keys for page, keys in used.items() if page not in NOT_HERE)


def _open(page: str, query: dict) -> AppTest:
    at = AppTest.from_file(str(ROOT / page), default_timeout=300)
    for name, value in query.items():
        at.query_params[name] = value
    at.run()
    if page == "pages/trainer.py":
        from tests.test_page_trainer import train

        at.button(key="trainer_demo").click().run()
        train(at)  # a background job: wait for it, as the page's poll would
    return at


@pytest.mark.parametrize(
    "page", [pytest.param(p, marks=pytest.mark.slow) if p in SLOW_PAGES else p for p in PAGES_WITH_IMAGE_PICKER]
)
def test_bad_uploads_show_a_message_and_the_page_keeps_working(page):
    key, query = PAGES_WITH_IMAGE_PICKER[page]
    at = _open(page, query)
    assert not at.exception, [e.value for e in at.exception]
    assert f"{key}_upload" not in [u.key for u in at.get("file_uploader")]  # folded: not drawn
    at.session_state[f"{key}_add"] = True  # the visitor opens "Add your own image"
    at.run()
    for kind, (data, phrase) in BAD_FILES.items():
        at.file_uploader(key=f"{key}_upload").set_value((f"{kind}.png", data, "image/png")).run()
        assert not at.exception, kind
        assert any(phrase in e.value for e in at.error), (kind, [e.value for e in at.error])
    # A good upload afterwards is accepted, selected, and the page still renders.
    at.file_uploader(key=f"{key}_upload").set_value(("mine.png", good_png(), "image/png")).run()
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.selectbox(key=f"{key}_choice").value == "mine.png"  # the new image is the one shown
