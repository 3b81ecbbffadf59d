"""Altair charts for the audit page and its report.

Every builder takes plain tables (pandas) or the dicts of :func:`cnnviz.audit.measures.evaluate`
and returns an Altair chart with projector-sized fonts. Sets are always coloured the
same way (reference first), so a seminar can follow one set from chart to chart.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import altair as alt
import numpy as np
import pandas as pd

from cnnviz.charts.style import Chart, font, projector

SET_COLOURS = ("#1f5fa8", "#d95f02", "#1b9e77", "#7570b3", "#e7298a", "#66a61e", "#a6761d", "#666666")
SCORE_COLOURS = ("#9e9e9e", "#bdbdbd", "#1f5fa8", "#0d3b66")


def _big(chart: Chart) -> Chart:
    return projector(chart)


def _set_scale(sets: Sequence[str]) -> alt.Scale:
    return alt.Scale(domain=list(sets), range=[SET_COLOURS[i % len(SET_COLOURS)] for i in range(len(sets))])


def label_distribution(
    table: pd.DataFrame, sets: Sequence[str], *, top: int = 8, height_per_bar: int = 14
) -> alt.Chart:
    """Share of each set's images given each top class (the ``top`` most frequent classes overall).

    ``table`` has one row per image with columns ``set`` and ``top_class``. Bars are grouped
    per class, one colour per set: does the abstract set pile onto one category?
    """
    counts = table.groupby(["set", "top_class"]).size().rename("images").reset_index()
    counts["share"] = counts["images"] / counts.groupby("set")["images"].transform("sum")
    keep = counts.groupby("top_class")["share"].max().nlargest(top).index
    counts = counts[counts["top_class"].isin(keep)]
    order = list(counts.groupby("top_class")["share"].max().sort_values(ascending=False).index)
    chart = (
        alt.Chart(counts, title="Which category does each set get?")
        .mark_bar()
        .encode(
            y=alt.Y("top_class:N", sort=order, title="Top class"),
            yOffset=alt.YOffset("set:N", sort=list(sets)),
            x=alt.X(
                "share:Q", axis=alt.Axis(format="%"), title="Share of the set's images", scale=alt.Scale(domain=[0, 1])
            ),
            color=alt.Color("set:N", scale=_set_scale(sets), title="Set"),
            tooltip=["set", "top_class", "images", alt.Tooltip("share:Q", format=".0%")],
        )
        .properties(width=760, height=max(200, len(order) * len(sets) * height_per_bar))
    )
    return _big(chart)


def confidence_histogram(
    table: pd.DataFrame, sets: Sequence[str], *, threshold: float | None = None, bins: int = 10
) -> alt.LayerChart:
    """Share of each set's images per confidence bin (maximum softmax, 0–1), threshold as a red rule.

    If the probe sets' bars sit as far right as the reference set's, confidence cannot
    tell them apart.
    """
    edges = np.linspace(0, 1, bins + 1)
    rows = []
    for name in sets:
        conf = table.loc[table["set"] == name, "confidence"].to_numpy()
        counts, _ = np.histogram(conf, bins=edges)
        total = max(len(conf), 1)
        rows += [
            {"set": name, "from": lo, "to": hi, "bin": f"{lo:.1f}–{hi:.1f}", "share": c / total, "images": int(c)}
            for lo, hi, c in zip(edges[:-1], edges[1:], counts)
        ]
    data = pd.DataFrame(rows)
    bars = (
        alt.Chart(data, title="How confident is the model on each set?")
        .mark_bar()
        .encode(
            x=alt.X("bin:N", sort=None, title="Confidence (maximum softmax probability)", axis=alt.Axis(labelAngle=0)),
            xOffset=alt.XOffset("set:N", sort=list(sets)),
            y=alt.Y("share:Q", axis=alt.Axis(format="%"), title="Share of the set's images"),
            color=alt.Color("set:N", scale=_set_scale(sets), title="Set"),
            tooltip=["set", "bin", "images", alt.Tooltip("share:Q", format=".0%")],
        )
        .properties(width=900, height=340)
    )
    layers = [bars]
    if threshold is not None:
        position = pd.DataFrame(
            {
                "bin": [
                    f"{lo:.1f}–{hi:.1f}"
                    for lo, hi in zip(edges[:-1], edges[1:])
                    if lo <= threshold < hi or (hi == 1 and threshold >= 1)
                ][:1]
            }
        )
        layers.append(
            alt.Chart(position)
            .mark_rule(color="#c62828", strokeWidth=3, strokeDash=[6, 4])
            .encode(x=alt.X("bin:N", sort=None))
        )
    return _big(alt.LayerChart(layer=[*layers]))


def auroc_comparison(aurocs: Mapping[str, Mapping[str, float]], score_names: Sequence[str]) -> alt.LayerChart:
    """AUROC of each out-of-distribution score for each probe set (1 = perfect, 0.5 = coin toss).

    ``aurocs[probe_set][score]`` as from :func:`cnnviz.audit.measures.evaluate`.
    """
    data = pd.DataFrame(
        [
            {"probe set": probe, "score": score, "AUROC": value}
            for probe, values in aurocs.items()
            for score, value in values.items()
            if value == value
        ]
    )  # drop nan
    bars = (
        alt.Chart(data, title="Which score tells probes from references? (AUROC)")
        .mark_bar()
        .encode(
            y=alt.Y("probe set:N", title="Probe set", sort=list(aurocs)),
            yOffset=alt.YOffset("score:N", sort=list(score_names)),
            x=alt.X("AUROC:Q", scale=alt.Scale(domain=[0, 1]), title="AUROC (0.5 = no better than chance)"),
            color=alt.Color(
                "score:N",
                sort=list(score_names),
                title="Score",
                scale=alt.Scale(domain=list(score_names), range=list(SCORE_COLOURS[: len(score_names)])),
            ),
            tooltip=["probe set", "score", alt.Tooltip("AUROC:Q", format=".2f")],
        )
        .properties(width=760, height=max(240, 40 * len(data)))
    )
    labels = bars.mark_text(align="left", dx=4, fontSize=font(-2)).encode(
        text=alt.Text("AUROC:Q", format=".2f"), color=alt.value("#222")
    )
    chance = (
        alt.Chart(pd.DataFrame({"AUROC": [0.5]}))
        .mark_rule(color="#c62828", strokeDash=[6, 4], strokeWidth=2)
        .encode(x="AUROC:Q")
    )
    return _big(alt.LayerChart(layer=[bars, labels, chance]))


def coverage_accuracy(curve: Mapping[str, np.ndarray], threshold: float) -> alt.LayerChart:
    """Accuracy on the answered reference images against the share answered, one point per threshold.

    Raising the abstain threshold moves left along the curve: fewer answers, (usually)
    more of them right. The big dot is the current threshold.
    """
    data = pd.DataFrame({k: np.asarray(v, dtype=float) for k, v in curve.items()}).dropna()
    line = (
        alt.Chart(data, title="Abstaining: answer less, be right more often?")
        .mark_line(point=True, strokeWidth=3, color=SET_COLOURS[0])
        .encode(
            x=alt.X(
                "coverage:Q",
                axis=alt.Axis(format="%"),
                title="Coverage (share of reference images answered)",
                scale=alt.Scale(domain=[0, 1]),
            ),
            y=alt.Y(
                "accuracy:Q",
                axis=alt.Axis(format="%"),
                title="Accuracy on answered images",
                scale=alt.Scale(domain=[0, 1]),
            ),
            tooltip=[
                alt.Tooltip("threshold:Q", format=".2f"),
                alt.Tooltip("coverage:Q", format=".0%"),
                alt.Tooltip("accuracy:Q", format=".0%"),
            ],
        )
        .properties(width=560, height=380)
    )
    near = data.iloc[[int(np.argmin(np.abs(data["threshold"].to_numpy() - threshold)))]] if len(data) else data
    dot = alt.Chart(near).mark_point(size=400, filled=True, color="#c62828").encode(x="coverage:Q", y="accuracy:Q")
    return _big(alt.LayerChart(layer=[line, dot]))


def share_caught(caught: Mapping[str, float], sets: Sequence[str], threshold: float) -> alt.Chart:
    """Share of each set the model abstains on at ``threshold`` (says "unsure").

    Ideally high for probe sets and low for the reference set.
    """
    data = pd.DataFrame({"set": list(caught), "share": [caught[s] for s in caught]})
    chart = (
        alt.Chart(data, title=f"Share where the model says “unsure” (confidence < {threshold:.2f})")
        .mark_bar()
        .encode(
            y=alt.Y("set:N", sort=list(sets), title="Set"),
            x=alt.X("share:Q", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1]), title="Share abstained"),
            color=alt.Color("set:N", scale=_set_scale(sets), legend=None),
            tooltip=["set", alt.Tooltip("share:Q", format=".0%")],
        )
        .properties(width=560, height=max(240, 48 * len(data)))
    )
    return _big(chart)


def reliability_diagram(bins: Mapping[str, np.ndarray]) -> alt.LayerChart:
    """Accuracy per confidence bin against the diagonal of perfect calibration.

    Bars below the diagonal: the model is over-confident there.
    """
    data = pd.DataFrame({k: np.asarray(v, dtype=float) for k, v in bins.items()})
    data["middle"] = (data["lower"] + data["upper"]) / 2
    data = data[data["count"] > 0]
    bars = (
        alt.Chart(data, title="Calibration: is 80 % confident right 80 % of the time?")
        .mark_bar(color=SET_COLOURS[0], opacity=0.8)
        .encode(
            x=alt.X("lower:Q", scale=alt.Scale(domain=[0, 1]), title="Confidence", axis=alt.Axis(format="%")),
            x2="upper:Q",
            y=alt.Y(
                "accuracy:Q", scale=alt.Scale(domain=[0, 1]), title="Accuracy in the bin", axis=alt.Axis(format="%")
            ),
            tooltip=[
                alt.Tooltip("lower:Q", format=".1f"),
                alt.Tooltip("upper:Q", format=".1f"),
                "count:Q",
                alt.Tooltip("confidence:Q", format=".2f"),
                alt.Tooltip("accuracy:Q", format=".2f"),
            ],
        )
        .properties(width=520, height=380)
    )
    diagonal = (
        alt.Chart(pd.DataFrame({"x": [0.0, 1.0], "y": [0.0, 1.0]}))
        .mark_line(color="#c62828", strokeDash=[6, 4], strokeWidth=2)
        .encode(x="x:Q", y="y:Q")
    )
    return _big(alt.LayerChart(layer=[bars, diagonal]))


def per_class_accuracy(accuracy: np.ndarray, class_names: Sequence[str]) -> alt.Chart:
    """Share of each true class's reference images the model got right (classes without images left out)."""
    data = pd.DataFrame({"class": list(class_names), "accuracy": np.asarray(accuracy, dtype=float)}).dropna()
    chart = (
        alt.Chart(data, title="Accuracy per class (reference set)")
        .mark_bar(color=SET_COLOURS[0])
        .encode(
            y=alt.Y("class:N", sort=list(class_names), title="True class"),
            x=alt.X("accuracy:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%"), title="Right answers"),
            tooltip=["class", alt.Tooltip("accuracy:Q", format=".0%")],
        )
        .properties(width=560, height=max(240, 36 * len(data)))
    )
    return _big(chart)


