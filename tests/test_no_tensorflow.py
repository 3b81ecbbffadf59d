"""The Learn pages must open fast: importing and running them never imports TensorFlow or Keras.

Each page runs through ``AppTest`` in a fresh interpreter (this test process may already have
imported TensorFlow for other tests), which then reports what ended up in ``sys.modules``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PROBE = r"""
import json, sys
from streamlit.testing.v1 import AppTest

at = AppTest.from_file(sys.argv[1], default_timeout=120)
at.run()
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras"))
print(json.dumps({"heavy": heavy, "exceptions": [e.value for e in at.exception],
                  "elements": len(list(at.main))}))
"""


@pytest.mark.parametrize("page", ["pages/neuron.py", "pages/convolution.py"])
def test_learn_page_runs_without_tensorflow(page):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", PROBE, str(ROOT / page)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["exceptions"] == [], report["exceptions"]
    assert report["elements"] > 3, "the page drew almost nothing: did it really run?"
    assert report["heavy"] == [], f"{page} imported {report['heavy'][:5]}"
