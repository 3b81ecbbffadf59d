"""The exported report carries the numbers, escapes every visitor-given name, and ends with prompts."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from cnnviz.audit import measures as audit
from cnnviz.audit import probes
from cnnviz.audit import report
from cnnviz.charts import audit as audit_charts

HOSTILE = '<script>alert("x")</script>.png'
CLASSES = ["square", "triangle", "circle"]


@pytest.fixture(scope="module")
def run():
    rng = np.random.default_rng(0)
    ref_probs = rng.dirichlet([5, 1, 1], 6)
    probe_probs = rng.dirichlet([1, 1, 1], 4)
    sets = {
        "ordinary <b>shapes</b>": {
            "files": [f"ref{i}.png" for i in range(5)] + [HOSTILE],
            "probs": ref_probs,
            "features": rng.normal(size=(6, 4)),
            "labels": np.array([0, 0, 1, 0, 2, 0]),
        },
        "=cmd|abstract": {
            "files": [f"probe{i}.png" for i in range(4)],
            "probs": probe_probs,
            "features": rng.normal(3, 1, size=(4, 4)),
            "labels": None,
        },
    }
    evaluation = audit.evaluate(sets, "ordinary <b>shapes</b>", threshold=0.6, k=2)
    return {
        "card": {"name": "tiny", "title": "Tiny <i>CNN</i>", "kind": "visitor", "input_size": [32, 32]},
        "class_names": CLASSES,
        "sets": sets,
        "evaluation": evaluation,
        "settings": {"seed": 42, "threshold": 0.6},
    }


def test_csv_has_one_row_per_image_and_every_column(run):
    rows = list(csv.DictReader(io.StringIO(report.to_csv(run).decode("utf-8"))))
    assert len(rows) == 10
    expected = [
        "set",
        "role",
        "file",
        "folder",
        "true class",
        "predicted class",
        "confidence",
        "correct",
        "unsure",
        "probability: square",
        "probability: triangle",
        "probability: circle",
        "entropy",
        "knn_distance",
        "mahalanobis",
    ]
    assert list(rows[0]) == expected
    first = rows[0]
    probs = run["sets"]["ordinary <b>shapes</b>"]["probs"][0]
    assert float(first["probability: triangle"]) == pytest.approx(probs[1], rel=1e-5)
    assert float(first["confidence"]) == pytest.approx(probs.max(), rel=1e-5)
    assert first["predicted class"] == CLASSES[int(probs.argmax())]
    assert first["unsure"] == ("yes" if probs.max() < 0.6 else "no")
    labels = run["sets"]["ordinary <b>shapes</b>"]["labels"]
    assert first["true class"] == CLASSES[int(labels[0])]
    assert first["correct"] == ("yes" if int(labels[0]) == int(probs.argmax()) else "no")
    # A set name starting with "=" must not become a spreadsheet formula.
    assert rows[-1]["set"] == "'=cmd|abstract" and rows[-1]["true class"] == "" and rows[-1]["correct"] == ""
    # Names stay verbatim text (split at the last "/" into folder and file, as a zip path is).
    assert rows[5]["folder"] + "/" + rows[5]["file"] == HOSTILE and rows[0]["folder"] == ""


def test_html_has_numbers_escaped_names_prompts_and_no_external_resources(run):
    ev = run["evaluation"]
    thumbs = {
        name: [probes.plain_colour((20, 20), i) for i in range(len(d["files"]))] for name, d in run["sets"].items()
    }
    table = report.results_table(run)
    gallery = [
        dict(row, image=probes.noise((16, 16), 0), heatmap=probes.noise((16, 16), 1))
        for row in report.most_confident_failures(table, 3).to_dict("records")
    ]
    charts = {"AUROC": (audit_charts.auroc_comparison(ev["auroc"], audit.OOD_SCORES), "Taller is better.")}
    page = report.to_html(run, charts=charts, thumbnails=thumbs, gallery=gallery)
    assert "<script>alert" not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;.png" in page
    assert "<b>shapes</b>" not in page and "ordinary &lt;b&gt;shapes&lt;/b&gt;" in page
    assert "Tiny &lt;i&gt;CNN&lt;/i&gt;" in page
    for value in ev["auroc"]["=cmd|abstract"].values():
        assert f"{value:.3f}" in page
    assert f"{ev['ece']:.3f}" in page and f"{ev['accuracy']:.1%}" in page
    assert "Who chose the categories?" in page and "What did the training images leave out?" in page
    assert "What does “confidence” mean here?" in page
    assert "http://" not in page and "https://" not in page and "<script" not in page.lower()
    assert page.count("data:image/png;base64,") == 10 + 2 * len(gallery)
    assert "data:image/svg+xml;base64," in page  # the chart, rendered offline


def test_most_confident_failures_picks_wrong_and_out_of_scope_sorted(run):
    table = report.results_table(run)
    picked = report.most_confident_failures(table, 50)
    assert list(picked["confidence"]) == sorted(picked["confidence"], reverse=True)
    assert not picked["abstained"].any()
    refs = picked[picked["role"] == "reference"]
    assert (refs["true_class"] != refs["top_class"]).all()
    expected_probes = table[(table["role"] == "probe") & ~table["abstained"]]
    assert (picked["role"] == "probe").sum() == len(expected_probes)


def test_every_chart_builds(run):
    ev = run["evaluation"]
    table = report.results_table(run)
    sets = list(run["sets"])
    import pandas as pd

    charts = [
        audit_charts.label_distribution(table, sets),
        audit_charts.confidence_histogram(table, sets, threshold=0.6),
        audit_charts.auroc_comparison(ev["auroc"], audit.OOD_SCORES),
        audit_charts.coverage_accuracy(ev["coverage"], 0.6),
        audit_charts.share_caught(ev["caught"], sets, 0.6),
        audit_charts.reliability_diagram(ev["reliability"]),
        audit_charts.confusion_matrix(ev["confusion"], CLASSES),
        audit_charts.per_class_accuracy(ev["per_class"], CLASSES),
        audit_charts.transformation_effect(
            pd.DataFrame(
                {
                    "transformation": ["Original", "Grayscale"],
                    "top_class": ["a", "b"],
                    "confidence": [0.9, 0.4],
                    "changed": [False, True],
                }
            )
        ),
    ]

    def rows(chart) -> list[dict]:
        return [row for data in chart.to_dict()["datasets"].values() for row in data]

    for chart in charts:  # to_dict() validates against Vega-Lite's schema; each must also carry data
        assert rows(chart), f"{chart.to_dict().get('title')} draws nothing"
    cells = {(r["true"], r["predicted"]): r["images"] for r in rows(charts[6])}
    assert len(cells) == len(CLASSES) ** 2 and sum(cells.values()) == ev["confusion"].sum() == 6
    assert all(cells[(t, p)] == ev["confusion"][i, j] for i, t in enumerate(CLASSES) for j, p in enumerate(CLASSES))
    shares = rows(charts[0])
    assert {r["set"] for r in shares} == set(sets) and all(0 < r["share"] <= 1 for r in shares)
    bundle = audit_charts.audit_charts(run, table, audit.OOD_SCORES)
    assert {"Accuracy per class", "Confusion matrix", "Reliability diagram", "Coverage against accuracy"} <= set(bundle)
    assert all(isinstance(sentence, str) and len(sentence) > 20 for _chart, sentence in bundle.values())


def test_with_threshold_rescores_abstaining_from_stored_outputs(run):
    import copy

    moved = report.with_threshold(copy.deepcopy(run), 0.9)
    ev = moved["evaluation"]
    for name, data in run["sets"].items():
        conf = np.asarray(data["probs"]).max(axis=1)
        assert ev["caught"][name] == pytest.approx((conf < 0.9).mean())
        np.testing.assert_array_equal(ev["scores"][name]["abstained"], conf < 0.9)
    assert (
        ev["threshold"] == 0.9 and ev["k"] == run["evaluation"]["k"] and moved["settings"]["abstain threshold"] == 0.9
    )
    same = copy.deepcopy(run)
    assert report.with_threshold(same, 0.6)["evaluation"] is same["evaluation"]  # already there: nothing recomputed


def test_best_separating_scores_pick_the_highest_defined_auroc():
    evaluation = {
        "auroc": {"a": {"x": 0.6, "y": 0.9, "z": float("nan")}, "b": {"x": float("nan")}, "c": {"x": 0.7, "y": 0.7}}
    }
    assert report.best_separating_scores(evaluation) == {"a": ("y", 0.9), "c": ("x", 0.7)}