def confusion_matrix(matrix: np.ndarray, class_names: Sequence[str]) -> alt.LayerChart:
    """Counts of true class (rows) against predicted class (columns); the diagonal is right."""
    n = len(class_names)
    data = pd.DataFrame(
        [
            {"true": class_names[i], "predicted": class_names[j], "images": int(matrix[i, j])}
            for i in range(n)
            for j in range(n)
        ]
    )
    base = alt.Chart(data, title="Confusion matrix (reference set)").encode(
        x=alt.X("predicted:N", sort=list(class_names), title="Predicted class", axis=alt.Axis(labelAngle=-30)),
        y=alt.Y("true:N", sort=list(class_names), title="True class"),
    )
    size = max(240, min(640, 64 * n))
    cells = (
        base.mark_rect()
        .encode(
            color=alt.Color("images:Q", scale=alt.Scale(scheme="blues"), title="Images"),
            tooltip=["true", "predicted", "images"],
        )
        .properties(width=size, height=size)
    )
    text = base.mark_text(fontSize=font()).encode(
        text="images:Q",
        color=alt.condition(alt.datum.images > matrix.max() / 2, alt.value("white"), alt.value("black")),
    )
    return _big(alt.LayerChart(layer=[cells, text]))


def transformation_effect(rows: pd.DataFrame) -> alt.LayerChart:
    """Confidence of the top class for each transformation of one image, labelled with that class.

    ``rows``: columns ``transformation``, ``top_class``, ``confidence``, ``changed``
    (top class differs from the original's). Orange bars: the label changed although
    only the style did.
    """
    data = rows.assign(outcome=np.where(rows["changed"], "label changed", "same label"))
    order = list(rows["transformation"])
    bars = (
        alt.Chart(data, title="Does the label change when only the style changes?")
        .mark_bar()
        .encode(
            y=alt.Y("transformation:N", sort=order, title=None),
            x=alt.X(
                "confidence:Q",
                scale=alt.Scale(domain=[0, 1.3]),
                axis=alt.Axis(format="%", values=[0, 0.25, 0.5, 0.75, 1.0]),
                title="Confidence in the top class",
            ),
            color=alt.Color(
                "outcome:N",
                scale=alt.Scale(domain=["same label", "label changed"], range=[SET_COLOURS[0], SET_COLOURS[1]]),
                title=None,
            ),
            tooltip=["transformation", "top_class", alt.Tooltip("confidence:Q", format=".0%")],
        )
        .properties(width=760, height=max(200, 34 * len(data)))
    )
    labels = bars.mark_text(align="left", dx=6, fontSize=font(-2)).encode(text="top_class:N", color=alt.value("#222"))
    return _big(alt.LayerChart(layer=[bars, labels]))


