"""Altair charts for the neuron page: activation curve, decision heat map, loss curves, softmax bars.

Every builder takes plain numbers/arrays and returns an ``alt.Chart`` (or layered chart)
with large fonts, because these charts are projected in a lecture hall.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import altair as alt

from cnnviz.charts.style import config, font, scale
import numpy as np
from numpy.typing import ArrayLike
import pandas as pd

from cnnviz.learn.neuron import Network, activate, network_grid

CLASS_COLOURS = ("#1f5fa8", "#d95f02")
"""Class 0 blue, class 1 orange: the ends of the heat maps' ``blueorange`` scheme."""
HEAT_COLOURS = ("#8fb3df", "#ffffff", "#f4b183")
"""Paler versions of the class colours for heat-map backgrounds, so the dots stay visible on them."""
POINT_COLOUR = "#c2185b"


def _config() -> dict:
    """Projector-sized fonts, passed once to the top-level chart (each ``configure_*`` call would copy it)."""
    style = config()
    return {**style, "axis": {**style["axis"], "grid": True}}


def _layer(*layers: alt.Chart, **properties: Any) -> alt.LayerChart:
    """Layer charts with the projector configuration; one construction, no chained copies."""
    return alt.LayerChart(layer=list(layers), config=_config(), **properties)


def activation_curve(
    name: str,
    z: float,
    *,
    threshold: float = 0.0,
    alpha: float = 0.3,
    z_range: tuple[float, float] = (-6.0, 6.0),
    height: int = 340,
) -> alt.LayerChart:
    """The curve ``y = f(z)`` of activation ``name`` with the neuron's current ``(z, f(z))`` marked.

    The plotted range grows to include ``z`` so the marker never leaves the chart. Horizontal
    axis: weighted sum ``z``; vertical: output ``y``.
    """
    lo, hi = min(z_range[0], np.floor(z) - 1), max(z_range[1], np.ceil(z) + 1)
    zs = np.linspace(lo, hi, 301)
    if name == "step":  # draw the jump as a vertical edge exactly at the threshold
        zs = np.sort(np.concatenate([zs, [threshold, np.nextafter(threshold, -np.inf)]]))
    curve = pd.DataFrame({"z": zs, "y": activate(zs, name, threshold=threshold, alpha=alpha)})
    y = float(activate(z, name, threshold=threshold, alpha=alpha))
    point = pd.DataFrame({"z": [z], "y": [y], "label": [f"z = {z:.2f}, y = {y:.4f}"]})
    x_enc = alt.X("z:Q", title="weighted sum z", scale=alt.Scale(domain=[lo, hi], nice=False))
    line = (
        alt.Chart(curve)
        .mark_line(strokeWidth=4, color=CLASS_COLOURS[0])
        .encode(x=x_enc, y=alt.Y("y:Q", title=f"output y = {name}(z)"))
    )
    axes = alt.Chart(pd.DataFrame({"v": [0.0]})).mark_rule(color="#888", strokeDash=[4, 4])
    dot = (
        alt.Chart(point)
        .mark_point(size=400, filled=True, color=POINT_COLOUR, opacity=1)
        .encode(x=alt.X("z:Q"), y=alt.Y("y:Q"))
    )
    guide = alt.Chart(point).mark_rule(color=POINT_COLOUR, strokeDash=[6, 4], strokeWidth=2).encode(x=alt.X("z:Q"))
    right_half = z > (lo + hi) / 2  # keep the label inside the chart
    text = (
        alt.Chart(point)
        .mark_text(
            align="right" if right_half else "left",
            dx=-16 if right_half else 16,
            dy=-18,
            fontSize=font(2),
            fontWeight="bold",
            color=POINT_COLOUR,
        )
        .encode(x=alt.X("z:Q"), y=alt.Y("y:Q"), text=alt.Text("label:N"))
    )
    return _layer(axes.encode(x=alt.X("v:Q")), axes.encode(y=alt.Y("v:Q")), line, guide, dot, text, height=height)


