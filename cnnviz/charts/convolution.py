"""Altair charts for the convolution page: grids of numbers you can read from the back row.

Colours are computed here (not by Vega scales) so that each panel gets the scale its
numbers need: pixels in greys (black 0 … white 255), kernel weights and products in
blue (negative) / white (0) / red (positive), symmetric around 0.
"""

from __future__ import annotations

from functools import cache
from typing import Any, SupportsFloat

import altair as alt
import numpy as np
import pandas as pd
import pyarrow as pa

from cnnviz.charts.style import scale

CHANNEL_NAMES = {1: ["gray"], 3: ["red", "green", "blue"]}


def number(value: SupportsFloat) -> str:
    """Short, exact-looking label: integers without decimals, others with 4 significant digits."""
    value = float(value)
    if abs(value) < 5e-5:
        return "0"
    if value == round(value) and abs(value) < 1e6:
        return f"{value:.0f}"
    return f"{value:.4g}"


# Plain Python on single numbers: a 7 × 7 colour step chart colours 441 cells on every click.
def _grey(value: float) -> tuple[str, str]:
    level = min(255, max(0, round(value)))
    return f"#{level:02x}{level:02x}{level:02x}", "#000000" if level > 110 else "#ffffff"


def _diverging(value: float, limit: float) -> tuple[str, str]:
    t = 0.0 if limit == 0 else min(1.0, max(-1.0, value / limit))
    end = (178, 24, 43) if t > 0 else (33, 102, 172)
    rgb = [round(255 + (e - 255) * abs(t) * 0.9) for e in end]
    return "#" + "".join(f"{c:02x}" for c in rgb), "#ffffff" if abs(t) > 0.6 else "#000000"


def step_chart(patch: np.ndarray, kernel: np.ndarray, products: np.ndarray, *, cell: int = 58) -> alt.FacetChart:
    """Input patch × kernel = products, as three grids of numbers side by side.

    ``patch``, ``kernel`` and ``products`` are ``(kh, kw)`` or ``(kh, kw, C)``; a 2-D kernel
    next to a colour patch is shown in every channel's row. One row of grids per channel.
    """
    data, names = _step_data(patch, kernel, products)
    chart = _step_template(*np.shape(patch)[:2], names, cell, scale()).copy(deep=False)
    chart.data = data.to_pandas()  # the layout is cached; only the numbers change between reruns
    return chart


def step_spec(patch: np.ndarray, kernel: np.ndarray, products: np.ndarray, *, cell: int = 58) -> dict[str, Any]:
    """:func:`step_chart` as a Vega-Lite spec (``st.vega_lite_chart``), for a page that redraws it on every click.

    The layout is compiled once (per size, channels and text scale); each call only puts the new
    numbers in, which costs about a tenth of Altair's ``to_dict`` (its checks, copies and data handling).

    >>> spec = step_spec(np.ones((3, 3)), np.eye(3), np.eye(3))
    >>> spec["data"]["values"].shape, "facet" in spec  # an Arrow table of 27 cells
    ((27, 7), True)
    """
    data, names = _step_data(patch, kernel, products)
    return _with_values(_step_compiled(*np.shape(patch)[:2], names, cell, scale()), data)


def _step_data(patch: np.ndarray, kernel: np.ndarray, products: np.ndarray) -> tuple[pa.Table, tuple[str, ...]]:
    patch = np.atleast_3d(np.asarray(patch, np.float32))
    products = np.atleast_3d(np.asarray(products, np.float32))
    kernel = np.asarray(kernel, np.float32)
    kernel = np.repeat(kernel[..., None], patch.shape[2], axis=2) if kernel.ndim == 2 else kernel
    channels = patch.shape[2]
    names = CHANNEL_NAMES.get(channels, [f"channel {c}" for c in range(channels)])
    k_lim = float(np.abs(kernel).max())
    p_lim = float(np.abs(products).max())
    columns: dict[str, list] = {name: [] for name in ("channel", "panel", "row", "col", "label", "fill", "ink")}
    for c in range(channels):
        for panel, grid in (("input patch", patch), ("× kernel", kernel), ("= products", products)):
            for (r, q), v in np.ndenumerate(grid[..., c].astype(np.float64)):
                if panel == "input patch":
                    fill, ink = _grey(v)
                else:
                    fill, ink = _diverging(v, k_lim if panel == "× kernel" else p_lim)
                for name, item in zip(columns, (names[c], panel, r, q, number(v), fill, ink)):
                    columns[name].append(item)
    return pa.table(columns), tuple(names)


