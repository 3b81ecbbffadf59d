"""Altair charts for the feature-map page: the network's top-k predictions.

Builders take plain names and numbers (never a model), so this module never imports
TensorFlow, and use projector-sized fonts.
"""

from __future__ import annotations

from typing import Sequence

import altair as alt

from cnnviz.charts.style import font, projector
import pandas as pd

BAR_COLOUR = "#1f5fa8"
HIGHLIGHT_COLOUR = "#d95f02"


def top_k_chart(
    predictions: Sequence[tuple[str, float]], *, highlight: str | None = None, height: int | None = None
) -> alt.LayerChart:
    """Horizontal bars of ``[(class_name, probability), ...]``, most probable on top.

    Probabilities are shown in percent on a fixed 0–100 % axis, so a confident and an
    unsure network look different at a glance. ``highlight`` colours one class (e.g. the
    class Grad-CAM explains) in orange.
    """
    data = pd.DataFrame(
        {
            "class": [name for name, _ in predictions],
            "probability": [float(p) for _, p in predictions],
            "rank": list(range(1, len(predictions) + 1)),
        }
    )
    data["label"] = [f"{100 * p:.1f} %" for p in data["probability"]]
    data["chosen"] = data["class"] == highlight
    y = alt.Y(
        "class:N", sort=alt.EncodingSortField("rank", order="ascending"), title=None, axis=alt.Axis(labelLimit=360)
    )
    x = alt.X("probability:Q", title="probability", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%"))
    colour = alt.condition(alt.datum.chosen, alt.value(HIGHLIGHT_COLOUR), alt.value(BAR_COLOUR))
    base = alt.Chart(data).encode(y=y, x=x, tooltip=["class", alt.Tooltip("probability:Q", format=".1%")])
    bars = base.mark_bar(size=28).encode(color=colour)
    text = base.mark_text(align="left", dx=6, fontSize=font()).encode(text="label:N")
    chart = (bars + text).properties(height=height or 48 * max(len(data), 1) + 40)
    return projector(chart).configure_view(strokeWidth=0)
