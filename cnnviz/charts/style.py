"""One look for every chart: projector-sized fonts and the app's colours.

A lecture hall reads charts from 20 m away, so every chart uses :data:`FONT` (and larger
for titles) and the same colours for the same meaning on every page: training blue,
validation orange; a set keeps its colour from chart to chart. Never imports TensorFlow.

Presenter mode makes chart text larger still: the UI says where the scale comes from once
(:func:`use_scale`; ``ui.present`` answers 1.5 while presenting), every builder asks :func:`config`
and :func:`font` when it builds a chart, so this library stays free of Streamlit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import altair as alt

__all__ = ["FONT", "BLUE", "ORANGE", "CONFIG", "PRESENTER_SCALE", "use_scale", "scale", "font", "config", "projector"]

Chart = TypeVar("Chart", bound=alt.TopLevelMixin)

#: Axis and legend labels, in pixels; titles are 2–4 px larger.
FONT = 16
BLUE, ORANGE = "#1f5fa8", "#d95f02"

#: The same style as a Vega-Lite ``config`` block, for charts built as plain specs or layered once.
CONFIG: dict[str, dict[str, Any]] = {
    "axis": {"labelFontSize": FONT, "titleFontSize": FONT + 2, "labelLimit": 320},
    "legend": {"labelFontSize": FONT, "titleFontSize": FONT, "labelLimit": 320},
    "title": {"fontSize": FONT + 4, "anchor": "start"},
    "header": {"labelFontSize": FONT + 2, "titleFontSize": FONT},
}


#: Chart text in presenter mode: 16 px labels become 24 px, as the page's body text.
PRESENTER_SCALE = 1.5


def _one() -> float:
    return 1.0


_scale_source: Callable[[], float] = _one


def use_scale(source: Callable[[], float] | None) -> None:
    """Where the scale of chart text comes from from now on (``None``: always 1)."""
    global _scale_source
    _scale_source = source or _one


def scale() -> float:
    """The scale of chart text for the chart being built now (1 outside presenter mode)."""
    try:
        return float(_scale_source())
    except Exception:  # no page running (a background job, a report): plain size
        return 1.0


def font(delta: int = 0) -> int:
    """``FONT + delta`` pixels, scaled for presenter mode."""
    return round((FONT + delta) * scale())


def config() -> dict[str, dict[str, Any]]:
    """:data:`CONFIG` with every font size scaled for presenter mode."""
    k = scale()
    style = {
        part: {key: round(value * k) if key.endswith("FontSize") else value for key, value in block.items()}
        for part, block in CONFIG.items()
    }
    if k > 1:  # black text for a hall, as the page's (Vega's default grey fades on a projector)
        for part in ("axis", "legend"):
            style[part] = {**style[part], "labelColor": "#000", "titleColor": "#000"}
    return style


def projector(chart: Chart, *, pad: bool = False) -> Chart:
    """``chart`` with projector-sized fonts (and, with ``pad``, titles and legends added around the plot area).

    ``pad``: width/height are the plot area; without it Streamlit squeezes axes and legends
    into the given size, shrinking the cells of a confusion matrix.
    """
    if pad:
        chart = chart.properties(autosize=alt.AutoSizeParams(type="pad", contains="padding"))
    style = config()
    return (
        chart.configure_axis(**style["axis"])
        .configure_legend(**style["legend"])
        .configure_title(**style["title"])
        .configure_header(**style["header"])
    )
