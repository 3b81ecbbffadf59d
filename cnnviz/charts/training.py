"""Altair charts for the trainer: learning curves, confusion matrix, probability bars.

Projector-sized fonts; training is always blue and validation orange, so the two curves
can be told apart from the back of a lecture hall. Never imports TensorFlow.
"""

from __future__ import annotations

from typing import Sequence

import altair as alt
import numpy as np
import pandas as pd

from cnnviz.charts.style import BLUE, ORANGE, Chart, font, projector

__all__ = ["training_curves", "with_rows", "curve_records", "confusion_matrix", "probability_bars"]

PART_COLOURS = {"training": BLUE, "validation": ORANGE}


def _big(chart: Chart) -> Chart:
    return projector(chart, pad=True)


def curve_records(rows: Sequence[dict]) -> list[dict]:
    """History rows → long records ``{epoch, metric, part, value}`` (the curves' one dataset)."""
    records = []
    for row in rows:
        for metric in ("loss", "accuracy"):
            records.append({"epoch": row["epoch"], "metric": metric, "part": "training", "value": row[metric]})
            if row.get(f"val_{metric}") is not None:
                records.append(
                    {"epoch": row["epoch"], "metric": metric, "part": "validation", "value": row[f"val_{metric}"]}
                )
    return records


def training_curves(
    rows: Sequence[dict], *, epochs: int | None = None, width: int = 380, height: int = 260
) -> alt.HConcatChart:
    """Loss and accuracy per epoch, training vs validation, side by side.

    ``rows`` are :class:`cnnviz.train.transfer.History` rows (``epoch``, ``loss``, ``accuracy``,
    ``val_loss``, ``val_accuracy``). The x axis spans ``epochs`` so a live chart does not
    rescale every epoch. Validation curves rising while training curves keep falling is
    overfitting. Both panels read one dataset, so :func:`with_rows` can refresh a built
    spec every epoch without rebuilding the chart.
    """
    last = max([r["epoch"] for r in rows], default=1)
    x_scale = alt.Scale(domain=[1, max(epochs or last, 2)], nice=False)
    colour = alt.Color(
        "part:N",
        title="Images",
        legend=alt.Legend(orient="top"),
        scale=alt.Scale(domain=list(PART_COLOURS), range=list(PART_COLOURS.values())),
    )

    def panel(metric: str, title: str, y_title: str, y_scale: alt.Scale) -> alt.Chart:
        return (
            alt.Chart(title=title)
            .transform_filter(alt.datum.metric == metric)
            .mark_line(point=(epochs or last) <= 30, strokeWidth=3)
            .encode(
                x=alt.X("epoch:Q", title="Epoch", scale=x_scale, axis=alt.Axis(tickMinStep=1)),
                y=alt.Y("value:Q", title=y_title, scale=y_scale),
                color=colour,
                tooltip=[alt.Tooltip("epoch:Q"), alt.Tooltip("part:N"), alt.Tooltip("value:Q", format=".3f")],
            )
            .properties(width=width, height=height)
        )

    data = pd.DataFrame(curve_records(rows), columns=["epoch", "metric", "part", "value"])
    chart = alt.hconcat(
        panel("loss", "Loss (lower is better)", "Cross-entropy loss", alt.Scale(zero=True)),
        panel("accuracy", "Accuracy (higher is better)", "Share correct", alt.Scale(domain=[0, 1])),
        data=data,
    )
    return _big(chart)


def with_rows(spec: dict, rows: Sequence[dict]) -> dict:
    """A copy of ``training_curves(...).to_dict()`` showing ``rows`` instead (a live chart's per-epoch update).

    Swapping the data costs microseconds; rebuilding the Altair chart costs ~30 ms per epoch.
    """
    spec = dict(spec)
    (name,) = spec["datasets"]
    spec["datasets"] = {name: curve_records(rows)}
    return spec


def confusion_matrix(matrix: np.ndarray, class_names: Sequence[str], *, size: int = 90) -> alt.LayerChart:
    """Heat map of ``matrix[true, predicted]`` counts, numbers written in every cell.

    Everything on the diagonal is right; a bright cell off the diagonal names the two
    classes the model mixes up.
    """
    matrix = np.asarray(matrix)
    totals = matrix.sum(axis=1, keepdims=True)
    records = [
        {
            "true class": class_names[i],
            "predicted class": class_names[j],
            "images": int(matrix[i, j]),
            "share of the true class": float(matrix[i, j] / totals[i, 0]) if totals[i, 0] else 0.0,
        }
        for i in range(len(class_names))
        for j in range(len(class_names))
    ]
    data = pd.DataFrame(records)
    order = list(class_names)
    side = max(240, size * len(order))
    base = alt.Chart(data, title="Confusion matrix (rows: true class, columns: prediction)").encode(
        x=alt.X("predicted class:N", sort=order, title="Predicted class", axis=alt.Axis(labelAngle=-30, orient="top")),
        y=alt.Y("true class:N", sort=order, title="True class"),
    )
    cells = base.mark_rect(stroke="white", strokeWidth=2).encode(
        color=alt.Color(
            "share of the true class:Q",
            title="Share of row",
            legend=alt.Legend(format="%", gradientLength=max(120, side - 40)),
            scale=alt.Scale(scheme="blues", domain=[0, 1]),
        ),
        tooltip=["true class", "predicted class", "images", alt.Tooltip("share of the true class:Q", format=".0%")],
    )
    numbers = base.mark_text(fontSize=font(6), fontWeight="bold").encode(
        text="images:Q",
        color=alt.condition("datum['share of the true class'] > 0.5", alt.value("white"), alt.value("black")),
    )
    return _big((cells + numbers).properties(width=side, height=side))


def probability_bars(
    probabilities: Sequence[float],
    class_names: Sequence[str],
    *,
    title: str = "How sure is the model?",
    width: int = 380,
) -> alt.LayerChart:
    """One horizontal bar per class, 0–100 %, the predicted class highlighted."""
    probs = np.asarray(probabilities, dtype=float).reshape(-1)
    best = int(np.argmax(probs)) if len(probs) else -1
    data = pd.DataFrame(
        {
            "class": list(class_names),
            "probability": probs,
            "predicted": ["predicted" if i == best else "other" for i in range(len(probs))],
        }
    )
    bars = (
        alt.Chart(data, title=title)
        .mark_bar(size=28)
        .encode(
            y=alt.Y("class:N", sort=list(class_names), title=None),
            x=alt.X("probability:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%"), title="Probability"),
            color=alt.Color(
                "predicted:N", scale=alt.Scale(domain=["predicted", "other"], range=["#1f5fa8", "#b0b0b0"]), legend=None
            ),
            tooltip=["class", alt.Tooltip("probability:Q", format=".1%")],
        )
    )
    text = bars.mark_text(align="left", dx=6, fontSize=font()).encode(
        text=alt.Text("probability:Q", format=".1%"), color=alt.value("black")
    )
    return _big((bars + text).properties(width=width, height=max(120, 48 * len(probs))))
