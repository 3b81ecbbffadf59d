"""Convolution page logic (AppTest): widgets change the shapes, formulas and sums shown.

Expected numbers are worked out by hand in the comments, not by calling cnnviz.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "pages" / "convolution.py")


def texts(at) -> str:
    """Everything the page wrote (markdown, LaTeX, captions, image captions), one string to search."""
    image_captions = [img.caption for image in at.image for img in image.proto.imgs]
    return "\n".join(
        [m.value for m in at.markdown] + [x.value for x in at.latex] + [c.value for c in at.caption] + image_captions
    )


def shapes(at) -> list[str]:
    """The four pipeline shapes: input, convolved, activated, pooled."""
    return [m.value.removeprefix("#### ") for m in at.markdown if m.value.startswith("#### ") and " × " in m.value][:4]


def ramp_png() -> bytes:
    """8 × 8 gray picture whose pixel in column c is 10·c (0, 10, …, 70): sums are easy by hand."""
    ramp = np.tile((np.arange(8) * 10).astype(np.uint8), (8, 1))
    buf = io.BytesIO()
    Image.fromarray(np.stack([ramp] * 3, -1)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture()
def at():
    app = AppTest.from_file(PAGE, default_timeout=60)
    app.query_params["image"] = "Geometric shapes"  # 384 × 384 sample, worked on at 128 × 128
    app.run()
    assert not app.exception
    return app


def test_default_shapes_and_output_size_formula(at):
    # 128 × 128 gray, 3 × 3 identity, stride 1, valid: (128 − 3) / 1 + 1 = 126; max pool 2/2: (126 − 2) / 2 + 1 = 63.
    assert shapes(at) == ["128 × 128 × 1", "126 × 126 × 1", "126 × 126 × 1", "63 × 63 × 1"]
    assert r"\frac{128 - 3}{1} \right\rfloor + 1 = 126" in texts(at)
    assert r"\frac{126 - 2}{2} \right\rfloor + 1 = 63" in texts(at)
    assert not at.error
    alts = [img.alt for image in at.image for img in image.proto.imgs]
    assert len(alts) >= 10 and all(alts), "every picture needs alt text"


@pytest.mark.slow
def test_stride_padding_and_kernel_size_change_the_numbers(at):
    at.slider(key="conv_stride").set_value(2).run()
    # floor((128 − 3) / 2) + 1 = 63; pooled floor((63 − 2) / 2) + 1 = 31.
    assert shapes(at) == ["128 × 128 × 1", "63 × 63 × 1", "63 × 63 × 1", "31 × 31 × 1"]
    assert r"\frac{128 - 3}{2} \right\rfloor + 1 = 63" in texts(at)

    at.radio(key="conv_padding").set_value("same").run()
    # same: ceil(128 / 2) = 64; zeros (64 − 1)·2 + 3 − 128 = 1 in total: 0 before, 1 after.
    assert shapes(at)[1] == "64 × 64 × 1"
    assert r"\left\lceil \frac{128}{2} \right\rceil = 64" in texts(at)
    assert "zeros added: 0 before, 1 after" in texts(at)

    at.radio(key="conv_size").set_value(5)
    at.slider(key="conv_stride").set_value(3).run()
    # same, k = 5, s = 3: ceil(128 / 3) = 43; zeros (43 − 1)·3 + 5 − 128 = 3: 1 before, 2 after.
    assert shapes(at)[1] == "43 × 43 × 1"
    assert "zeros added: 1 before, 2 after" in texts(at)

    at.radio(key="conv_padding").set_value("valid")
    at.radio(key="conv_pool").set_value("none").run()
    # valid, k = 5, s = 3: floor(123 / 3) + 1 = 42; no pooling keeps 42.
    assert shapes(at) == ["128 × 128 × 1", "42 × 42 × 1", "42 × 42 × 1", "42 × 42 × 1"]
    assert not at.exception


@pytest.mark.slow
def test_colour_modes_change_the_channel_count(at):
    at.radio(key="conv_channels").set_value("rgb").run()
    assert shapes(at)[:2] == ["128 × 128 × 3", "126 × 126 × 3"]  # the kernel on each channel
    at.radio(key="conv_channels").set_value("conv2d").run()
    assert shapes(at)[:2] == ["128 × 128 × 3", "126 × 126 × 1"]  # one filter, summed over channels
    assert not at.exception


@pytest.mark.slow
def test_preset_changes_the_step_through_sum_on_a_known_picture():
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["conv_add"] = True  # "Add your own image" is open
    at.run()
    at.file_uploader(key="conv_upload").set_value(("ramp.png", ramp_png(), "image/png")).run()
    assert at.selectbox(key="conv_choice").value == "ramp.png"
    at.select_slider(key="conv_px").set_value(16).run()  # 8 px fits: no resizing
    assert shapes(at)[:2] == ["8 × 8 × 1", "6 × 6 × 1"]

    at.selectbox(key="conv_kernel").set_value("sobel-x").run()
    at.slider(key="conv_row").set_value(2)
    at.slider(key="conv_col").set_value(3).run()
    # Sobel x on a ramp of step 10: (right − left column) = 20 in each row, weighted 1 + 2 + 1 → 80.
    assert "= **80**" in texts(at)
    assert "weights add up to **0**" in texts(at)

    at.selectbox(key="conv_kernel").set_value("box-blur").run()
    at.slider(key="conv_row").set_value(0)
    at.slider(key="conv_col").set_value(0).run()
    # Box blur at (0, 0): mean of columns 0, 1, 2 = (0 + 10 + 20) / 3 = 10.
    assert "= **10**" in texts(at)

    at.radio(key="conv_padding").set_value("same").run()
    # same padding, (0, 0): zeros on top and left; real cells 0, 10 in two rows → (0 + 10) · 2 / 9 = 2.222.
    assert "= **2.222**" in texts(at)
    assert "rows -1…1, columns -1…1" in texts(at)
    assert not at.exception and not at.error


@pytest.mark.slow
def test_settings_are_read_from_the_url():
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params.update({"image": "Checkerboard", "kernel": "sobel-y", "size": "5", "stride": "2", "pool": "avg"})
    at.run()
    assert not at.exception
    assert at.selectbox(key="conv_kernel").value == "sobel-y"
    assert at.radio(key="conv_size").value == 5
    assert at.slider(key="conv_stride").value == 2
    assert shapes(at)[1] == "62 × 62 × 1"  # floor((128 − 5) / 2) + 1


@pytest.mark.slow
def test_edited_kernel_from_the_url_is_used():
    """A lecturer's edited grid travels in the URL as ``weights=w,…;divisor``."""
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params.update({"image": "Geometric shapes", "kernel": "identity", "weights": "0,0,0,0,3,0,0,0,0;2"})
    at.run()
    assert not at.exception
    assert "weights add up to **1.5**" in texts(at)  # 3 / 2, with the editor closed
    assert any(h.value == "Identity, edited" for h in at.subheader)
    assert not at.number_input  # the editor is drawn only while editing
    at.toggle(key="conv_edit").set_value(True).run()
    assert at.number_input[0].value == 2 and at.query_params["edit"] == "1"
    assert "weights add up to **1.5**" in texts(at)
    at.selectbox(key="conv_kernel").set_value("sharpen").run()  # a new preset starts from its own weights
    assert "weights" not in at.query_params
    assert "weights add up to **1**" in texts(at)


def test_play_steps_show_the_running_sum_and_the_output_pixel():
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["conv_add"] = True  # "Add your own image" is open
    at.run()
    at.file_uploader(key="conv_upload").set_value(("ramp.png", ramp_png(), "image/png")).run()
    at.select_slider(key="conv_px").set_value(16).run()
    at.selectbox(key="conv_kernel").set_value("sobel-x").run()
    play = [m for m in at.metric if m.label.startswith("output pixel")]
    # Position 1 = output (0, 0): columns 0, 10, 20 under [-1 0 1; -2 0 2; -1 0 1] → 20 + 40 + 20 = 80.
    assert (play[0].label, play[0].value) == ("output pixel (0, 0)", "80")
    assert "0 + 0 + 20 + 0 + 0 + 40 + 0 + 0 + 20" in texts(at).replace("-0", "0")
    for _ in range(7):  # 6 × 6 output: the 8th position is (1, 1)
        at.button(key="conv_step").click().run()
    play = [m for m in at.metric if m.label.startswith("output pixel")]
    assert (play[0].label, play[0].value) == ("output pixel (1, 1)", "80")
    assert "Position 8 of 36" in texts(at)
    assert not at.exception