def _with_values(compiled: dict[str, Any], data: pa.Table) -> dict[str, Any]:
    # Streamlit takes a top-level ``data.values`` table out of the spec and sends it as Arrow
    # (an Arrow table as it is: no pandas on the way).
    return {**compiled, "data": {"values": data}}


def _compiled(chart: alt.TopLevelMixin) -> dict[str, Any]:
    """A data-less chart's Vega-Lite spec, checked against the schema once, without its empty dataset."""
    spec = chart.to_dict()
    spec.pop("datasets", None)
    spec.pop("data", None)
    return spec


@cache
def _step_compiled(kh: int, kw: int, names: tuple[str, ...], cell: int, k: float) -> dict[str, Any]:
    return _compiled(_step_template(kh, kw, names, cell, k))


@cache
def _step_template(kh: int, kw: int, names: tuple[str, ...], cell: int, k: float) -> alt.FacetChart:
    """The step chart without data. Building Altair objects costs tens of ms, so once per layout (and text scale)."""
    cell = round(cell * k)  # larger numbers need larger cells
    size = cell if max(kh, kw) <= 3 else int(cell * 0.8)
    font = round((18 if max(kh, kw) <= 3 else 14) * k)
    base = alt.Chart().encode(
        x=alt.X("col:O", axis=None),
        y=alt.Y("row:O", axis=None),
    )
    cells = base.mark_rect(stroke="#555555", strokeWidth=1).encode(
        color=alt.Color("fill:N", scale=None),
        tooltip=["channel:N", "panel:N", "row:O", "col:O", "label:N"],
    )
    labels = base.mark_text(fontSize=font, fontWeight="bold").encode(
        text="label:N", color=alt.Color("ink:N", scale=None)
    )
    column = alt.Column(
        "panel:N",
        sort=["input patch", "× kernel", "= products"],
        header=alt.Header(title=None, labelFontSize=round(18 * k), labelFontWeight="bold"),
    )
    row = (
        alt.Row(
            "channel:N",
            sort=list(names),
            header=alt.Header(title=None, labelFontSize=16, labelAngle=0, labelAlign="left"),
        )
        if len(names) > 1
        else alt.Undefined
    )
    return (
        alt.layer(cells, labels, data=pd.DataFrame())
        .properties(width=size * kw, height=size * kh)
        .facet(column=column, row=row, spacing=24)
        .configure_view(stroke=None)
    )


def kernel_chart(kernel: np.ndarray, *, cell: int = 58) -> alt.LayerChart:
    """A ``(kh, kw)`` kernel as a grid of its weights (blue negative, white 0, red positive)."""
    kernel = np.asarray(kernel, np.float32)
    chart = _kernel_template(*kernel.shape, cell, scale()).copy(deep=False)
    chart.data = _kernel_data(kernel).to_pandas()
    return chart


def kernel_spec(kernel: np.ndarray, *, cell: int = 58) -> dict[str, Any]:
    """:func:`kernel_chart` as a Vega-Lite spec, its layout compiled once (see :func:`step_spec`).

    >>> kernel_spec(np.eye(3))["data"]["values"]["label"].to_pylist()
    ['1', '0', '0', '0', '1', '0', '0', '0', '1']
    """
    kernel = np.asarray(kernel, np.float32)
    return _with_values(_kernel_compiled(*kernel.shape, cell, scale()), _kernel_data(kernel))


def _kernel_data(kernel: np.ndarray) -> pa.Table:
    limit = float(np.abs(kernel).max())
    cells = [(r, q, number(v), *_diverging(v, limit)) for (r, q), v in np.ndenumerate(kernel.astype(np.float64))]
    return pa.table(dict(zip(("row", "col", "label", "fill", "ink"), map(list, zip(*cells)))))


@cache
def _kernel_compiled(kh: int, kw: int, cell: int, k: float) -> dict[str, Any]:
    return _compiled(_kernel_template(kh, kw, cell, k))


@cache
def _kernel_template(kh: int, kw: int, cell: int, k: float) -> alt.LayerChart:
    cell = round(cell * k)  # larger numbers need larger cells
    size = cell if max(kh, kw) <= 3 else int(cell * 0.8)
    base = alt.Chart().encode(x=alt.X("col:O", axis=None), y=alt.Y("row:O", axis=None))
    return (
        alt.layer(
            base.mark_rect(stroke="#555555").encode(color=alt.Color("fill:N", scale=None)),
            base.mark_text(fontSize=round((18 if max(kh, kw) <= 3 else 14) * k), fontWeight="bold").encode(
                text="label:N", color=alt.Color("ink:N", scale=None)
            ),
            data=pd.DataFrame(),
        )
        .properties(width=size * kw, height=size * kh)
        .configure_view(stroke=None)
    )
