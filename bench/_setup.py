"""Shared set-up for the benchmarks: a temporary Keras cache, as tests and CI use.

``../shared/keras-cache`` is read-only in CI and must never be written to, so it is copied
into a temporary ``KERAS_HOME`` before Keras is imported (Keras reads the variable once).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CNNVIZ_SHARED", ROOT.parent / "shared"))


def temporary_keras_home() -> Path:
    """Point ``KERAS_HOME`` at a fresh copy of ``../shared/keras-cache`` for this process."""
    home = Path(tempfile.mkdtemp(prefix="cnnviz-bench-keras-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    if (SHARED / "keras-cache").is_dir():
        shutil.copytree(SHARED / "keras-cache", home, dirs_exist_ok=True)
    os.environ["KERAS_HOME"] = str(home)
    return home
