"""The audit page end to end in AppTest: generated abstract probes against generated references, a tiny model."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from cnnviz.text import plain
from tests.audit_tiny_model import KINDS, tiny_model

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "pages" / "audit.py")


def _png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture()
def app():
    """The page with the tiny model as this visitor's model, references = its three styles (labelled)."""
    model, card = tiny_model()
    at = AppTest.from_file(PAGE, default_timeout=180)
    at.session_state["cnnviz_user_models"] = {"tiny": {"model": model, "card": card}}
    at.session_state["audit_model_choice"] = "mine:tiny"
    at.session_state["audit_ref_source"] = "generated"
    at.session_state["audit_ref_kinds"] = list(KINDS)
    at.session_state["audit_ref_per_shape"] = 24
    at.session_state["audit_probe0_kinds"] = ["Pollock drips", "Printed text", "Noise", "Blank page"]
    at.session_state["audit_probe0_count"] = 16
    at.session_state["audit_gallery"] = 4
    at.session_state["audit_transform_on"] = False  # the style panel has its own test below
    return at.run()


@pytest.mark.slow
def test_audit_of_generated_probes_shows_measures_charts_gallery_and_report(app):
    at = app
    assert not at.exception
    assert [h.value for h in at.header][:3] == ["1 · The model", "2 · The sets", "3 · Run the audit"]
    at.button(key="audit_run_button").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    run = at.session_state["audit_result"]
    assert set(run["sets"]) == {"Reference", "Abstract probes"}
    assert len(run["sets"]["Reference"]["files"]) == 24 and run["sets"]["Reference"]["labels"] is not None
    charts = at.get("vega_lite_chart")
    subheaders = [s.value for s in at.subheader]
    for heading in (
        "Label distribution per set",
        "Confidence per set",
        "Telling probes from references (AUROC)",
        "Share the model abstains on",
        "Coverage against accuracy",
        "Reliability diagram",
        "Confusion matrix",
        "Accuracy per class",
    ):
        assert heading in subheaders
    assert len(charts) >= 7
    metrics = {m.label: m.value for m in at.metric}
    ref_conf = run["evaluation"]["scores"]["Reference"]["confidence"].mean()
    assert metrics["Reference · mean confidence"] == f"{ref_conf:.0%}"
    assert len(at.get("download_button")) == 2
    assert len(run["gallery"]) == 4
    # The settings are in the URL, so a lecturer can reopen this audit; defaults are left out (short links).
    assert at.query_params["audit_probe0_kinds"] == "Pollock drips,Printed text,Noise,Blank page"
    assert at.query_params["audit_ref_src"] == "generated" and at.query_params["gallery"] == "4"
    assert "threshold" not in at.query_params

    # The report the download buttons serve has the numbers and the prompts.
    from cnnviz.audit import report

    csv_text = report.to_csv(run).decode()
    assert csv_text.count("\n") == 24 + 16 + 1 and "probability: Pollock drips" not in csv_text
    assert all(f"probability: {k}" in csv_text for k in KINDS)

    # Moving the threshold re-scores instantly from the stored outputs.
    at.slider(key="audit_threshold").set_value(0.95).run()
    assert not at.exception
    assert at.slider(key="audit_threshold").value == 0.95 and at.query_params["threshold"] == "0.95"
    assert not at.warning  # the threshold is re-scored live: the audit still matches
    run = at.session_state["audit_result"]
    conf = run["evaluation"]["scores"]["Abstract probes"]["confidence"]
    assert run["evaluation"]["caught"]["Abstract probes"] == pytest.approx((conf < 0.95).mean())


@pytest.mark.slow
def test_style_panel_shows_each_transformation(app):
    at = app
    at.toggle(key="audit_transform_on").set_value(True).run()
    assert not at.exception
    text = " ".join(c.value for c in at.caption)
    assert "Orange bars are versions" in text
    assert len(at.get("vega_lite_chart")) >= 1


@pytest.mark.slow
def test_bad_inputs_give_messages_and_the_page_keeps_running(app):
    at = app
    # A probe set from uploads: one broken file, one not an image, one good picture.
    at.selectbox(key="audit_probe0_source").set_value("upload").run()
    assert not at.exception
    at.file_uploader(key="audit_probe0_files").set_value(
        [
            ("broken.png", _png(1)[:60], "image/png"),
            ("notes.png", b"hello, I am text", "image/png"),
            ("<b>ok</b>.png", _png(2), "image/png"),
        ]
    ).run()
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    # File names are shown as text: escaped in the Markdown source, so they render literally.
    assert plain("broken.png") in errors and plain("notes.png") in errors
    at.button(key="audit_run_button").click().run()
    assert not at.exception
    assert at.session_state["audit_result"]["sets"]["Abstract probes"]["files"] == ["<b>ok</b>.png"]

    # A zip that is not a zip, and a zip with nothing usable: one sentence each, previous audit kept.
    at.selectbox(key="audit_probe0_source").set_value("zip").run()
    at.file_uploader(key="audit_probe0_zipfile").set_value(
        ("broken.zip", b"PK\x03\x04 not really", "application/zip")
    ).run()
    assert not at.exception and any("zip" in e.value.lower() for e in at.error)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../../evil.png", _png(3))
        zf.writestr("readme.txt", "not an image")
    at.file_uploader(key="audit_probe0_zipfile").set_value(("empty.zip", buf.getvalue(), "application/zip")).run()
    assert not at.exception and at.error
    assert "audit_result" in at.session_state  # nothing the visitor made is lost

    # Two sets with the same name are refused with a sentence, not a crash.
    at.text_input(key="audit_probe0_name").set_value("Reference").run()
    assert not at.exception
    assert any("own name" in i.value for i in at.info)
    assert at.button(key="audit_run_button").disabled


