"""One look for every chart: projector-sized fonts and the app's colours.

A lecture hall reads charts from 20 m away, so every chart uses :data:`FONT` (and larger
for titles) and the same colours for the same meaning on every page: training blue,
validation orange; a set keeps its colour from chart to chart. Never imports TensorFlow.
"""

from __future__ import annotations

from typing import Any, TypeVar

import altair as alt

__all__ = ["FONT", "BLUE", "ORANGE", "CONFIG", "projector"]

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


def projector(chart: Chart, *, pad: bool = False) -> Chart:
    """``chart`` with projector-sized fonts (and, with ``pad``, titles and legends added around the plot area).

    ``pad``: width/height are the plot area; without it Streamlit squeezes axes and legends
    into the given size, shrinking the cells of a confusion matrix.
    """
    if pad:
        chart = chart.properties(autosize=alt.AutoSizeParams(type="pad", contains="padding"))
    return (
        chart.configure_axis(**CONFIG["axis"])
        .configure_legend(**CONFIG["legend"])
        .configure_title(**CONFIG["title"])
        .configure_header(**CONFIG["header"])
    )
