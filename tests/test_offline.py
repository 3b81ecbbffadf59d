"""A fresh clone on an offline laptop: ImageNet class names ship with the repo, and ``make check`` tells the truth."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnnviz import keras_cache, offline

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def empty_cache(tmp_path, monkeypatch) -> Path:
    """An empty Keras cache (and temp folder, Keras's fallback) and no npm cache: a fresh laptop."""
    home = tmp_path / "keras"
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.setenv("npm_config_cache", str(tmp_path / "npm"))
    monkeypatch.setattr(keras_cache.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    return home


def test_shipped_class_index_is_keras_own_table(shared_keras_cache):
    shipped = json.loads(keras_cache.SHIPPED_CLASS_INDEX.read_text())
    keras_file = json.loads((shared_keras_cache / "models" / keras_cache.CLASS_INDEX_FILE).read_text())
    assert shipped == keras_file


def test_empty_cache_reads_the_shipped_names(empty_cache):
    names, note = keras_cache.imagenet_classes()
    assert (names[0], names[281], names[285], names[967], names[999]) == (
        "tench",
        "tabby",
        "Egyptian cat",
        "espresso",
        "toilet tissue",
    )
    assert note == ""
    assert keras_cache.imagenet_class_source() == keras_cache.SHIPPED_CLASS_INDEX


def test_keras_cache_keeps_priority_and_a_damaged_one_falls_back(empty_cache):
    index = json.loads(keras_cache.SHIPPED_CLASS_INDEX.read_text())
    index["281"] = ["n02123045", "tabby_cat_from_the_cache"]
    cached = empty_cache / "models" / keras_cache.CLASS_INDEX_FILE
    cached.parent.mkdir(parents=True)
    cached.write_text(json.dumps(index))
    assert keras_cache.imagenet_classes()[0][281] == "tabby cat from the cache"
    assert keras_cache.imagenet_class_source() == cached

    cached.write_text('{"0": ["n01440764", "tench"]}')  # truncated: 999 classes short
    assert keras_cache.imagenet_classes()[0][281] == "tabby"


def test_without_any_class_index_classes_are_numbered_with_a_sentence(empty_cache, monkeypatch, tmp_path):
    monkeypatch.setattr(keras_cache, "SHIPPED_CLASS_INDEX", tmp_path / "gone.json")
    names, note = keras_cache.imagenet_classes()
    assert names[281] == "class 281"
    assert "ImageNet class names are missing" in note and keras_cache.CLASS_INDEX_FILE in note
    assert str(empty_cache) not in note  # visitors read it: no server paths


def _rows() -> dict[str, offline.Row]:
    return {row.what: row for row in offline.offline_report()}


def test_report_on_a_fresh_laptop_says_what_is_missing_and_how_to_get_it(empty_cache):
    rows = _rows()
    assert rows["ImageNet network EfficientNet-Lite0"].ok
    assert rows["ImageNet class names"] == offline.Row("ImageNet class names", True, "from the copy shipped in data/")
    bundled = [r for w, r in rows.items() if w.startswith("Bundled CNN")]
    assert len(bundled) == len(list(offline.MODELS_DIR.glob("*.keras"))) >= 3 and all(r.ok for r in bundled)
    for what in (
        "ImageNet network MobileNetV2",
        "Fashion-MNIST (from-scratch training)",
        "MNIST (from-scratch training)",
        "CIFAR-10 (from-scratch training)",
        "TF.js check: ml5",
        "TF.js check: @tensorflow/tfjs",
        "TF.js check: @teachablemachine/image",
    ):
        row = rows[what]
        assert not row.ok, what
        assert row.detail.endswith(".") and row.detail.count(". ") == 0, f"not one sentence: {row.detail}"
        assert "with internet" in row.detail or "apt-get" in row.detail
    assert str(empty_cache / "datasets") in rows["MNIST (from-scratch training)"].detail
    assert "npm install ml5" in rows["TF.js check: ml5"].detail


def test_report_sees_files_once_they_are_in_the_caches(empty_cache, tmp_path):
    datasets = empty_cache / "datasets"
    (datasets / "fashion-mnist").mkdir(parents=True)
    for name in offline.FASHION_MNIST_FILES:
        (datasets / "fashion-mnist" / name).write_bytes(b"")
    (datasets / "mnist.npz").write_bytes(b"")
    (datasets / "cifar-10-batches-py-target_archive").write_bytes(b"")
    (empty_cache / "models").mkdir()
    (empty_cache / "models" / offline.MOBILENET_V2_WEIGHTS).write_bytes(b"")
    # An npm index entry as npm 11 writes it (hash, tab, JSON naming the tarball's URL).
    index = tmp_path / "npm" / "_cacache" / "index-v5" / "f9" / "d5"
    index.mkdir(parents=True)
    (index / "entry").write_text(
        '\n9e77\t{"key":"make-fetch-happen:request-cache:https://registry.npmjs.org/ml5/-/ml5-1.4.0.tgz"}\n'
        '\n9e78\t{"key":"make-fetch-happen:request-cache:https://registry.npmjs.org/@tensorflow/tfjs/-/tfjs-4.22.0.tgz"}\n'
        # package metadata alone (no tarball) is not enough to install offline
        '\n9e79\t{"key":"make-fetch-happen:request-cache:https://registry.npmjs.org/@teachablemachine%2fimage"}\n'
    )
    rows = _rows()
    for what in (
        "ImageNet network MobileNetV2",
        "Fashion-MNIST (from-scratch training)",
        "MNIST (from-scratch training)",
        "CIFAR-10 (from-scratch training)",
        "TF.js check: ml5",
        "TF.js check: @tensorflow/tfjs",
    ):
        assert rows[what].ok, rows[what]
    assert not rows["TF.js check: @teachablemachine/image"].ok


def test_the_check_prints_the_table_without_importing_tensorflow(tmp_path):
    # What `make check` runs, from elsewhere: the editable install makes cnnviz importable anywhere.
    probe = "import runpy, sys; runpy.run_module('cnnviz.offline', run_name='__main__'); print('keras' in sys.modules)"
    run = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "✓ ImageNet class names" in run.stdout
    assert "work offline on this machine." in run.stdout
    assert run.stdout.strip().splitlines()[-1] == "False"


# Runs in a fresh interpreter: Keras reads KERAS_HOME once, at import.
FRESH_CLONE_PROBE = r"""
import json, sys
from streamlit.testing.v1 import AppTest

out = {}
for image in sys.argv[2:]:
    at = AppTest.from_file(sys.argv[1], default_timeout=300)
    at.query_params["image"] = image
    at.run()
    options = at.selectbox(key="fm_cam_class").options if not at.exception else []
    out[image] = {"top5": [o.rsplit(" (", 1)[0] for o in options[1:6]],
                  "image": at.selectbox(key="fm_image_choice").value if not at.exception else None,
                  "problems": [e.value for e in at.exception] + [e.value for e in at.error],
                  "captions": [c.value for c in at.caption]}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_fresh_clone_without_shared_or_keras_cache_names_the_sample_photos(tmp_path, shared_images):
    # No Keras cache and no ../shared/keras-cache: only the photos are read, in place, from ../shared/images.
    shared = tmp_path / "nowhere"
    shared.mkdir()
    (shared / "images").symlink_to(shared_images, target_is_directory=True)
    env = {
        **os.environ,
        "KERAS_HOME": str(tmp_path / "empty-keras"),
        "CNNVIZ_SHARED": str(shared),
        "TMPDIR": str(tmp_path),
        "npm_config_cache": str(tmp_path / "npm"),
    }
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            FRESH_CLONE_PROBE,
            str(ROOT / "pages" / "feature_maps.py"),
            "Chelsea the cat",
            "Cup of coffee",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    for image, expected in (("Chelsea the cat", {"tabby", "Egyptian cat"}), ("Cup of coffee", {"espresso"})):
        page = got[image]
        assert page["problems"] == [] and page["image"] == image, page
        assert expected & set(page["top5"]), page["top5"]
        assert not any("class names are missing" in c for c in page["captions"])
    assert sorted(p.name for p in shared.iterdir()) == ["images"]  # nothing was written into it