def decision_map(
    xs: np.ndarray,
    ys: np.ndarray,
    values: np.ndarray,
    *,
    points: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    current: tuple[float, float] | None = None,
    value_title: str = "output",
    mid: float = 0.5,
    domain: tuple[float, float] | None = None,
    title: str = "",
    size: int = 440,
) -> alt.LayerChart:
    """A heat map of ``values[i, j]`` at ``(xs[j], ys[i])`` with data points drawn on top.

    ``mid`` is the value drawn white (the decision boundary: 0.5 for probabilities, 0 for
    tanh/ReLU); below it blue (class 0), above it orange (class 1). ``domain`` fixes the colour
    range (``(0, 1)`` for probabilities); by default it spans the values, symmetric about ``mid``,
    so equal distances from the boundary get equally strong colours. ``points (m, 2)`` with
    ``labels (m,)`` 0/1 are drawn as dots of the class colours; ``current`` as a large cross.
    """
    dx, dy = (xs[1] - xs[0]) / 2, (ys[1] - ys[0]) / 2
    gx, gy = np.meshgrid(xs, ys)
    grow = 1.08  # cells overlap slightly so no hairline seams show between them
    cells = pd.DataFrame(
        {
            "x": gx.ravel() - dx * grow,
            "x2": gx.ravel() + dx * grow,
            "y": gy.ravel() - dy * grow,
            "y2": gy.ravel() + dy * grow,
            "v": np.asarray(values, dtype=float).ravel(),
        }
    )
    x_scale = alt.Scale(domain=[float(xs[0] - dx), float(xs[-1] + dx)], nice=False, clamp=True)
    y_scale = alt.Scale(domain=[float(ys[0] - dy), float(ys[-1] + dy)], nice=False, clamp=True)
    if domain is None:
        half = max(float(np.abs(cells.v - mid).max()), 1e-9)
        domain = (mid - half, mid + half)
    colour_domain = [float(domain[0]), mid, float(domain[1])]
    heat = (
        alt.Chart(cells)
        .mark_rect(opacity=1)
        .encode(
            x=alt.X("x:Q", title="input x₁", scale=x_scale),
            x2=alt.X2("x2:Q"),
            y=alt.Y("y:Q", title="input x₂", scale=y_scale),
            y2=alt.Y2("y2:Q"),
            color=alt.Color(
                "v:Q",
                title=value_title,
                scale=alt.Scale(domain=colour_domain, range=list(HEAT_COLOURS)),
                legend=alt.Legend(orient="bottom", gradientLength=size - 140, titleOrient="left", format=".2~f"),
            ),
        )
    )
    layers = [heat]
    if points is not None and labels is not None:
        dots = pd.DataFrame({"x": points[:, 0], "y": points[:, 1], "class": np.asarray(labels).astype(int).astype(str)})
        layers.append(
            alt.Chart(dots)
            .mark_circle(size=70, opacity=1, stroke="white", strokeWidth=1.2)
            .encode(
                x=alt.X("x:Q", scale=x_scale),
                y=alt.Y("y:Q", scale=y_scale),
                color=alt.Color("class:N", scale=alt.Scale(domain=["0", "1"], range=list(CLASS_COLOURS)), legend=None),
            )
        )
    if current is not None:
        here = pd.DataFrame({"x": [current[0]], "y": [current[1]]})
        layers.append(
            alt.Chart(here)
            .mark_point(shape="cross", size=500, filled=True, color="#111", stroke="white", strokeWidth=1.5)
            .encode(x=alt.X("x:Q", scale=x_scale), y=alt.Y("y:Q", scale=y_scale))
        )
    return _layer(
        *layers,
        resolve=alt.Resolve(scale=alt.ScaleResolveMap(color="independent")),
        width=size,
        height=size,
        title=title,
    )