@pytest.mark.slow
def test_grad_cam_for_every_image_on_request(app):
    at = app
    at.toggle(key="audit_cam_all").set_value(True).run()
    at.button(key="audit_run_button").click().run()
    assert not at.exception
    run = at.session_state["audit_result"]
    assert len(run["cams"]) == 24 + 16
    assert at.query_params["gradcam_all"] == "1"
    assert any("Every image with its Grad-CAM" in e.label for e in at.expander)


def test_trainer_source_follows_the_model(app):
    """The trainer's validation images are offered for a visitor's model only, and never crash a switch."""
    at = app
    at.selectbox(key="audit_ref_source").set_value("trainer").run()
    assert not at.exception
    assert any("Train a model on page 4 first" in i.value for i in at.info)
    assert at.button(key="audit_run_button").disabled
    at.selectbox(key="audit_model_choice").set_value("fashion_mnist_carpentries").run()
    assert not at.exception
    assert "My trainer's validation images" not in at.selectbox(key="audit_ref_source").options


@pytest.mark.slow
def test_trainer_validation_images_become_a_labelled_reference(app):
    """After training on page 4 (its session, read through ui.state), its held-out images are the reference set."""
    from cnnviz.train import transfer as training
    from cnnviz.train.session import Run, TrainingSession
    from tests.audit_tiny_model import styles

    at = app
    images, labels = styles(4, seed=21)
    session = TrainingSession()
    keys = [training.image_key(img) for img in images]
    for key, img in zip(keys, images):
        session.store.put(key, "efficientnet_lite0", np.zeros(4, np.float32), img)
    model, card = tiny_model()
    session.run = Run(
        name="tiny",
        base="efficientnet_lite0",
        classes=list(KINDS),
        keys=keys,
        x=np.zeros((12, 4)),
        y=labels,
        train_idx=np.array([], int),
        val_idx=np.arange(len(images)),
        settings={},
        head=None,
        judged_on="validation",
        judged_keys=keys,
        model=model,
        card=card,
    )
    at.session_state["trainer"] = session
    at.session_state["audit_ref_source"] = "trainer"
    at.run()
    assert any("12 images the model never trained on" in c.value for c in at.caption)
    at.button(key="audit_run_button").click().run()
    assert not at.exception and not at.error
    run = at.session_state["audit_result"]
    ref = run["sets"]["Reference"]
    np.testing.assert_array_equal(ref["labels"], labels)
    assert "accuracy" in run["evaluation"] and "Reliability diagram" in [s.value for s in at.subheader]


def _zip_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.mark.slow
def test_a_lesson_zip_as_reference_uses_its_testing_images_and_says_why(app):
    at = app
    at.selectbox(key="audit_ref_source").set_value("zip").run()
    assert any("Upload a zip of images" in i.value for i in at.info)
    png = {kind: _png(i) for i, kind in enumerate(KINDS)}
    files = {f"lesson/training/{k}/{i}.png": png[k] for k in KINDS for i in range(2)}
    files.update({f"lesson/testing/{k}/t{i}.png": _png(10 + i + 3 * j) for j, k in enumerate(KINDS) for i in range(2)})
    at.file_uploader(key="audit_ref_zipfile").set_value(("my [lesson](x).zip", _zip_of(files), "application/zip")).run()
    assert not at.exception and not at.error
    captions = " ".join(c.value for c in at.caption)
    assert plain("“my [lesson](x).zip” has the lesson's layout: its 6 testing/ images") in captions
    assert plain("The 6 training/ images were left out") in captions
    at.button(key="audit_run_button").click().run()
    assert not at.exception and not at.error
    ref = at.session_state["audit_result"]["sets"]["Reference"]
    assert len(ref["files"]) == 6 and all("/testing/" in f for f in ref["files"])
    np.testing.assert_array_equal(ref["labels"], [0, 0, 1, 1, 2, 2])


