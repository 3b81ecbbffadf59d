"""The lesson's zip as the audit's reference: testing/ only, true classes from folder names."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
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
    "paintings/training/portrait/a.png": (200, 0, 0),
    "paintings/training/portrait/b.png": (190, 0, 0),
    "paintings/training/landscape/c.png": (0, 200, 0),
    "paintings/testing/portrait/d.png": (180, 0, 0),
    "paintings/testing/landscape/e.png": (0, 180, 0),
    "paintings/testing/landscape/f.png": (0, 170, 0),
    "paintings/testing/sculpture/g.png": (9, 9, 9),
}


def test_lesson_zip_uses_testing_only_with_labels_from_folders():
    ref = reference_set_from_zip(_zip(LESSON), CLASSES, zip_name="“paintings.zip”")
    assert ref.part == "testing"
    assert sorted(f.rsplit("/", 1)[-1] for f in ref.files) == ["d.png", "e.png", "f.png"]
    assert ref.labels is not None
    assert dict(zip((f.rsplit("/", 1)[-1] for f in ref.files), ref.labels.tolist())) == {
        "d.png": 0,
        "e.png": 1,
        "f.png": 1,
    }
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
    assert (
        ref.part == "training" and len(ref.files) == 3 and ref.labels is not None and ref.labels.tolist().count(0) == 2
    )
    assert "higher than on new images" in " ".join(ref.sentences)


def test_unrelated_folders_keep_all_images_unlabelled():
    ref = reference_set_from_zip(_zip({"cats/a.png": (1, 2, 3), "dogs/b.png": (4, 5, 6)}), CLASSES)
    assert ref.part == "all" and ref.labels is None and len(ref.files) == 2
    assert "accuracy and calibration cannot be measured" in " ".join(ref.sentences)


def test_class_index_ignores_case():
    assert (
        class_index("landscape", CLASSES) == 1
        and class_index("sculpture", CLASSES) is None
        and class_index(None, CLASSES) is None
    )


# --------------------------------------------------------------------------- the sources of a set
from cnnviz.audit import sets  # noqa: E402
from cnnviz.zips import ZipError  # noqa: E402

SHAPE_CLASSES = ["Square", "triangle", "circle"]
KINDS = ["Mondrian grid", "Rothko colour fields"]


def _img(seed: int, h: int = 30, w: int = 40) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_sources_offer_the_trainer_first_for_a_visitor_model_only():
    assert sets.sources({"kind": "visitor"}, reference=True)[0] == sets.TRAINER
    assert sets.TRAINER not in sets.sources({"kind": "imagenet"}, reference=True)
    assert sets.sources({"kind": "imagenet"}, reference=True)[0] == sets.SHAPES
    assert sets.sources({"kind": "visitor"}, reference=False) == [sets.GENERATED, sets.UPLOAD, sets.ZIP, sets.CAMERA]
    assert set(sets.SOURCE_TITLES) >= set(sets.sources({"kind": "visitor"}, reference=True))
    assert sets.probe_defaults(0).name == "Abstract probes" and sets.probe_defaults(2).seed == 300


def test_generated_set_is_reproducible_and_labelled_only_when_every_kind_is_a_class():
    a = sets.generated_set(KINDS, 6, seed=7, class_names=["rothko colour fields", "Mondrian grid"])
    b = sets.generated_set(KINDS, 6, seed=7, class_names=["x"])
    assert len(a) == 6 and a.files[0] == "Mondrian grid #0" and a.seed == 7
    assert all(np.array_equal(x, y) for x, y in zip(a.images, b.images))
    assert a.labels is not None and a.labels.tolist() == [1, 0, 1, 0, 1, 0] and a.sentences == []
    assert b.labels is None and b.sentences == []
    other = sets.generated_set(KINDS, 6, seed=8, class_names=["x"])
    assert not np.array_equal(other.images[0], a.images[0])
    partial = sets.generated_set(KINDS, 4, seed=7, class_names=["Mondrian grid"])
    assert partial.labels is None and "2 of these 4 images" in partial.sentences[0]
    empty = sets.generated_set(["no such kind"], 6, seed=7, class_names=["x"])
    assert len(empty) == 0 and empty.sentences == ["Choose at least one kind of picture."]


def test_shapes_set_has_every_shape_with_its_class():
    found = sets.shapes_set(2, SHAPE_CLASSES)
    assert found.files == ["square 1", "square 2", "triangle 1", "triangle 2", "circle 1", "circle 2"]
    assert (
        found.labels is not None
        and found.labels.tolist() == [0, 0, 1, 1, 2, 2]
        and found.images[0].shape == (128, 128, 3)
    )
    assert sets.shapes_set(2, ["tabby", "tiger"]).labels is None


def test_samples_and_camera_sets_are_unlabelled():
    found = sets.samples_set({"Checkerboard": _img(1), "City at night": _img(2)})
    assert found.files == ["Checkerboard", "City at night"] and found.labels is None
    shots = sets.camera_set([_img(3), _img(4)])
    assert shots.files == ["photo 1", "photo 2"] and shots.labels is None and "2 photos" in shots.sentences[0]
    assert len(sets.camera_set([])) == 0 and sets.camera_set([]).sentences


def test_uploaded_set_takes_classes_from_folders_caps_its_size_and_keeps_problems():
    named = [("portrait/a.png", _img(1)), ("landscape/b.png", _img(2)), ("Portrait/c.png", _img(3))]
    found = sets.uploaded_set(named, CLASSES, problems=["“x.png” is not an image."])
    assert (
        found.labels is not None
        and found.labels.tolist() == [0, 1, 0]
        and found.skipped == ["“x.png” is not an image."]
    )
    loose = sets.uploaded_set([("a.png", _img(1)), ("portrait/b.png", _img(2))], CLASSES)
    assert loose.labels is None and len(loose) == 2
    capped = sets.uploaded_set(named, CLASSES, offered=10, max_images=2)
    assert len(capped) == 2 and "Only 2 of the 10 files are used" in capped.sentences[-1]
    assert not sets.uploaded_set(named, CLASSES).sentences


def test_zip_set_gives_the_lessons_testing_images_as_reference_and_refuses_an_empty_zip():
    ref = sets.zip_set(_zip(LESSON), CLASSES, zip_name="“paintings.zip”", reference=True)
    assert isinstance(ref, sets.ReferenceSet) and ref.part == "testing" and len(ref) == 3
    assert "lesson's layout" in ref.sentences[0]
    probe = sets.zip_set(_zip(LESSON), CLASSES, zip_name="“paintings.zip”")
    assert len(probe) == len(LESSON) and probe.labels is None  # "sculpture" names no class
    plain_zip = sets.zip_set(_zip({"portrait/a.png": (1, 1, 1), "landscape/b.png": (2, 2, 2)}), CLASSES, reference=True)
    assert plain_zip.labels is not None and plain_zip.labels.tolist() == [0, 1]
    with pytest.raises(ZipError, match="holds no usable images"):
        sets.zip_set(_zip({}), CLASSES)
    with pytest.raises(ZipError):
        sets.zip_set(b"PK\x03\x04 not a zip", CLASSES)


def test_trainer_set_reads_the_last_run_of_its_own_model():
    from cnnviz.train import transfer
    from cnnviz.train.session import Run, TrainingSession
    from tests.audit_tiny_model import KINDS as TINY, styles, tiny_model

    training = TrainingSession()
    assert "Train a model on page 4 first" in sets.trainer_set(training, "tiny").sentences[0]
    assert "Train a model on page 4 first" in sets.trainer_set(None, "tiny").sentences[0]
    images, labels = styles(2, seed=5)
    keys = [transfer.image_key(img) for img in images]
    for key, img in zip(keys, images):
        training.store.put(key, "efficientnet_lite0", np.zeros(4, np.float32), img)
    model, card = tiny_model()
    training.run = Run(
        name="tiny",
        base="efficientnet_lite0",
        classes=list(TINY),
        keys=keys,
        x=np.zeros((6, 4)),
        y=labels,
        train_idx=np.array([0, 2, 4]),
        val_idx=np.array([1, 3, 5]),
        settings={},
        head=None,
        judged_on="validation",
        judged_keys=[keys[i] for i in (1, 3, 5)],
        model=model,
        card=card,
    )
    found = sets.trainer_set(training, "tiny")
    assert found.labels is not None and found.labels.tolist() == [0, 1, 2] and len(found) == 3
    assert "never trained on" in found.sentences[0] and "96-pixel thumbnails" in found.sentences[0]
    assert "validation images of “tiny”" in sets.trainer_set(training, "other").sentences[0]
    training.run.judged_on, training.run.val_idx = "training", np.array([], int)
    training.run.judged_keys = list(keys)
    assert "was trained on" in sets.trainer_set(training, "tiny").sentences[0]


def test_set_name_is_one_line_and_falls_back_when_blank():
    assert sets.set_name("  My\nprobes  ", "Probe set 2") == "My probes"
    assert sets.set_name("   ", "Probe set 2") == "Probe set 2"
    assert len(sets.set_name("x" * 200, "d")) == 60


def test_audit_sets_says_what_stops_the_audit():
    ref = sets.ImageSet(["a", "b"], [_img(1), _img(2)])
    probe = sets.ImageSet(["c"], [_img(3)])
    chosen, problems = sets.audit_sets(("Reference", ref), [("Probes", probe), ("Empty", sets.ImageSet())])
    assert list(chosen) == ["Reference", "Probes"] and problems == []
    _, problems = sets.audit_sets(("Reference", ref), [("Reference", probe)])
    assert problems == ["Two sets are called “Reference”; please give every set its own name."]
    _, problems = sets.audit_sets(("Reference", sets.ImageSet(["a"], [_img(1)])), [("Probes", probe)])
    assert problems == ["The reference set needs at least two images."]
    _, problems = sets.audit_sets(("Reference", ref), [("Probes", None), ("More", sets.ImageSet())])
    assert problems == ["Add images to at least one probe set."]


def test_fingerprint_changes_with_pixels_names_labels_and_settings():
    base = {"Reference": sets.ImageSet(["a", "b"], [_img(1), _img(2)], np.array([0, 1]))}
    same = {"Reference": sets.ImageSet(["a", "b"], [_img(1), _img(2)], np.array([0, 1]))}
    assert sets.fingerprint(base, ("m", 5)) == sets.fingerprint(same, ("m", 5))
    assert sets.fingerprint(base, ("m", 5)) != sets.fingerprint(base, ("m", 6))
    changed = _img(2)
    changed[:16, :16] = 255 - changed[:16, :16]
    variants = [
        {"Reference": sets.ImageSet(["a", "b"], [_img(1), changed], np.array([0, 1]))},
        {"Other": base["Reference"]},
        {"Reference": sets.ImageSet(["a", "c"], [_img(1), _img(2)], np.array([0, 1]))},
        {"Reference": sets.ImageSet(["a", "b"], [_img(1), _img(2)], np.array([1, 1]))},
        {"Reference": sets.ImageSet(["a", "b"], [_img(1), _img(2)], None)},
    ]
    prints = {sets.fingerprint(v, ("m", 5)) for v in variants}
    assert len(prints) == len(variants) and sets.fingerprint(base, ("m", 5)) not in prints


def test_run_settings_list_the_sets_and_the_seeds_of_generated_ones():
    generated = sets.generated_set(KINDS, 4, seed=9, class_names=["x"])
    chosen = {"Reference": sets.shapes_set(2, SHAPE_CLASSES), "Abstract": generated}
    got = sets.run_settings("Tiny CNN", "Reference", chosen, threshold=0.4, k=3)
    assert got == {
        "model": "Tiny CNN",
        "reference set": "Reference",
        "probe sets": "Abstract",
        "abstain threshold": 0.4,
        "kNN neighbours": 3,
        "Reference · images": 6,
        "Abstract · images": 4,
        "seed (Abstract)": 9,
    }


def test_set_thumbnails_are_small_and_in_file_order():
    chosen = {"A": sets.ImageSet(["x", "y"], [_img(1, 300, 200), _img(2, 20, 30)])}
    thumbs = sets.set_thumbnails(chosen)
    assert [t.shape for t in thumbs["A"]] == [(96, 64, 3), (20, 30, 3)]
    np.testing.assert_array_equal(thumbs["A"][1], chosen["A"].images[1])
