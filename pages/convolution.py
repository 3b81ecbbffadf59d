"""Page 2 · Convolution and pooling: slide a small kernel over a picture, step by step.

Lecture outline: pick a picture and a kernel → slide it (stride, padding, ReLU, pooling)
→ one output pixel by hand → why it is really cross-correlation → colour channels and
the Conv2D filter. Every setting lives in the URL. No TensorFlow in this page's imports.
"""

from __future__ import annotations

import streamlit as st

from ui.router import ensure_app_shell

ensure_app_shell()  # before heavy imports: a bookmark opened first on a fresh server goes through app.py

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from cnnviz.charts.convolution import kernel_spec, number, step_spec  # noqa: E402
from cnnviz.learn.convolution import (  # noqa: E402
    convolve2d,
    feature_map_display,
    flip_kernel,
    magnify,
    outline,
    output_size,
    padding_amounts,
    relu,
    step_through,
    to_gray,
)
from cnnviz.learn.kernels import presets  # noqa: E402
from cnnviz.learn.pooling import pool2d  # noqa: E402
from ui import animate, present, settings  # noqa: E402
from ui.widgets import image_picker, show_image  # noqa: E402

PRESETS = presets()
CHANNEL_MODES = {
    "gray": "Gray: 1 channel",
    "rgb": "Colour: the kernel on each channel",
    "conv2d": "Colour: one Conv2D filter (summed)",
}
SIDE = 480  # pixels each picture is magnified to, so single pixels stay crisp on a projector


def shape_text(array: np.ndarray) -> str:
    """``H × W × C`` of a feature map, as a CNN summary prints it."""
    dims = array.shape if array.ndim == 3 else array.shape + (1,)
    return " × ".join(str(d) for d in dims)


def picture(fmap: np.ndarray, factor: int) -> tuple[np.ndarray, str]:
    """Feature map → magnified uint8 picture and what its greys mean."""
    shown, legend = feature_map_display(fmap)
    if shown.ndim == 3 and shown.shape[2] == 1:
        shown = shown[..., 0]
    return magnify(shown, factor), legend


def forget_custom_weights() -> None:
    """A new preset starts from its own weights, not from an edited grid."""
    settings.set_value("conv_weights", "", default="", url="weights")


def parse_grid(text: str, size: int) -> tuple[np.ndarray, float] | None:
    """An edited grid as shared in a link, ``"w,w,…;divisor"`` → ``(weights, divisor)``, or ``None``.

    Anything that is not ``size × size`` sensible numbers (``1e308``, ``nan``, a zero divisor) is ignored.
    """
    values, _, div = text.partition(";")
    try:
        weights = np.array([float(v) for v in values.split(",")]).reshape(size, size)
        divisor = float(div) if div else 1.0
    except ValueError:
        return None
    if not (np.all(np.abs(weights) <= 1e4) and 1e-4 <= abs(divisor) <= 1e4):
        return None
    return weights, divisor


def size_formula(axis: str, n: int, k: int, s: int, padding: str) -> str:
    """The output-size formula for one axis with the current numbers, in LaTeX."""
    out = output_size(n, k, s, padding)
    if padding == "valid":
        return rf"\text{{{axis}}}:\ \left\lfloor \frac{{{n} - {k}}}{{{s}}} \right\rfloor + 1 = {out}"
    before, after = padding_amounts((n, n), (k, k), s, "same")[0]
    return (
        rf"\text{{{axis}}}:\ \left\lceil \frac{{{n}}}{{{s}}} \right\rceil = {out}"
        rf"\quad(\text{{zeros added: {before} before, {after} after}})"
    )


st.title("2 · Convolution and pooling")
present.explain(
    "A convolutional layer slides a small grid of numbers — the **kernel** — over the picture. "
    "At every position it multiplies the pixels under the kernel by the kernel's numbers and adds "
    "them up: one number per position, together a new picture called a **feature map**."
)

