"""Altair chart for the from-scratch page: two or more training runs on one chart.

The overfitting lesson puts a run without and a run with Dropout/augmentation side by side:
colour tells the runs apart, a dashed line is training and a solid line validation.
Never imports TensorFlow.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import altair as alt
import pandas as pd

from cnnviz.charts.training import _big

__all__ = ["compare_records", "compare_curves"]


def compare_records(runs: Mapping[str, Sequence[dict]]) -> list[dict]:
    """``{run label: epoch rows}`` → long records ``{run, epoch, metric, part, value}``."""
    records = []
    for label, rows in runs.items():
        for row in rows:
            for metric in ("loss", "accuracy"):
                for part, key in (("training", metric), ("validation", f"val_{metric}")):
                    if row.get(key) is not None:
                        records.append(
                            {"run": label, "epoch": row["epoch"], "metric": metric, "part": part, "value": row[key]}
                        )
    return records


def compare_curves(runs: Mapping[str, Sequence[dict]], *, width: int = 380, height: int = 260) -> alt.HConcatChart:
    """Loss and accuracy per epoch for several runs; colour = run, dashed = training, solid = validation."""
    data = pd.DataFrame(compare_records(runs), columns=["run", "epoch", "metric", "part", "value"])
    last = int(data["epoch"].max()) if len(data) else 2

    def panel(metric: str, title: str, y_scale: alt.Scale) -> alt.Chart:
        return (
            alt.Chart(title=title)
            .transform_filter(alt.datum.metric == metric)
            .mark_line(strokeWidth=3)
            .encode(
                x=alt.X(
                    "epoch:Q",
                    title="Epoch",
                    scale=alt.Scale(domain=[1, max(last, 2)], nice=False),
                    axis=alt.Axis(tickMinStep=1),
                ),
                y=alt.Y("value:Q", title=metric.capitalize(), scale=y_scale),
                color=alt.Color("run:N", title="Run", legend=alt.Legend(orient="top", direction="vertical")),
                strokeDash=alt.StrokeDash(
                    "part:N", title="Images", sort=["validation", "training"], legend=alt.Legend(orient="top")
                ),
                detail="part:N",
                tooltip=["run:N", "part:N", alt.Tooltip("epoch:Q"), alt.Tooltip("value:Q", format=".3f")],
            )
            .properties(width=width, height=height)
        )

    return _big(
        alt.hconcat(
            panel("loss", "Loss (lower is better)", alt.Scale(zero=True)),
            panel("accuracy", "Accuracy (higher is better)", alt.Scale(domain=[0, 1])),
            data=data,
        )
    )