def audit_charts(run: Mapping, table: pd.DataFrame, score_names: Sequence[str]) -> dict[str, tuple]:
    """Every chart of a finished audit with the one sentence that says what to look at.

    ``{heading: (chart, sentence)}``, in reading order; shared by the page and the report.
    """
    evaluation = run["evaluation"]
    sets = list(run["sets"])
    threshold = evaluation["threshold"]
    charts: dict[str, tuple] = {
        "Label distribution per set": (
            label_distribution(table, sets),
            "Look for probe sets piling onto one or two categories: the model must choose one of its "
            "classes for every picture, whatever the picture is.",
        ),
        "Confidence per set": (
            confidence_histogram(table, sets, threshold=threshold),
            "If the probe sets' bars sit as far to the right as the reference set's, the model is as sure "
            "about things it was never meant for as about its own domain; the dashed line is the abstain threshold.",
        ),
    }
    if evaluation["auroc"]:
        charts["Telling probes from references (AUROC)"] = (
            auroc_comparison(evaluation["auroc"], score_names),
            "Compare the grey bars (confidence-based scores) with the blue ones (distances in the network's "
            "features): 0.5 means the score cannot tell this probe set from the reference set, 1.0 that it always "
            "scores the probe images higher; below 0.5 it ranks them in reverse (the probes look *more* typical). "
            "How well a score separates the two is its distance from 0.5.",
        )
    charts["Share the model abstains on"] = (
        share_caught(evaluation["caught"], sets, threshold),
        "At this threshold the model would say “unsure” for these shares: ideally high for probe sets and low "
        "for the reference set.",
    )
    if "coverage" in evaluation:
        charts["Coverage against accuracy"] = (
            coverage_accuracy(evaluation["coverage"], threshold),
            "Moving left, the model answers fewer reference images; the curve shows whether the answers it still "
            "gives get more accurate. The red dot is the current threshold.",
        )
        charts["Reliability diagram"] = (
            reliability_diagram(evaluation["reliability"]),
            f"Bars below the dashed diagonal mean over-confidence in that range; the expected calibration error "
            f"is {evaluation['ece']:.3f} (0 is perfectly calibrated).",
        )
        per_class = np.asarray(evaluation["per_class"], dtype=float)
        if 0 < np.isfinite(per_class).sum() <= 30:
            charts["Accuracy per class"] = (
                per_class_accuracy(per_class, run["class_names"]),
                "Short bars are the classes the model gets wrong most often: are they the rarer ones in the training images?",
            )
        # Only classes that occur (a 1000 × 1000 ImageNet matrix would be unreadable).
        matrix = np.asarray(evaluation["confusion"])
        used = np.flatnonzero(matrix.sum(axis=0) + matrix.sum(axis=1))
        if 0 < len(used) <= 30:
            charts["Confusion matrix"] = (
                confusion_matrix(matrix[np.ix_(used, used)], [run["class_names"][i] for i in used]),
                "Off-diagonal cells are mistakes: which true classes does the model mix up?",
            )
    return charts
