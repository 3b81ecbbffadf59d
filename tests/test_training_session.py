"""TrainingSession (page 4's rules): dataset-check facts as images arrive, and a run judged on the test set.

A real (tiny) Keras embedder, the mean colour of an image, stands in for EfficientNet-Lite0:
the session takes any ``embed`` function, and colours make the right answers known.
"""

from __future__ import annotations

import io
import zipfile

import keras
import numpy as np
import pytest
from PIL import Image

from cnnviz.train import lesson, transfer
from cnnviz.train.session import TrainingSession

BASE = "mean-colour"
RED, BLUE = (210, 40, 40), (40, 40, 210)


@pytest.fixture(scope="module")
def embedder() -> keras.Model:
    inputs = keras.Input((16, 16, 3))
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(inputs)))


def embed_for(session: TrainingSession, embedder: keras.Model):
    return lambda images, on_progress=None: transfer.embed_images(
        images, embedder, BASE, store=session.store, on_progress=on_progress
    )[0]


def png(rgb, seed: int, side: int = 120, gray: bool = False) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(rgb) + rng.integers(-25, 25, (side, side, 3)), 0, 255).astype(np.uint8)
    if gray:
        pixels = np.repeat(pixels.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def zip_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buf.getvalue()


def lesson_zip(*, testing: bool = True) -> bytes:
    files = {f"training/red/r{i}.png": png(RED, i) for i in range(8)}
    files |= {f"training/blue/b{i}.png": png(BLUE, 100 + i) for i in range(8)}
    if testing:
        files |= {f"testing/red/t{i}.png": png(RED, 200 + i) for i in range(3)}
        files |= {f"testing/blue/t{i}.png": png(BLUE, 300 + i) for i in range(2)}
        files["testing/blue/odd.png"] = png(RED, 400)  # filed under blue, but red: the model must call it red
    return zip_of(files)


def test_facts_arrive_with_the_images_and_the_check_sees_leakage_grayscale_small_and_renames(embedder):
    session = TrainingSession()
    embed = embed_for(session, embedder)
    leaked = png(RED, 0)
    session.add_zip(
        zip_of(
            {
                "training/red/r0.png": leaked,
                "training/red/r1.png": png(RED, 1),
                "training/red/r2.png": png(RED, 2),
                "training/blue/b0.png": png(BLUE, 3),
                "training/blue/grey.png": png(BLUE, 4, gray=True),
                "training/blue/tiny.png": png(BLUE, 5, side=40),
                "testing/red/copy.png": leaked,
                "testing/blue/t0.png": png(BLUE, 6),
            }
        ),
        "lesson.zip",
        embed,
    )
    blue = session.class_named("blue")
    session.add_images(blue, [("upload.png", np.full((150, 150, 3), (30, 30, 200), np.uint8))], embed)
    assert len(session.facts) == 8  # 7 different pictures in the zip + the upload

    check = session.dataset_check(BASE)
    rows = {r["class"]: r for r in check.rows}
    assert rows["red"]["training images"] == 3 and rows["red"]["testing images"] == 1
    assert rows["blue"]["training images"] == 4 and rows["blue"]["grayscale"] == 1 and rows["blue"]["very small"] == 1
    assert check.leaks == [["training/red/r0.png", "testing/red/copy.png"]]
    assert check.grayscale == ["training/blue/grey.png"] and check.small == ["training/blue/tiny.png"]
    assert any("Leakage" in w for w in check.warnings)
    assert any("testing/red/copy.png" in s for s in check.sentences)  # near-copy sentence ran (embeddings given)

    session.rename(session.class_named("red").id, "rouge")
    renamed = session.dataset_check(BASE)
    assert [r["class"] for r in renamed.rows] == ["blue", "rouge", "red"]  # testing/red/ now names no class
    assert any("testing/ has folders no training class has" in w for w in renamed.warnings)


def test_a_run_is_judged_on_the_test_set_with_validation_beside_it(embedder):
    session = TrainingSession()
    session.add_zip(lesson_zip(), "colours.zip", embed_for(session, embedder))
    run = session.start_run(BASE, {"epochs": 40, "batch_size": 4, "learning_rate": 0.01})
    TrainingSession.train(run)
    session.finish_run(run, embedder, base_title="mean colour", stopped=False)

    res = run.results
    assert res is not None and res.test is not None and res.validation is not None and run.card is not None
    assert res.headline is res.test and res.test.n_images == 6
    # The numbers equal the head's own answers on the test embeddings.
    probs = transfer.head_probabilities(run.head, run.x_test)
    labels = np.array([run.classes.index(t.label) for t in run.test if t.label is not None])
    assert len(labels) == len(run.test)  # every image under testing/ has its class folder
    assert res.test.accuracy == pytest.approx(float(np.mean(probs.argmax(1) == labels)))
    np.testing.assert_array_equal(res.test.confusion.sum(axis=1), [3, 3])
    odd = [m for m in res.test.mistakes if m.file == "odd.png"]
    assert odd and odd[0].true_class == "blue" and odd[0].predicted_class == "red" and odd[0].folder == "testing/blue"
    assert run.test[odd[0].index].file == "testing/blue/odd.png"  # the page finds its thumbnail by this index
    assert [m.confidence for m in res.test.mistakes] == sorted((m.confidence for m in res.test.mistakes), reverse=True)
    # Validation: Teachable Machine's 15 % of each class, rounded up, from training/.
    assert res.validation.n_images == 2 * lesson.validation_count(8) == len(run.val_idx)
    assert all(f.startswith(("r", "b")) for f in res.validation.files)
    assert set(res.validation.folders) <= {"training/red", "training/blue"}
    assert run.card["test_accuracy"] == res.test.accuracy
    assert run.card["validation_accuracy"] == res.validation.accuracy
    info = session.training_info(run)
    assert info["test_accuracy"] == res.test.accuracy and info["validation_accuracy"] == res.validation.accuracy
    assert info["test_images"] == 6 and info["training_images"] == len(run.train_idx) == 12
    assert session.example is not None
    assert transfer.image_key(session.example) in {t.key for t in session.testset}  # the sketch shows a test image

    confidence = probs.max(axis=1)
    threshold = float(np.sort(confidence)[3])  # between the test images' confidences: some unsure, some not
    rows = session.test_rows(run, threshold=threshold)
    assert list(rows[0])[:7] == ["file", "folder", "true class", "predicted class", "confidence", "correct", "unsure"]
    by_file = {r["file"]: r for r in rows}
    assert by_file["odd.png"]["folder"] == "testing/blue" and by_file["odd.png"]["correct"] is False
    assert [r["unsure"] for r in rows] == list(confidence < threshold) and 0 < sum(confidence < threshold) < 6
    assert all(r["unsure"] is False for r in session.test_rows(run, threshold=0.0))
    # The audit still reads the held-out images.
    held_out = session.validation_images()
    assert held_out is not None
    names, thumbs, ys = held_out
    assert len(names) == len(thumbs) == len(ys) == 4 and run.judged_on == "validation"


def test_without_testing_the_numbers_are_said_to_come_from_the_held_out_images(embedder):
    session = TrainingSession()
    session.add_zip(lesson_zip(testing=False), "colours.zip", embed_for(session, embedder))
    run = session.start_run(BASE, {"epochs": 2, "batch_size": 8, "learning_rate": 0.01})
    TrainingSession.train(run)
    session.finish_run(run, embedder, base_title="mean colour", stopped=False)
    assert run.results is not None and run.card is not None
    assert run.results.test is None and run.results.headline is run.results.validation
    assert any("no testing/ folder" in s for s in run.results.sentences)
    assert session.test_rows(run) == [] and run.card["test_accuracy"] is None
    assert session.example is not None  # a training image stands in for the sketch


def test_a_test_image_no_longer_in_memory_is_left_out_of_the_run_with_a_sentence(embedder):
    session = TrainingSession(max_images=22)  # the zip's 16 training + 6 test pictures, exactly
    session.add_zip(lesson_zip(), "colours.zip", embed_for(session, embedder))
    assert session.skipped == [] and len(session.testset) == 6
    # The store drops its least recently used picture when a 23rd arrives: after the training
    # images are used again, that is a test image.
    for key in (k for c in session.classes for k in c.keys):
        assert session.store.embedding(key, BASE) is not None
    session.store.put("another picture", BASE, np.zeros(3, np.float32), np.zeros((8, 8, 3), np.uint8))
    kept = [t for t in session.testset if session.store.embedding(t.key, BASE) is not None]
    assert len(kept) == 5
    run = session.start_run(BASE, {"epochs": 1, "batch_size": 8, "learning_rate": 0.01})
    assert [t.key for t in run.test] == [t.key for t in kept] and run.x_test.shape == (5, 3)
    assert session.skipped == [
        "1 of the 6 test images are no longer in memory (at most 22 images are kept), "
        "so this run is tested without them; add them again to test on them."
    ]
    session.start_run(BASE, {"epochs": 1, "batch_size": 8, "learning_rate": 0.01})
    assert len(session.skipped) == 1  # the same loss is said once
    with pytest.raises(ValueError, match="no longer in memory"):
        session.test_embeddings(BASE)
