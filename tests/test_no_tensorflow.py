"""The rule that keeps the Learn pages fast: these pages and modules never import TensorFlow or Keras.

One place for the rule. Each case runs in a fresh interpreter (this test process may already
have imported TensorFlow for other tests), which reports what ended up in ``sys.modules``.
Every module under ``cnnviz/learn/`` is covered by the folder, so a new one is checked too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PROBE = r"""
import importlib, json, pkgutil, sys

kind, targets = sys.argv[1], sys.argv[2:]
checked, problems = [], []
if kind == "page":
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(targets[0], default_timeout=120).run()
    problems = [e.value for e in at.exception]
    checked = [f"{len(list(at.main))} elements"]
else:
    for name in targets:
        if name.endswith(".*"):  # every module of a package folder
            package = importlib.import_module(name[:-2])
            names = [f"{package.__name__}.{m.name}" for m in pkgutil.iter_modules(package.__path__)]
        else:
            names = [name]
        for module in names:
            importlib.import_module(module)
            checked.append(module)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras", "torch"))
print(json.dumps({"heavy": heavy, "problems": problems, "checked": checked}))
"""

CASES = {
    "page neuron": ("page", str(ROOT / "pages" / "neuron.py")),
    "page convolution": ("page", str(ROOT / "pages" / "convolution.py")),
    "cnnviz/learn/ (every module)": ("modules", "cnnviz.learn.*"),
    "audit without a model": (
        "modules",
        "cnnviz.audit.probes",
        "cnnviz.audit.measures",
        "cnnviz.audit.report",
        "cnnviz.audit.sets",
        "cnnviz.charts.audit",
    ),
    "trainer input": ("modules", "cnnviz.zips", "cnnviz.train.demo_data", "cnnviz.charts.training"),
    "offline check": ("modules", "cnnviz.offline", "cnnviz.keras_cache", "cnnviz.images"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_never_imports_tensorflow(case):
    kind, *targets = CASES[case]
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, kind, *targets],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["problems"] == [], report["problems"]
    if kind == "page":
        assert int(report["checked"][0].split()[0]) > 3, "the page drew almost nothing: did it really run?"
    elif targets == ["cnnviz.learn.*"]:
        assert {"cnnviz.learn.neuron", "cnnviz.learn.convolution", "cnnviz.learn.pooling"} <= set(report["checked"])
    assert report["heavy"] == [], f"{case} imported {report['heavy'][:5]}"
