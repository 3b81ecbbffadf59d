"""The trainer page in Streamlit's AppTest: demo training, uploads, bad zips, and visitors kept apart."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from cnnviz.text import plain

pytestmark = pytest.mark.slow  # every test here embeds images with EfficientNet-Lite0

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "pages" / "trainer.py")


def png(colour: tuple[int, int, int], seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour) + rng.integers(-20, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def fresh() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=300).run()
    assert not at.exception, at.exception
    return at


def uploader(at: AppTest, label: str, index: int = 0):
    return [u for u in at.file_uploader if u.label.startswith(label)][index]


def class_counts(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if m.value.endswith(" images**")]


def train(at: AppTest, timeout: float = 240) -> None:
    """Press Train, wait for the background job (the page would poll it every second), rerun to see the results."""
    at.button(key="trainer_train").click().run()
    assert not at.exception, at.exception
    job = at.session_state["trainer_job"]
    deadline = time.monotonic() + timeout
    while not job.finished and time.monotonic() < deadline:
        time.sleep(0.25)
        job.touch()
    assert job.state == "done", (job.state, job.error)
    at.run()
    assert not at.exception, at.exception


@pytest.fixture(scope="module")
def trained_session(keras_home) -> AppTest:
    at = fresh()
    at.button(key="trainer_demo").click().run()
    assert not at.exception
    at.number_input(key="trainer_epochs").set_value(4).run()
    train(at)
    return at


def test_demo_dataset_trains_and_shows_results(trained_session):
    at = trained_session
    assert class_counts(at) == ["**30 images**"] * 3
    assert [t.value for t in at.text_input] == ["square", "triangle", "circle"]
    run = at.session_state["trainer"].run
    assert run.finished and len(run.history.rows) == 4
    assert any("How well did it learn" in h.value for h in at.header)
    assert any("EfficientNet-Lite0" in m.value and "4 of 4 epochs" in m.value for m in at.markdown)
    assert len(at.metric) == 3
    # The demo's 12 test shapes are the headline; validation is beside it, labelled as such.
    res = run.results
    assert res.headline is res.test and res.test.n_images == 12
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Test accuracy (testing/ images)"] == f"{res.test.accuracy:.0%}"
    assert metrics["Validation accuracy (held out of training)"] == f"{res.validation.accuracy:.0%}"
    assert any(t.value.startswith(f"Test: {res.test.n_correct} of 12 images in testing/ right") for t in at.text)
    assert any(s.value.startswith("Misclassified test images") for s in at.subheader)
    captions = " ".join(c.value for c in at.caption)
    if res.test.mistakes:
        m = res.test.mistakes[0]
        assert f"{plain(m.file)}  \n{plain(m.true_class)} → {plain(m.predicted_class)} ({m.confidence:.0%})" in captions
    else:
        assert any("Every test image was classified correctly" in s.value for s in at.success)
    # The dataset check is shown (it warned about nothing that blocks training).
    assert any(s.value == "Check your images before training" for s in at.subheader)
    check = [d.value for d in at.dataframe if "training images" in d.value.columns][0]
    assert list(check["class"]) == ["circle", "square", "triangle"] and list(check["testing images"]) == [4, 4, 4]
    assert at.get("download_button")[0].proto.label == "⬇️ Download the test results (CSV)"
    # The model is registered for this visitor's other pages (feature maps, audit).
    mine = at.session_state["cnnviz_user_models"]
    assert list(mine) == ["My classifier 1"]
    assert mine["My classifier 1"]["card"]["classes"] == ["square", "triangle", "circle"]
    assert mine["My classifier 1"]["card"]["base"] == "efficientnet_lite0"


def test_demo_test_images_give_a_table_and_csv(trained_session):
    at = trained_session
    at.button(key="trainer_use_testset").click().run()
    assert not at.exception
    assert any("labelled test images classified correctly" in m.value for m in at.markdown)
    assert len(at.dataframe) >= 2  # per-class accuracy + predictions table
    table = at.dataframe[-1].value
    assert (
        list(table.columns[:7])
        == ["file", "folder", "true class", "predicted class", "confidence", "correct", "unsure"]
        and len(table) == 12
    )
    assert set(table["folder"]) == {"testing/square", "testing/triangle", "testing/circle"}
    assert list(table["correct"]) == list(table["true class"] == table["predicted class"])
    assert not table["unsure"].any() or (table["confidence"][table["unsure"]] < 0.5).all()
    # The unsure threshold is the visitor's: at 0.99 every answer below 99 % confidence is unsure.
    at.slider(key="trainer_unsure").set_value(0.99).run()
    assert not at.exception
    table = at.dataframe[-1].value
    assert list(table["unsure"]) == list(table["confidence"] < 0.99)
    assert any("below 99%" in c.value for c in at.caption)


def test_two_visitors_never_see_each_others_images_or_models(trained_session):
    first = trained_session
    second = fresh()
    # The second visitor starts empty: no images, no results, no models.
    assert class_counts(second) == ["**0 images**", "**0 images**"]
    assert second.session_state["trainer"].run is None
    assert "cnnviz_user_models" not in second.session_state or not second.session_state["cnnviz_user_models"]
    assert not any("How well did it learn" in h.value for h in second.header)
    # The second visitor uploads their own images; the first visitor's classes are unchanged.
    uploader(second, "Add images", 0).set_value(
        [("red.png", png((220, 30, 30)), "image/png"), ("red2.png", png((220, 30, 30), 1), "image/png")]
    ).run()
    assert not second.exception
    assert class_counts(second) == ["**2 images**", "**0 images**"]
    first.run()
    assert class_counts(first) == ["**30 images**"] * 3
    assert len(second.session_state["trainer"].store) == 2
    # 90 demo + 12 demo test images: none of the second visitor's.
    assert len(first.session_state["trainer"].store) == 90 + 12
    assert not any(k in first.session_state["trainer"].store for k in second.session_state["trainer"].classes[0].keys)
    assert first.session_state["trainer"].store is not second.session_state["trainer"].store


def test_export_then_import_back_in_the_page(trained_session):
    at = trained_session
    at.button(key="trainer_prepare_export").click().run()
    assert not at.exception
    blob = at.session_state["trainer_export"]
    assert at.get("download_button")  # the zip is offered for download
    uploader(at, "Import a model zip").set_value(("shapes.zip", blob, "application/zip")).run()
    assert not at.exception, at.exception
    imported = at.session_state["trainer_imported"]
    assert len(imported) == 1 and imported[0]["card"]["classes"] == ["square", "triangle", "circle"]
    assert imported[0]["card"]["base"] == "efficientnet_lite0"
    assert len(at.session_state["cnnviz_user_models"]) == 2  # the trained one and the imported one
    assert imported[0]["name"] in at.selectbox(key="trainer_test_model").options
    assert any("Imported:" in c.value for c in at.caption)
    uploader(at, "Import a model zip").set_value(("broken.zip", b"not a zip", "application/zip")).run()
    assert not at.exception
    assert any("not a readable zip" in e.value for e in at.error)
    assert len(at.session_state["trainer_imported"]) == 1


def test_a_zip_without_testing_says_the_numbers_come_from_the_held_out_images(keras_home):
    at = fresh()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for i in range(3):
            archive.writestr(f"red/r{i}.png", png((220, 30, 30), i))
            archive.writestr(f"blue/b{i}.png", png((20, 20, 220), 10 + i))
    uploader(at, "A zip").set_value(("plain.zip", buf.getvalue(), "application/zip")).run()
    assert not at.exception
    # 32-pixel images: the check warns, and training is still allowed.
    assert any("smaller than 100 pixels" in w.value for w in at.warning)
    assert not at.button(key="trainer_train").disabled
    at.number_input(key="trainer_epochs").set_value(1).run()
    train(at)
    assert any("numbers above come only from the few images held out of training" in w.value for w in at.warning)
    assert {m.label: m.value for m in at.metric}["Test accuracy"] == "no test set"
    assert at.session_state["trainer"].run.results.headline is at.session_state["trainer"].run.results.validation


def test_bad_zip_and_bad_images_show_messages_and_keep_what_was_added(keras_home):
    at = fresh()
    uploader(at, "Add images", 0).set_value(
        [("a.png", png((10, 200, 10)), "image/png"), ("broken.png", b"\x89PNG\r\n\x1a\nbroken", "image/png")]
    ).run()
    assert not at.exception
    assert class_counts(at) == ["**1 images**", "**0 images**"]
    assert any(plain("broken.png") in m.value for m in at.markdown)

    uploader(at, "A zip").set_value(("cut.zip", b"PK\x03\x04 cut off", "application/zip")).run()
    assert not at.exception
    assert any("not a readable zip" in e.value for e in at.error)
    assert class_counts(at) == ["**1 images**", "**0 images**"]

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("training/blue/1.png", png((20, 20, 220)))
        archive.writestr("training/blue/2.png", png((20, 20, 220), 2))
        archive.writestr("../evil.png", png((0, 0, 0)))
        archive.writestr("training/blue/notes.txt", "hello")
        archive.writestr("testing/3.png", png((20, 20, 220), 3))
    uploader(at, "A zip").set_value(("lesson.zip", buf.getvalue(), "application/zip")).run()
    assert not at.exception
    assert class_counts(at) == ["**1 images**", "**2 images**"]  # "blue" took the empty second card
    assert [t.value for t in at.text_input] == ["Class 1", "blue"]
    assert len(at.session_state["trainer"].testset) == 1
    assert any("2 files skipped" in s.value for s in at.success)
    text = " ".join(m.value for m in at.markdown)
    assert "climb out" in text and plain("notes.txt") in text

    # Per-image removal: take one image out of "blue"; the other class is untouched.
    remove = [m for m in at.multiselect if m.label == "Remove images"][1]
    assert remove.options == ["1.png", "2.png"]
    remove.select("1.png").run()
    at.button(key=[b.key for b in at.button if b.key and b.key.startswith("trainer_rm_")][0]).click().run()
    assert not at.exception
    assert class_counts(at) == ["**1 images**", "**1 images**"]
    assert at.session_state["trainer"].classes[1].files == ["2.png"]


def test_renaming_and_deleting_classes(keras_home):
    at = fresh()
    assert at.button(key=f"trainer_del_{at.session_state['trainer'].classes[0].id}").disabled  # at least two
    at.button(key="trainer_add_class").click().run()
    assert [t.value for t in at.text_input] == ["Class 1", "Class 2", "Class 3"]
    at.text_input[0].set_value("Portraits").run()
    assert at.session_state["trainer"].classes[0].name == "Portraits"
    at.text_input[1].set_value("Portraits").run()  # a duplicate name is refused
    assert any("already called" in e.value for e in at.error)
    assert at.session_state["trainer"].classes[1].name == "Class 2"
    third = at.session_state["trainer"].classes[2].id
    at.button(key=f"trainer_del_{third}").click().run()
    assert len(at.session_state["trainer"].classes) == 2
    assert not at.exception


def test_the_trained_model_is_offered_on_the_feature_map_and_audit_pages(keras_home):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    at.switch_page("pages/trainer.py").run()
    at.button(key="trainer_demo").click().run()
    at.number_input(key="trainer_epochs").set_value(2).run()
    train(at)
    for page in ("pages/feature_maps.py", "pages/audit.py"):
        at.switch_page(page).run()
        assert not at.exception, (page, at.exception)
        models = [box for box in at.selectbox if box.label == "Model"][0]
        assert "Your model · My classifier 1" in models.options, page
