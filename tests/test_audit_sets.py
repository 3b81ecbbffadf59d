"""The lesson's zip as the audit's reference: testing/ only, true classes from folder names."""
from __future__ import annotations

import io
import zipfile

import numpy as np
from PIL import Image

from cnnviz.audit import measures
from cnnviz.audit.sets import class_index, reference_set_from_zip

CLASSES = ["Portrait", "Landscape"]


def _zip(files: dict[str, tuple[int, int, int]]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, colour in files.items():
            png = io.BytesIO()
            Image.new("RGB", (32, 24), colour).save(png, format="PNG")
            archive.writestr(name, png.getvalue())
    return out.getvalue()


LESSON = {
    "paintings/training/portrait/a.png": (200, 0, 0), "paintings/training/portrait/b.png": (190, 0, 0),
    "paintings/training/landscape/c.png": (0, 200, 0),
    "paintings/testing/portrait/d.png": (180, 0, 0), "paintings/testing/landscape/e.png": (0, 180, 0),
    "paintings/testing/landscape/f.png": (0, 170, 0), "paintings/testing/sculpture/g.png": (9, 9, 9),
}


def test_lesson_zip_uses_testing_only_with_labels_from_folders():
    ref = reference_set_from_zip(_zip(LESSON), CLASSES, zip_name="“paintings.zip”")
    assert ref.part == "testing"
    assert sorted(f.rsplit("/", 1)[-1] for f in ref.files) == ["d.png", "e.png", "f.png"]
    assert ref.labels is not None
    assert dict(zip((f.rsplit("/", 1)[-1] for f in ref.files), ref.labels.tolist())) == {"d.png": 0, "e.png": 1, "f.png": 1}
    text = " ".join(ref.sentences)
    assert "3 training/ images were left out" in text and "surer and more accurate" in text
    assert "1 image(s) are not in a folder named after one of the model's classes" in text
    # With labels, the audit measures accuracy and calibration on the reference.
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]])
    result = measures.evaluate({"ref": {"probs": probs, "features": np.eye(3), "labels": ref.labels}}, "ref")
    assert "ece" in result and result["per_class"].shape == (2,)
    assert ref.as_image_set()["labels"] is ref.labels


def test_zip_without_testing_says_training_images_inflate_confidence():
    only_training = {k: v for k, v in LESSON.items() if "/training/" in k}
    ref = reference_set_from_zip(_zip(only_training), CLASSES)
    assert ref.part == "training" and len(ref.files) == 3 and ref.labels is not None and ref.labels.tolist().count(0) == 2
    assert "higher than on new images" in " ".join(ref.sentences)


def test_unrelated_folders_keep_all_images_unlabelled():
    ref = reference_set_from_zip(_zip({"cats/a.png": (1, 2, 3), "dogs/b.png": (4, 5, 6)}), CLASSES)
    assert ref.part == "all" and ref.labels is None and len(ref.files) == 2
    assert "accuracy and calibration cannot be measured" in " ".join(ref.sentences)


def test_class_index_ignores_case():
    assert class_index("landscape", CLASSES) == 1 and class_index("sculpture", CLASSES) is None and class_index(None, CLASSES) is None
