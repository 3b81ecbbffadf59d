"""Animations a hall can follow: the kernel sliding over the picture, the decision line moving while
a network trains. Each is a ``st.fragment`` that reruns itself at the chosen speed while it plays,
so only the animation redraws; Play and Pause rerun the page once to start or stop the clock.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from cnnviz.charts import neuron as neuron_charts
from cnnviz.charts import style
from cnnviz.charts.convolution import number
from cnnviz.learn import neuron
from cnnviz.learn.convolution import feature_map_display, magnify, outline, step_through
from ui import settings
from ui.widgets import show_image

SPEEDS = [0.5, 1.0, 2.0, 4.0, 8.0]  # positions (or training frames) per second
TRAINING_EPOCHS = [0, 5, 10, 20, 35, 50, 75, 100, 150, 200, 300, 400, 600, 800, 1000, 1250, 1500]


def _clock(key: str, label: str) -> tuple[bool, float]:
    """Play/Pause state and speed of animation ``key`` (the speed is a kept setting, in the URL)."""
    playing = bool(st.session_state.get(f"{key}_playing", False))
    speed = settings.select_slider(
        label, SPEEDS, key=f"{key}_speed", default=2.0, url=f"{key}_speed", format_func=lambda s: f"{s:g} / s"
    )
    return playing, speed


def _toggle(key: str, playing: bool) -> None:
    st.session_state[f"{key}_playing"] = playing


def convolution_player(
    x: np.ndarray, filters: np.ndarray, convolved: np.ndarray, *, stride: int, padding: str, name: str, side: int
) -> None:
    """Slide the kernel position by position: the patch on the input, the sum, the output filling in.

    ``x`` is the page's working picture, ``convolved`` its :func:`~cnnviz.learn.convolution.convolve2d`
    output with the same ``filters``, ``stride`` and ``padding``; every shown sum comes from
    :func:`~cnnviz.learn.convolution.step_through`, equal to that output pixel (tests/test_convolution.py).
    """
    out_h, out_w = convolved.shape[:2]
    total_steps = out_h * out_w
    if total_steps == 0:
        return
    pictures = st.container()  # the animation first, its speed below it
    playing, speed = _clock("conv_play", "Speed (kernel positions per second)")
    kh, kw = filters.shape[:2]

    @st.fragment(run_every=1.0 / speed if playing else None)
    def frame() -> None:
        b1, b2, b3, _ = st.columns([1, 1, 1, 2])
        if b1.button("⏸ Pause" if playing else "▶ Play", key="conv_play_button", width="stretch"):
            _toggle("conv_play", not playing)
            st.rerun()  # the whole page: the clock (run_every) starts or stops
        b2.button("Step ⏭", key="conv_step", on_click=_advance, args=(total_steps,), width="stretch")
        b3.button("⏮ Start", key="conv_restart", on_click=st.session_state.__setitem__, args=("conv_play_t", 0))
        t = int(st.session_state.get("conv_play_t", 0)) % total_steps
        if playing:
            t = (t + 1) % total_steps
            if t == total_steps - 1:
                _toggle("conv_play", False)  # the last position: stop the clock
                st.session_state["conv_play_t"] = t
                st.rerun()
        st.session_state["conv_play_t"] = t
        row, col = divmod(t, out_w)
        step = step_through(x, filters, row, col, stride=stride, padding=padding)
        factor = max(1, side // max(x.shape[:2]))
        base = magnify(np.clip(x, 0, 255).astype(np.uint8).squeeze(), factor)
        shown, legend = feature_map_display(convolved)
        shown = shown[..., 0] if shown.ndim == 3 and shown.shape[2] == 1 else shown
        mask = (np.arange(total_steps) <= t).reshape(out_h, out_w)
        filled = np.where(mask[..., None] if shown.ndim == 3 else mask, shown, 40).astype(np.uint8)
        f2 = max(1, side // max(out_h, out_w))
        left, middle, right = st.columns([1, 1, 1.2], gap="large")
        with left:
            show_image(
                outline(base, step.top, step.left, kh, kw, factor=factor),
                alt=f"{name} with a red square on the kernel's position {t + 1} of {total_steps}",
                caption=f"Position {t + 1} of {total_steps}: the kernel over rows {step.top}…{step.top + kh - 1}",
            )
        with middle:
            show_image(
                outline(magnify(filled, f2), row, col, 1, 1, factor=f2),
                alt=f"The convolved map filled in up to row {row}, column {col}",
                caption=f"The output so far; its pixel ({row}, {col}) is this sum ({legend}).",
            )
        with right:
            products = np.asarray(step.products, np.float64)
            if products.ndim == 2 and products.size <= 25:
                terms = " + ".join(number(v) for v in products.ravel())
                st.markdown(f"**Running sum of pixel × weight:**\n\n{terms}")
            totals = np.atleast_1d(step.total)
            value = " · ".join(number(v) for v in totals)
            st.metric(f"output pixel ({row}, {col})", value)

    with pictures:
        frame()


def _advance(total: int) -> None:
    st.session_state["conv_play_t"] = (int(st.session_state.get("conv_play_t", 0)) + 1) % total


@st.cache_data(show_spinner=False, max_entries=256)
def _training_frame(dataset: str, hidden: int, epochs: int, font_scale: float) -> tuple[dict, dict, float, float]:
    """Both networks after ``epochs`` steps of gradient descent (``neuron.train`` is deterministic,
    so this is exactly the training run of the page, stopped early)."""
    points, labels = neuron.DATASETS[dataset]()
    maps = []
    accs = []
    for h in (None, hidden):
        # learning rate 0 for "0 steps": the starting weights, drawn by the same seed
        net = neuron.train(points, labels, hidden=h, epochs=max(epochs, 1), learning_rate=0.5 if epochs else 0.0)
        acc = neuron.accuracy(net, points, labels)
        accs.append(acc)
        what = "One neuron" if h is None else f"Two layers ({hidden} + 1)"
        # The page's own plane and grid (pages/neuron.py: EXTENT, GRID), so the last frame is its map.
        chart = neuron_charts.network_map(net, points, labels, title=f"{what} after {epochs} steps: {acc:.0%} correct")
        maps.append(chart.to_dict())
    return maps[0], maps[1], accs[0], accs[1]


def training_player(dataset: str, hidden: int) -> None:
    """Watch both networks learn: their decision borders after 0, 5, … 1500 steps of gradient descent."""
    st.header("Watch them learn")
    pictures = st.container()
    playing, speed = _clock("train_play", "Speed (frames per second)")

    @st.fragment(run_every=1.0 / speed if playing else None)
    def frame() -> None:
        last = len(TRAINING_EPOCHS) - 1
        b1, b2 = st.columns([1, 3], vertical_alignment="center")
        if b1.button("⏸ Pause" if playing else "▶ Train", key="train_play_button", width="stretch"):
            if not playing and st.session_state.get("train_play_i", last) >= last:
                st.session_state["train_play_i"] = -1  # start again from the untrained networks
            _toggle("train_play", not playing)
            st.rerun()
        i = int(st.session_state.get("train_play_i", last))
        if playing:
            i = min(i + 1, last)
        st.session_state["train_play_i"] = i
        if playing and i == last:
            _toggle("train_play", False)
            st.rerun()
        epochs = TRAINING_EPOCHS[i]
        one, two, acc1, acc2 = _training_frame(dataset, hidden, epochs, style.scale())  # cached per text size
        left, right = st.columns(2, gap="large")
        left.vega_lite_chart(
            spec=one,
            key="train_one",
            width="content",
            alt=f"One neuron's decision map after {epochs} steps: {acc1:.0%} correct.",
        )
        right.vega_lite_chart(
            spec=two,
            key="train_two",
            width="content",
            alt=f"Two-layer decision map after {epochs} steps: {acc2:.0%} correct.",
        )
        b2.markdown(f"**Gradient descent, step {epochs} of {TRAINING_EPOCHS[-1]}**")

    with pictures:
        frame()
