"""Shared test set-up.

Keras reads ``KERAS_HOME`` when it is first imported, so the temporary cache is
made here, at import time, before any test module can import TensorFlow.
``../shared`` is read-only in CI, hence a copy.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CNNVIZ_SHARED", ROOT.parent / "shared"))
SHARED_IMAGES = SHARED / "images"

_keras_home = Path(tempfile.mkdtemp(prefix="cnnviz-keras-"))
atexit.register(shutil.rmtree, _keras_home, ignore_errors=True)
if (SHARED / "keras-cache").is_dir():
    shutil.copytree(SHARED / "keras-cache", _keras_home, dirs_exist_ok=True)
os.environ["KERAS_HOME"] = str(_keras_home)
# Workspaces (and every app server the browser tests start) write into a temporary folder, never ~/.cnnviz.
os.environ.setdefault("CNNVIZ_DATA_DIR", str(_keras_home / "cnnviz-data"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
KERAS_HOME = _keras_home


@pytest.fixture(scope="session")
def keras_home() -> Path:
    """The temporary Keras cache every test and subprocess shares."""
    return KERAS_HOME


@pytest.fixture(scope="session")
def shared_images() -> Path:
    """Real, openly licensed images (read, never copied into the repo)."""
    if not SHARED_IMAGES.is_dir():
        pytest.skip(f"no shared images at {SHARED_IMAGES}")
    return SHARED_IMAGES


@pytest.fixture(scope="session")
def shared_keras_cache() -> Path:
    """``../shared/keras-cache`` (ImageNet class index, Fashion-MNIST); skip where a machine lacks it."""
    cache = SHARED / "keras-cache"
    if not (cache / "models" / "imagenet_class_index.json").is_file():
        pytest.skip(f"no Keras cache at {cache} (ImageNet class names, Fashion-MNIST)")
    return cache