# ---------------------------------------------------------------- 1. picture and kernel
present.step(1)
st.header("1 · A picture and a kernel")
col_image, col_kernel, col_about = st.columns([1.1, 1.2, 1], gap="large")
with col_image:
    preview = st.empty()  # presenter mode: the picture above its picker, so it is on the first screen
    name, image = image_picker("conv")
    if present.presenting():
        with preview:
            show_image(image, alt=f"The picture the kernel will slide over: {name}", caption=f"The picture: {name}")
    work_side = settings.select_slider(
        "Working size (pixels on the long side)",
        [16, 24, 32, 48, 64, 96, 128, 192, 256, 384],
        key="conv_px",
        default=128,
        url="px",
        help="Small pictures show single pixels and the stride clearly; large ones show the effect.",
    )
    channel_mode = settings.radio(
        "Channels", list(CHANNEL_MODES), key="conv_channels", url="channels", format_func=CHANNEL_MODES.get
    )

with col_kernel:
    preset_name = settings.selectbox(
        "Kernel preset",
        list(PRESETS),
        key="conv_kernel",
        url="kernel",
        format_func=lambda p: PRESETS[p][3].title,
        on_change=forget_custom_weights,
    )
    ksize = settings.radio(
        "Kernel size",
        sorted(PRESETS[preset_name]),
        key="conv_size",
        url="size",
        format_func=lambda s: f"{s} × {s}",
        horizontal=True,
        on_change=forget_custom_weights,
    )
    preset = PRESETS[preset_name][ksize]
    weights = preset.weights
    divisor_default = float(preset.divisor)
    custom = settings.value(
        "conv_weights",
        "",
        url="weights",  # an edited grid: "w,w,…;divisor"
        valid=lambda text: text == "" or parse_grid(text, ksize) is not None,
    )
    parsed = parse_grid(custom, ksize) if custom else None
    if parsed is not None:
        weights, divisor_default = parsed
    # The grid of numbers is drawn by the chart beside it; the editor (the page's costliest widget,
    # about a tenth of each rerun) is drawn only while the visitor edits.
    if settings.toggle("✏️ Edit the weights", key="conv_edit", default=False, url="edit"):
        st.caption("Edit any weight, like a photo editor's custom filter. The kernel is the weights ÷ the divisor.")
        grid = st.data_editor(
            pd.DataFrame(weights, columns=[str(c + 1) for c in range(ksize)]),
            key=f"grid_{preset_name}_{ksize}",
            hide_index=True,
            width="content",
            column_config={
                str(c + 1): st.column_config.NumberColumn(width=70, alignment="center") for c in range(ksize)
            },
        )
        divisor = st.number_input(
            "Divide by", value=divisor_default, step=1.0, format="%g", key=f"divisor_{preset_name}_{ksize}"
        )
        edited = grid.to_numpy(dtype=np.float64, na_value=0.0)
        if divisor == 0:
            st.warning("Dividing by 0 is not possible; the page divides by 1 instead.", icon="⚠️")
            divisor = 1.0
        if np.array_equal(edited, preset.weights) and divisor == preset.divisor:
            forget_custom_weights()
        else:
            settings.set_value(
                "conv_weights",
                ",".join(number(v) for v in edited.ravel()) + f";{number(divisor)}",
                default="",
                url="weights",
            )
    else:  # the preset's weights, or an edited grid kept from earlier or from a link
        edited, divisor = np.asarray(weights, np.float64), divisor_default
    kernel = (edited / divisor).astype(np.float32)

with col_about:
    st.subheader(preset.title if not settings.kept("conv_weights") else f"{preset.title}, edited")
    present.explain(preset.explanation)
    st.vega_lite_chart(
        kernel_spec(kernel), alt=f"The {ksize} by {ksize} kernel: " + ", ".join(number(v) for v in kernel.ravel())
    )
    st.caption(
        f"What to look at: the weights add up to **{number(kernel.sum())}** — "
        "1 keeps the brightness, 0 keeps only changes (edges)."
    )

