"""Trainer charts: valid Vega-Lite, the numbers they draw, and the live update equal to a rebuild."""

from __future__ import annotations

import json

import numpy as np

from cnnviz.charts import training as charts

ROWS = [
    {
        "epoch": e,
        "loss": 1 / e,
        "accuracy": 1 - 1 / e,
        "val_loss": 1.2 / e,
        "val_accuracy": None if e == 1 else 0.8,
        "seconds": 0.1 * e,
    }
    for e in range(1, 6)
]


def _data(spec: dict) -> list[dict]:
    (values,) = spec["datasets"].values()
    return values


def test_curves_hold_every_epoch_for_both_parts():
    spec = charts.training_curves(ROWS, epochs=50).to_dict()  # validates against the Vega-Lite schema
    values = _data(spec)
    assert len(values) == 5 * 2 + 5 + 4  # training loss+accuracy, validation loss, validation accuracy from epoch 2
    assert {"epoch": 2, "metric": "loss", "part": "validation", "value": 0.6} in values
    x_domains = [panel["encoding"]["x"]["scale"]["domain"] for panel in spec["hconcat"]]
    assert x_domains == [[1, 50], [1, 50]]  # the live chart does not rescale every epoch


def test_live_update_equals_a_rebuilt_chart():
    template = charts.training_curves([], epochs=50).to_dict()
    live = charts.with_rows(template, ROWS)
    rebuilt = charts.training_curves(ROWS, epochs=50).to_dict()

    def normal(spec):
        (name,) = spec["datasets"]
        return json.dumps(spec, sort_keys=True).replace(name, "DATA")

    assert normal(live) == normal(rebuilt)
    assert _data(template) == []  # the template is not modified


def test_confusion_matrix_cells_and_shares():
    spec = charts.confusion_matrix(np.array([[3, 1], [0, 4]]), ["cat", "dog"]).to_dict()
    cells = {(d["true class"], d["predicted class"]): (d["images"], d["share of the true class"]) for d in _data(spec)}
    assert cells == {
        ("cat", "cat"): (3, 0.75),
        ("cat", "dog"): (1, 0.25),
        ("dog", "cat"): (0, 0.0),
        ("dog", "dog"): (4, 1.0),
    }


def test_probability_bars_mark_the_predicted_class():
    spec = charts.probability_bars([0.1, 0.7, 0.2], ["a", "b", "c"]).to_dict()
    rows = {d["class"]: (d["probability"], d["predicted"]) for d in _data(spec)}
    assert rows == {"a": (0.1, "other"), "b": (0.7, "predicted"), "c": (0.2, "other")}