def network_map(
    net: Network,
    points: np.ndarray,
    labels: np.ndarray,
    *,
    title: str,
    extent: float = 5.0,
    resolution: int = 31,
    size: int = 400,
) -> alt.LayerChart:
    """A trained network's P(class 1) over the input plane ``[-extent, extent]²`` with the data on top.

    What the neuron page draws for its one-neuron and two-layer networks, and its training
    animation for each step: :func:`decision_map` of :func:`cnnviz.learn.neuron.network_grid`.
    """
    return decision_map(
        *network_grid(net, extent=extent, resolution=resolution),
        points=points,
        labels=labels,
        value_title="P(class 1)",
        domain=(0.0, 1.0),
        title=title,
        size=size,
    )


def loss_curves(histories: Mapping[str, ArrayLike], *, height: int = 300) -> alt.LayerChart:
    """Training loss (mean cross-entropy) against gradient-descent step, one line per model."""
    frames = []
    for name, history in histories.items():
        h = np.asarray(history, dtype=float)
        every = max(1, int(np.ceil(len(h) / 300)))  # 300 points per line draw the same curve, faster
        steps = np.arange(0, len(h), every)
        frames.append(pd.DataFrame({"step": steps, "loss": h[steps], "model": name}))
    data = pd.concat(frames, ignore_index=True)
    chart = (
        alt.Chart(data)
        .mark_line(strokeWidth=4)
        .encode(
            x=alt.X("step:Q", title="gradient-descent step"),
            y=alt.Y("loss:Q", title="loss (cross-entropy)", scale=alt.Scale(zero=True)),
            color=alt.Color(
                "model:N",
                title=None,
                scale=alt.Scale(range=[CLASS_COLOURS[0], CLASS_COLOURS[1]]),
                legend=alt.Legend(orient="top", labelLimit=400),
            ),
        )
    )
    return _layer(chart, height=height)


def error_history(errors: Sequence[float], target: float, *, height: int = 260) -> alt.LayerChart:
    """The learner's error (target − output) at each attempt, with the zero line to aim for."""
    data = pd.DataFrame({"attempt": np.arange(1, len(errors) + 1), "error": np.asarray(errors, dtype=float)})
    zero = alt.Chart(pd.DataFrame({"e": [0.0]})).mark_rule(color="#2e7d32", strokeWidth=3).encode(y=alt.Y("e:Q"))
    line = (
        alt.Chart(data)
        .mark_line(
            point=alt.OverlayMarkDef(size=120, filled=True, color=POINT_COLOUR), strokeWidth=3, color=POINT_COLOUR
        )
        .encode(
            x=alt.X(
                "attempt:Q",
                title="attempt",
                axis=alt.Axis(tickMinStep=1, format="d"),
                scale=alt.Scale(domain=[1, max(2, len(errors))], nice=False),
            ),
            # Large type: the long title would not fit the plot's height; the metric above spells it out.
            y=alt.Y("error:Q", title="error" if scale() > 1 else f"error = {target:g} − output"),
        )
    )
    return _layer(zero, line, height=height)


def softmax_bars(
    labels: Sequence[str], logits: ArrayLike, probabilities: ArrayLike, *, height: int = 300
) -> alt.LayerChart:
    """Horizontal bars of each class's probability (0–1), labelled with the percentage and its logit."""
    data = pd.DataFrame(
        {"class": list(labels), "p": np.asarray(probabilities, dtype=float), "logit": np.asarray(logits, dtype=float)}
    )
    data["text"] = [f"{p:.1%}  (logit {z:g})" for p, z in zip(data.p, data.logit)]
    y = alt.Y("class:N", title=None, sort=list(labels), axis=alt.Axis(labelFontSize=font(2)))
    bars = (
        alt.Chart(data)
        .mark_bar(color=CLASS_COLOURS[1], height=34)
        .encode(x=alt.X("p:Q", title="probability", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")), y=y)
    )
    text = (
        alt.Chart(data)
        .mark_text(align="left", dx=8, fontSize=font(1))
        .encode(x=alt.X("p:Q"), y=y, text=alt.Text("text:N"))
    )
    return _layer(bars, text, height=height)