def test_crafted_urls_fall_back_to_the_defaults():
    at = AppTest.from_file(PAGE, default_timeout=180)
    for name, value in {
        "model": "fashion_mnist_carpentries",
        "audit_probe0_n": "100000",
        "threshold": "abc",
        "k": "0",
        "gallery": "1e9",
        "probe_sets": "7",
        "audit_ref_src": "nonsense",
        "audit_probe0_seed": "-5",
        "gradcam_all": "maybe",
        "audit_probe0_kinds": "Noise,<script>",
        "audit_ref_name": "x" * 500,
    }.items():
        at.query_params[name] = value
    at.session_state["audit_transform_on"] = False
    at.run()
    assert not at.exception and not at.error
    assert at.slider(key="audit_probe0_count").value == 24
    assert at.slider(key="audit_threshold").value == 0.5 and at.slider(key="audit_k").value == 5
    assert at.slider(key="audit_gallery").value == 8 and at.radio(key="audit_probe_sets").value == 1
    assert at.selectbox(key="audit_ref_source").value == "shapes"
    assert at.number_input(key="audit_probe0_seed").value == 100 and at.toggle(key="audit_cam_all").value is False
    assert at.multiselect(key="audit_probe0_kinds").value == ["Noise"]  # the valid part of the list is kept
    assert at.text_input(key="audit_ref_name").value == "Reference"


@pytest.mark.slow
def test_choices_stick_across_reruns_and_a_source_switch(app):
    at = app
    at.radio(key="audit_probe_sets").set_value(2).run()
    at.selectbox(key="audit_probe1_source").set_value("camera").run()
    at.text_input(key="audit_probe1_name").set_value("Mes *photos*").run()
    at.slider(key="audit_k").set_value(3).run()
    at.selectbox(key="audit_ref_source").set_value("shapes").run()
    at.selectbox(key="audit_ref_source").set_value("generated").run()
    at.run()
    assert not at.exception
    assert at.selectbox(key="audit_probe1_source").value == "camera" and at.slider(key="audit_k").value == 3
    assert at.multiselect(key="audit_ref_kinds").value == list(KINDS)
    assert at.query_params["audit_probe1_src"] == "camera" and at.query_params["probe_sets"] == "2"
    assert at.text_input(key="audit_probe1_name").value == "Mes *photos*"
    # A visitor's set name is shown as text, never as Markdown; an empty set is not audited.
    at.text_input(key="audit_probe0_name").set_value("My *probes* [x](y)").run()
    at.button(key="audit_run_button").click().run()
    assert not at.exception
    assert list(at.session_state["audit_result"]["sets"]) == ["Reference", "My *probes* [x](y)"]
    labels = [m.label for m in at.metric]
    assert f"{plain('My *probes* [x](y)')} · mean confidence" in labels


def test_a_model_without_dense_layer_gets_a_sentence_not_a_crash():
    import keras

    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(3, 3, padding="same")(inputs)
    outputs = keras.layers.Softmax()(keras.layers.GlobalAveragePooling2D()(x))
    odd = keras.Model(inputs, outputs, name="no_dense")
    at = AppTest.from_file(PAGE, default_timeout=180)
    at.session_state["cnnviz_user_models"] = {
        "odd": {"model": odd, "card": {"name": "odd", "kind": "visitor", "classes": ["a", "b", "c"]}}
    }
    at.session_state["audit_model_choice"] = "mine:odd"
    at.session_state["audit_ref_source"] = "shapes"
    at.session_state["audit_ref_per_shape"] = 2
    at.session_state["audit_probe0_count"] = 4
    at.run()
    assert not at.exception
    assert any("no final Dense layer" in e.value for e in at.error)
    at.session_state["audit_transform_on"] = False
    at.run()
    assert not at.button(key="audit_run_button").disabled, [i.value for i in at.info]
    at.button(key="audit_run_button").click().run()
    assert not at.exception
    assert any("no final Dense layer" in e.value for e in at.error)


@pytest.mark.slow
def test_a_model_trained_on_page_4_is_audited_on_its_own_validation_images(keras_home):
    """The whole path in one session: train on the demo shapes, open page 5, the reference is the held-out shapes."""
    import time

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    at.switch_page("pages/trainer.py").run()
    at.button(key="trainer_demo").click().run()
    at.number_input(key="trainer_epochs").set_value(3).run()
    at.button(key="trainer_train").click().run()
    job = at.session_state["trainer_job"]
    deadline = time.monotonic() + 240
    while not job.finished and time.monotonic() < deadline:
        time.sleep(0.25)
        job.touch()
    at.run()
    training = at.session_state["trainer"]
    assert training.run is not None and training.run.finished, job.error
    at.session_state["audit_transform_on"] = False
    at.session_state["audit_probe0_count"] = 8
    at.button(key="trainer_open_audit").click().run()  # "🧪 Audit where it fails (page 5)"
    at.switch_page("pages/audit.py").run()  # AppTest's own page follows (its reruns would go back to page 4)
    assert not at.exception, at.exception
    assert at.selectbox(key="audit_model_choice").value == "mine:My classifier 1"
    assert at.selectbox(key="audit_ref_source").value == "trainer"  # the default for a visitor's own model
    at.button(key="audit_run_button").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    ref = at.session_state["audit_result"]["sets"]["Reference"]
    names, _, labels = training.validation_images()
    assert ref["files"] == names and ref["labels"].tolist() == labels.tolist()
    assert "accuracy" in at.session_state["audit_result"]["evaluation"]
    assert at.session_state["audit_result"]["card"]["classes"] == ["square", "triangle", "circle"]
