"""The one prediction table / CSV used by the trainer, the audit and the command line."""

from __future__ import annotations

import csv
import io

import numpy as np

from cnnviz import predictions


def test_rows_have_true_class_correct_unsure_and_one_probability_per_class():
    rows = predictions.prediction_rows(
        ["a.png", "b.png", "c.png"],
        np.array([[0.25, 0.75], [0.9, 0.1], [0.45, 0.55]]),
        ["portrait", "landscape"],
        folders=["testing/portrait", "testing/portrait", "loose"],
        true_classes=["portrait", "portrait", None],
        threshold=0.6,
    )
    assert rows[0] == {
        "file": "a.png",
        "folder": "testing/portrait",
        "true class": "portrait",
        "predicted class": "landscape",
        "confidence": 0.75,
        "correct": False,
        "unsure": False,
        "probability: portrait": 0.25,
        "probability: landscape": 0.75,
    }
    assert rows[1]["correct"] is True
    assert rows[2]["true class"] == "" and rows[2]["correct"] == "" and rows[2]["unsure"] is True


def test_threshold_moves_the_unsure_flag():
    probs = np.array([[0.6, 0.4]])
    assert predictions.prediction_rows(["x"], probs, ["a", "b"], threshold=0.5)[0]["unsure"] is False
    assert predictions.prediction_rows(["x"], probs, ["a", "b"], threshold=0.7)[0]["unsure"] is True


def test_csv_is_spreadsheet_safe_and_reads_back():
    rows = predictions.prediction_rows(
        ['=HYPERLINK("x").png', "b.png"],
        np.array([[0.2, 0.8], [0.9, 0.1]]),
        ["-minus", "plain"],
        true_classes=["plain", None],
    )
    text = predictions.rows_to_csv(rows)
    lines = text.splitlines()
    assert lines[0] == (
        "file,folder,true class,predicted class,confidence,correct,unsure,probability: -minus,probability: plain"
    )
    back = list(csv.DictReader(io.StringIO(text)))
    assert back[0]["file"] == '\'=HYPERLINK("x").png' and back[0]["correct"] == "yes" and back[0]["unsure"] == "no"
    assert back[1]["predicted class"] == "'-minus" and back[1]["correct"] == "" and float(back[1]["confidence"]) == 0.9


def test_the_explanation_names_the_threshold():
    assert "below 50%" in predictions.UNSURE_EXPLANATION.format(threshold=0.5)