# Work on a small copy: single pixels, strides and pooling windows become visible.
scale = min(1.0, work_side / max(image.shape[:2]))
small = (
    cv2.resize(
        image,
        (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))),
        interpolation=cv2.INTER_AREA,
    )
    if scale < 1
    else image
)
x = np.rint(to_gray(small))[..., 0] if channel_mode == "gray" else small.astype(np.float32)
channel_weights = np.ones(3, np.float32)

# ---------------------------------------------------------------- 2. slide it
present.step(2)
st.header("2 · Slide the kernel over the picture")
pictures = st.container()  # drawn above its controls: the pictures come first on the screen
c1, c2, c3, c4, c5, c6 = st.columns(6, gap="medium")
stride = settings.slider(
    "Stride",
    1,
    4,
    key="conv_stride",
    default=1,
    url="stride",
    where=c1,
    help="How many pixels the kernel moves each step.",
)
padding = settings.radio(
    "Padding",
    ["valid", "same"],
    key="conv_padding",
    url="padding",
    where=c2,
    horizontal=True,
    help="valid: the kernel stays inside the picture. same: zeros around the edge keep the size (÷ stride).",
)
use_relu = settings.toggle(
    "ReLU", key="conv_relu", default=True, url="relu", where=c3, help="Rectified linear unit: negative values become 0."
)
pool_mode = settings.radio(
    "Pooling", ["none", "max", "avg"], key="conv_pool", default="max", url="pool", where=c4, horizontal=True
)
pool_size = settings.slider(
    "Pool size", 2, 4, key="conv_pool_size", default=2, url="pool_size", where=c5, disabled=pool_mode == "none"
)
pool_stride = settings.slider(
    "Pool stride", 1, 4, key="conv_pool_stride", default=2, url="pool_stride", where=c6, disabled=pool_mode == "none"
)

if channel_mode == "conv2d":
    st.markdown(
        "**One Conv2D filter** has a kernel slice per colour channel. Here each slice is the kernel above times a channel weight:"
    )
    w1, w2, w3, _ = st.columns([1, 1, 1, 3])
    channel_weights = np.array(
        [
            settings.slider("× red", -1.0, 1.0, key="conv_w_red", default=1.0, url="w_red", step=0.1, where=w1),
            settings.slider("× green", -1.0, 1.0, key="conv_w_green", default=1.0, url="w_green", step=0.1, where=w2),
            settings.slider("× blue", -1.0, 1.0, key="conv_w_blue", default=1.0, url="w_blue", step=0.1, where=w3),
        ],
        np.float32,
    )
filters = kernel[..., None] * channel_weights if channel_mode == "conv2d" else kernel

convolved = convolve2d(x, filters, stride=stride, padding=padding)
activated = relu(convolved) if use_relu else convolved
pooled = pool2d(activated, pool_size, pool_stride, pool_mode, "valid") if pool_mode != "none" else activated

