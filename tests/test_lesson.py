"""Training, validation and test as the lesson lays them out (pure numpy, no model)."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from cnnviz.train import lesson
from cnnviz.zips import ZipError


@pytest.mark.parametrize(
    "n, held_out", [(0, 0), (1, 0), (2, 1), (5, 1), (6, 1), (7, 2), (10, 2), (20, 3), (21, 4), (40, 6), (100, 15)]
)
def test_validation_count_rounds_up_as_teachable_machine_does(n, held_out):
    # Math.ceil(0.15 * n) as in JavaScript (node gives the same for every n below 200).
    assert lesson.validation_count(n) == held_out


def test_evaluate_set_sorts_mistakes_most_confident_first():
    probs = np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4], [0.05, 0.95], [0.45, 0.55]])
    result = lesson.evaluate_set(
        "test",
        probs,
        [0, 0, 1, 0, 1],
        ["cat", "dog"],
        ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg"],
        ["t/cat", "t/cat", "t/dog", "t/cat", "t/dog"],
    )
    assert result.confusion.tolist() == [[1, 2], [1, 1]]
    assert result.accuracy == pytest.approx(0.4) and result.n_correct == 2
    assert result.per_class_accuracy.tolist() == [pytest.approx(1 / 3), 0.5]
    assert [m.file for m in result.mistakes] == ["d.jpg", "b.jpg", "c.jpg"]
    first = result.mistakes[0]
    assert (first.folder, first.true_class, first.predicted_class, first.confidence) == ("t/cat", "cat", "dog", 0.95)
    assert result.per_class_rows()[1] == {"class": "dog", "images": 2, "right": 1, "accuracy": 0.5}
    assert result.sentence() == "Test: 2 of 5 images right (40%)."


def test_results_put_the_test_first_and_label_validation():
    test = lesson.evaluate_set(
        "test", np.array([[0.8, 0.2]] * 13), [0] * 7 + [1] * 6, ["a", "b"], [f"{i}" for i in range(13)]
    )
    val = lesson.evaluate_set(
        "validation", np.array([[0.8, 0.2]] * 6), [0] * 1 + [1] * 5, ["a", "b"], [f"{i}" for i in range(6)]
    )
    res = lesson.lesson_results(test, val, n_unscored_test=2)
    assert res.headline is test
    assert res.sentences[0].startswith("Test: 7 of 13 images in testing/ right (54%)")
    assert res.sentences[1].startswith("Validation: 1 of 6 images held out of training/ right (17%)")
    assert "one more error moves this number by 17%" in res.sentences[1]
    assert any("2 test image(s) are not in a folder named after a training class" in s for s in res.sentences)
    assert not any("no testing/ folder" in s for s in res.sentences)


def test_without_testing_folder_the_results_say_where_the_numbers_come_from():
    val = lesson.evaluate_set("validation", np.array([[0.8, 0.2]] * 6), [0] * 6, ["a", "b"], [f"{i}" for i in range(6)])
    res = lesson.lesson_results(None, val)
    assert res.headline is val and res.test is None
    assert any("There is no testing/ folder" in s and "few images held out of training/" in s for s in res.sentences)


def test_test_labels_mark_unknown_classes():
    labels, known = lesson.test_labels(["b", None, "zebra", "a"], ["a", "b"])
    assert labels.tolist() == [1, -1, -1, 0] and known.tolist() == [True, False, False, True]


def _png(colour) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(out, format="PNG")
    return out.getvalue()


def _layout() -> dict[str, bytes]:
    return {
        "training/cats/a.png": _png("red"),
        "training/cats/b.png": _png("blue"),
        "training/dogs/c.png": _png("green"),
        "testing/cats/d.png": _png("white"),
        "testing/e.png": _png("black"),
        "training/notes.txt": b"hello",
    }


def test_a_folder_and_a_zip_of_the_same_collection_read_the_same(tmp_path):
    blob = io.BytesIO()
    with zipfile.ZipFile(blob, "w") as archive:
        for name, data in _layout().items():
            archive.writestr(f"collection/{name}", data)
            (tmp_path / "collection" / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / "collection" / name).write_bytes(data)
    (tmp_path / "collection" / ".DS_Store").write_bytes(b"junk")
    from_zip = lesson.open_collection(blob.getvalue(), name="c.zip")
    from_folder = lesson.open_collection(tmp_path / "collection")
    for col in (from_zip, from_folder):
        assert col.layout == "lesson" and col.classes == ["cats", "dogs"]
        assert col.count("training") == 3 and col.count("testing") == 2
        assert any("notes.txt" in s and "not an image" in s for s in col.skipped)
        got = sorted((z.part, z.label or "", z.image[0, 0].tolist()) for z in col.images())
        assert got[0] == ("testing", "", [0, 0, 0])
    assert sorted(e.path.split("collection/")[-1] for e in from_zip.entries) == sorted(
        e.path for e in from_folder.entries
    )


def test_missing_or_empty_sources_give_one_sentence(tmp_path):
    with pytest.raises(ZipError, match="does not exist"):
        lesson.open_collection(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ZipError, match="holds no image"):
        lesson.open_collection(tmp_path / "empty")
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(ZipError, match="not a readable zip"):
        lesson.open_collection(tmp_path / "bad.zip")


def test_a_damaged_image_is_skipped_with_its_reason(tmp_path):
    (tmp_path / "cats").mkdir()
    (tmp_path / "cats" / "ok.png").write_bytes(_png("red"))
    (tmp_path / "cats" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    col = lesson.open_collection(tmp_path)
    assert [z.name for z in col.images()] == ["ok.png"]
    assert any("broken.jpg" in s for s in col.skipped)