h, w = x.shape[:2]
factor = max(1, SIDE // max(h, w))
panels = [
    ("Input", x, "The picture the kernel reads"),
    ("Convolved", convolved, "Every pixel = sum of (pixels × kernel) around it"),
    (
        "Activated" if use_relu else "Activated (ReLU off)",
        activated,
        "ReLU keeps positive responses, sets negatives to 0",
    ),
    (
        f"{pool_mode.capitalize()}-pooled" if pool_mode != "none" else "Not pooled",
        pooled,
        f"Each {pool_size} × {pool_size} window → its {'strongest' if pool_mode == 'max' else 'mean'} value"
        if pool_mode != "none"
        else "Pooling is off",
    ),
]
columns = pictures.columns(4, gap="medium")
for column, (title, fmap, what) in zip(columns, panels):
    with column:
        st.subheader(title)
        st.markdown(f"#### {shape_text(fmap)}")
        if fmap.size == 0:
            st.info("Nothing left: the window is larger than the picture. Use 'same' padding or a smaller stride.")
            continue
        if title == "Input":
            shown, legend = magnify(np.clip(fmap, 0, 255).astype(np.uint8).squeeze(), factor), "pixel values 0–255"
        else:
            shown, legend = picture(fmap, max(1, SIDE // max(fmap.shape[:2])))
        show_image(
            shown,
            alt=f"{title} feature map of {name}, {shape_text(fmap)}, {legend}",
            caption=f"{what}. Shown: {legend}.",
        )

st.markdown("**Output size.** With picture size *n*, kernel size *k* and stride *s*:")
kh = kernel.shape[0]
formula_cols = st.columns(2)
with formula_cols[0]:
    st.markdown("Convolution")
    st.latex(size_formula("height", h, kh, stride, padding))
    st.latex(size_formula("width", w, kh, stride, padding))
with formula_cols[1]:
    if pool_mode != "none":
        st.markdown("Pooling (valid: only whole windows)")
        st.latex(size_formula("height", activated.shape[0], pool_size, pool_stride, "valid"))
        st.latex(size_formula("width", activated.shape[1], pool_size, pool_stride, "valid"))
st.caption(
    "What to look at: stride 2 halves each side, 'same' padding keeps the size at stride 1, "
    "and pooling shrinks the map again while keeping where the strong responses were."
)

# ---------------------------------------------------------------- 3. one pixel by hand
present.step(3)
st.header("▶ Play: the kernel slides over the picture")
animate.convolution_player(x, filters, convolved, stride=stride, padding=padding, name=name, side=SIDE)

present.step(4)
st.header("3 · One output pixel, by hand")
out_h, out_w = convolved.shape[:2]
if out_h and out_w:
    r1, r2, _ = st.columns([1, 1, 2])
    # The range shrinks with stride and padding: a kept row is clamped into it, not reset.
    row = settings.slider(
        "Output row", 0, max(out_h - 1, 1), key="conv_row", default=out_h // 2, url="row", where=r1, disabled=out_h < 2
    )
    col = settings.slider(
        "Output column",
        0,
        max(out_w - 1, 1),
        key="conv_col",
        default=out_w // 2,
        url="col",
        where=r2,
        disabled=out_w < 2,
    )
    row, col = min(row, out_h - 1), min(col, out_w - 1)
    step = step_through(x, filters, row, col, stride=stride, padding=padding)
    left, right = st.columns([1.4, 2], gap="large")
    before_col, after_col = left.columns(2)
    with before_col:
        base = magnify(np.clip(x, 0, 255).astype(np.uint8).squeeze(), factor)
        show_image(
            outline(base, step.top, step.left, kh, kh, factor=factor),
            alt=f"Input with a red square on the {kh} by {kh} patch starting at row {step.top}, column {step.left}",
            caption=f"The patch under the kernel: rows {step.top}…{step.top + kh - 1}, "
            f"columns {step.left}…{step.left + kh - 1} (negative = in the zero padding).",
        )
    with after_col:
        f2 = max(1, SIDE // max(out_h, out_w))
        fmap_shown, legend = picture(convolved, f2)
        show_image(
            outline(fmap_shown, row, col, 1, 1, factor=f2),
            alt=f"Convolved feature map with a red square on output pixel row {row}, column {col}",
            caption=f"…its sum lands at row {row}, column {col} of the convolved map ({legend}).",
        )
    with right:
        totals = np.atleast_1d(step.total)
        if channel_mode == "rgb":
            sums = " · ".join(f"{c} **{number(t)}**" for c, t in zip(["red", "green", "blue"], totals))
            st.markdown(f"### Sum of the products, per channel\n### {sums}")
        elif channel_mode == "conv2d":
            per_channel = step.products.sum(axis=(0, 1))
            parts = " + ".join(f"{number(t)} ({c})" for t, c in zip(per_channel, ["red", "green", "blue"]))
            st.markdown(f"### Sum over all three channels\n### {parts} = **{number(step.total)}**")
        else:
            st.markdown(f"### Sum of the products\n### = **{number(step.total)}**")
        st.markdown(
            f"That number is output pixel ({row}, {col}). Move the sliders to slide the kernel; "
            f"with stride {stride} the patch jumps {stride} input pixel{'s' if stride > 1 else ''} per output pixel."
        )
        st.vega_lite_chart(
            step_spec(step.patch, filters, step.products),
            alt="The input patch's numbers, the kernel's numbers and their element-wise products",
        )
        st.caption(
            "What to look at: each product is the pixel times the kernel weight in the same place; "
            "their sum is the one number written into the output pixel."
        )
else:
    st.info("The convolved map is empty at these settings, so there is no pixel to step through.")

# ---------------------------------------------------------------- 4. cross-correlation
present.step(5)
st.header("4 · “Convolution” in deep learning is cross-correlation")
present.explain(
    "In mathematics, convolving flips the kernel by 180° before sliding it. Keras, PyTorch and this page "
    "do **not** flip: the kernel is laid on the picture exactly as you see it (cross-correlation). "
    "For symmetric kernels (blur, outline) the two are identical. For Sobel and emboss, flipping turns "
    "the response around — bright edges become dark. A trained network does not care: it simply learns "
    "the flipped weights."
)
flipped = convolve2d(x, flip_kernel(filters), stride=stride, padding=padding)
fc1, fc2, _ = st.columns([1, 1, 1], gap="large")
for column, title, fmap in (
    (fc1, "As in Keras (no flip)", convolved),
    (fc2, "Textbook convolution (flipped)", flipped),
):
    with column:
        st.subheader(title)
        if fmap.size:
            shown, legend = picture(fmap, max(1, SIDE // max(fmap.shape[:2])))
            show_image(shown, alt=f"{title}: feature map of {name}, {legend}", caption=f"Shown: {legend}.")
same = convolved.size and np.allclose(convolved, flipped, atol=1e-3)
st.caption(
    "What to look at: "
    + (
        "these two are identical, because this kernel is symmetric."
        if same
        else "the two differ, because this kernel is not symmetric — compare the edges."
    )
)

# ---------------------------------------------------------------- 5. colour
present.step(6)
st.header("5 · Colour pictures: three channels")
rgb = small.astype(np.float32)
per_channel = convolve2d(rgb, kernel, stride=stride, padding=padding)
summed = convolve2d(rgb, kernel[..., None] * channel_weights, stride=stride, padding=padding)
present.explain(
    "A colour picture is three stacked pictures: red, green and blue. A photo editor runs the kernel over "
    "**each channel on its own** and keeps three channels. A Conv2D layer instead holds **one kernel slice per "
    "channel** (a kh × kw × 3 filter) and **adds** the three results into a single feature map; "
    "with 64 filters it makes 64 such maps."
)
if per_channel.size:
    cols = st.columns(5, gap="small")
    f3 = max(1, 360 // max(per_channel.shape[:2]))
    joint, scale_all = picture(per_channel, f3)  # one scale for all three, so they can be compared
    for column, c, label in zip(cols, range(3), ["Red", "Green", "Blue"]):
        with column:
            show_image(
                joint[..., c],
                alt=f"{label} channel filtered, {scale_all}",
                caption=f"{label} channel ⋆ kernel · {scale_all}",
            )
    with cols[3]:
        show_image(
            joint,
            alt=f"The three filtered channels recombined as a colour picture, {scale_all}",
            caption=f"Kept as 3 channels: `{shape_text(per_channel)}`",
        )
    with cols[4]:
        shown, legend = picture(summed, f3)
        weights_text = " ".join(f"{number(v)}×{c}" for v, c in zip(channel_weights, "RGB"))
        show_image(
            shown,
            alt=f"Conv2D view: the channels summed into one feature map, {legend}",
            caption=f"Conv2D: summed ({weights_text}) into `{shape_text(summed)}`",
        )
    st.caption(
        "What to look at: the three channel maps differ where the colours differ; the Conv2D map is "
        "one picture — colour information is mixed into a single number per pixel."
    )
