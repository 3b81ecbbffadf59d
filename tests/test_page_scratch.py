"""The from-scratch page in Streamlit's AppTest: presets and their summary, refused stacks, a background
training that survives other clicks, Stop keeping the model, and the path to the feature-map page."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cnnviz.text import plain

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "pages" / "scratch.py")
APP = str(ROOT / "app.py")

pytestmark = pytest.mark.usefixtures("shared_keras_cache")


def fresh(path: str = PAGE) -> AppTest:
    at = AppTest.from_file(path, default_timeout=120).run()
    assert not at.exception, at.exception
    return at


def markdowns(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown]


def wait_job(at: AppTest, index: int = -1, timeout: float = 120, until=lambda job: job.finished):
    deadline = time.monotonic() + timeout
    while True:
        job = at.session_state["scratch_jobs"][index]
        if until(job) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
        job.touch()
    at.run()
    assert not at.exception, at.exception
    return job


def test_carpentries_preset_summary_matches_keras():
    at = fresh()
    assert at.selectbox(key="scratch_preset").value == "carpentries"
    assert "**Total: 56,714 parameters** (the same count as Keras's `model.summary()`)." in markdowns(at)
    summary = at.dataframe[1].value  # [0] is the layer editor
    assert list(summary["layer"]) == [
        "pixels",
        "rescale",
        "conv1",
        "pool1",
        "conv2",
        "pool2",
        "flatten",
        "dense1",
        "predictions",
    ]
    assert list(summary["output shape"])[2] == "26 × 26 × 16"
    at.selectbox(key="scratch_preset").set_value("lenet5").run()
    assert "**Total: 431,080 parameters** (the same count as Keras's `model.summary()`)." in markdowns(at)
    assert at.number_input(key="scratch_epochs").value == 5 and at.selectbox(key="scratch_batch").value == 64


def test_an_impossible_stack_is_refused_in_one_sentence_and_cannot_train():
    at = fresh()
    at.session_state["scratch_table"] = (
        [{"layer": "Conv2D", "filters or units": 8, "window": 3}]
        + [{"layer": "MaxPooling2D", "window": 2}] * 5
        + [{"layer": "Flatten"}]
    )
    at.session_state["scratch_editor_gen"] = 99
    at.run()
    assert [e.value for e in at.error] == [
        plain(
            "Layer 6 (MaxPooling2D) slides a 2×2 window over a 1×1 map, which is smaller than the window; "
            "remove a pooling layer before it or use “same” padding."
        )
    ]
    assert at.button(key="scratch_train").disabled


def test_a_missing_data_set_is_one_sentence_and_the_page_goes_on(keras_home):
    at = fresh()
    at.radio(key="scratch_source").set_value("cifar10").run()
    assert not at.exception
    if any("CIFAR-10" in w.value for w in at.warning):
        assert at.warning[0].value.startswith("CIFAR-10 is not in this server's Keras cache")
    at.radio(key="scratch_source").set_value("demo").run()
    assert not at.exception and "Demo shapes" in " ".join(c.value for c in at.caption)


@pytest.fixture(scope="module")
def trained(shared_keras_cache) -> AppTest:
    at = fresh(APP)
    at.switch_page("pages/scratch.py").run()
    at.slider(key="scratch_subset").set_value(1000).run()
    at.number_input(key="scratch_epochs").set_value(2).run()
    at.button(key="scratch_train").click().run()
    assert not at.exception, at.exception
    job = at.session_state["scratch_jobs"][0]
    wait_job(at, until=lambda j: j.rows("epoch") or j.finished)
    at.number_input(key="scratch_seed").set_value(3).run()  # another widget while it trains
    assert not job.finished or job.state == "done"
    wait_job(at)
    return at


@pytest.mark.slow
def test_training_runs_in_the_background_and_shows_what_it_learnt(trained):
    at = trained
    job = at.session_state["scratch_jobs"][0]
    assert job.state == "done" and [r["epoch"] for r in job.result.rows] == [1, 2]
    assert any(h.value == "4 · What it learnt" for h in at.header)
    assert at.metric[0].label == "Accuracy on 10,000 test images"
    assert at.metric[0].value == f"{job.result.evaluation.accuracy:.1%}"
    mine = at.session_state["cnnviz_user_models"]
    (name,) = mine
    card = mine[name]["card"]
    assert card["kind"] == "visitor" and card["input_size"] == [28, 28] and card["channels"] == 1
    assert card["classes"][0] == "T-shirt/top" and mine[name]["model"] is job.result.model


@pytest.mark.slow
def test_stop_half_way_keeps_the_model(trained):
    at = trained
    at.number_input(key="scratch_epochs").set_value(30).run()
    at.button(key="scratch_train").click().run()
    job = at.session_state["scratch_jobs"][1]
    wait_job(at, until=lambda j: j.rows("epoch") or j.finished)
    at.button(key=f"scratch_stop_{job.id}").click().run()
    job = wait_job(at, index=1)
    assert job.state == "stopped" and 1 <= len(job.result.rows) < 30
    assert job.result.evaluation is not None and job.result.stopped
    assert len(at.session_state["cnnviz_user_models"]) == 2
    assert any(h.value == "5 · Runs side by side" for h in at.header)


@pytest.mark.slow
def test_open_the_trained_model_on_the_feature_map_page(trained):
    at = trained
    name = at.session_state["scratch_registered"][at.session_state["scratch_jobs"][-1].id]
    at.button(key="scratch_open_pages/feature_maps.py").click().run()
    assert not at.exception, at.exception
    assert any("Feature maps" in t.value for t in at.title)
    # The feature-map page's picker took the request: it opens on this model, not on EfficientNet-Lite0.
    assert "cnnviz_requested_model" not in at.session_state
    assert [box for box in at.selectbox if box.label == "Model"][0].value == f"mine:{name}"


def test_streamlit_does_not_reset_keras_under_a_running_training():
    """Streamlit calls keras.backend.clear_session() after each script run; mid-training that swaps out
    Keras's global state under the training thread (it retraced and crawled). ui.runtime replaces that
    clean-up by one that leaves Keras alone, during a training and after it."""
    import threading

    from keras.src.backend.common import global_state

    from cnnviz import jobs

    at = fresh()
    gate = threading.Event()
    job = jobs.submit(lambda ctx: gate.wait(30), kind="test", owner="keras-state-test")
    while job.state != "running":
        time.sleep(0.01)
    tracker = global_state.GLOBAL_STATE_TRACKER
    at.number_input(key="scratch_seed").set_value(4).run()
    assert global_state.GLOBAL_STATE_TRACKER is tracker
    gate.set()
    while not job.finished:
        time.sleep(0.01)
    at.number_input(key="scratch_seed").set_value(5).run()
    assert global_state.GLOBAL_STATE_TRACKER is tracker  # idle too: the next forward pass keeps its kernels


def test_a_visitors_zip_becomes_the_data_set_and_a_bad_zip_one_sentence():
    import io
    import zipfile

    from PIL import Image

    from cnnviz.train.demo_data import demo_dataset

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, images in demo_dataset(6, size=48, seed=2).items():
            for i, im in enumerate(images):
                png = io.BytesIO()
                Image.fromarray(im).save(png, format="PNG")
                archive.writestr(f"{name}/{i}.png", png.getvalue())
    at = fresh()
    at.radio(key="scratch_source").set_value("zip").run()
    at.radio(key="scratch_size").set_value(64).run()
    [up] = [u for u in at.file_uploader if u.label.startswith("A zip with one folder per class")]
    up.set_value(("shapes.zip", buffer.getvalue(), "application/zip")).run()
    assert not at.exception, at.exception
    assert any(
        plain("shapes.zip") in c.value and "64 × 64 × 1" in c.value and "3 classes" in c.value for c in at.caption
    )
    assert "**Total:" in " ".join(markdowns(at))  # the summary is computed for 64×64 gray input
    [up] = [u for u in at.file_uploader if u.label.startswith("A zip with one folder per class")]
    up.set_value(("broken.zip", b"not a zip", "application/zip")).run()
    assert [e.value for e in at.error] == [
        plain("“broken.zip” is not a readable zip file (it may be damaged or incomplete).")
    ]


def test_names_from_a_visitors_zip_are_shown_as_text_not_markdown():
    import io
    import zipfile

    from PIL import Image

    from cnnviz.train.demo_data import demo_dataset

    evil = "[Log in](https://evil.example) **x**"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for k, (name, images) in enumerate(demo_dataset(6, size=32, seed=2).items()):
            for i, im in enumerate(images):
                png = io.BytesIO()
                Image.fromarray(im).save(png, format="PNG")
                archive.writestr(f"{evil if k == 0 else name}/{i}.png", png.getvalue())
    at = fresh()
    at.radio(key="scratch_source").set_value("zip").run()
    [up] = [u for u in at.file_uploader if u.label.startswith("A zip with one folder per class")]
    up.set_value(("[a](http://x.example).zip", buffer.getvalue(), "application/zip")).run()
    assert not at.exception, at.exception
    shown = " ".join(c.value for c in at.caption) + " ".join(markdowns(at))
    assert "](http" not in shown and "**x**" not in shown
    assert any(plain("[a](http://x.example).zip") in c.value for c in at.caption)


def test_a_lecturers_link_reopens_the_settings_and_crafted_values_fall_back():
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params.update(
        {
            "preset": "lenet5",
            "epochs": "3",
            "batch": "128",
            "lr": "0.002",
            "seed": "7",
            "optimizer": "sgd",
            "images": "2000",
        }
    )
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="scratch_preset").value == "lenet5"
    assert at.number_input(key="scratch_epochs").value == 3 and at.selectbox(key="scratch_batch").value == 128
    assert at.selectbox(key="scratch_lr").value == 0.002 and at.number_input(key="scratch_seed").value == 7
    assert at.selectbox(key="scratch_opt").value == "sgd" and at.slider(key="scratch_subset").value == 2000
    bad = AppTest.from_file(PAGE, default_timeout=120)
    bad.query_params.update({"preset": "<script>", "epochs": "99999", "batch": "abc", "seed": "-1", "images": "1e99"})
    bad.run()
    assert not bad.exception, bad.exception
    assert bad.selectbox(key="scratch_preset").value == "carpentries"
    assert bad.number_input(key="scratch_epochs").value == 5 and bad.selectbox(key="scratch_batch").value == 32
    assert bad.number_input(key="scratch_seed").value == 0 and bad.slider(key="scratch_subset").value == 10_000


def test_settings_and_edited_layers_survive_a_page_switch():
    at = fresh(APP)
    at.switch_page("pages/scratch.py").run()
    at.number_input(key="scratch_epochs").set_value(4).run()
    at.radio(key="scratch_source").set_value("demo").run()
    editor = at.session_state["scratch_table_edited"][1]
    at.session_state["scratch_table_edited"] = (at.session_state["scratch_editor_gen"], editor[:-2])
    at.switch_page("pages/home.py").run()
    at.switch_page("pages/scratch.py").run()
    assert not at.exception, at.exception
    assert at.number_input(key="scratch_epochs").value == 4 and at.radio(key="scratch_source").value == "demo"
    assert len(at.session_state["scratch_table"]) == len(editor) - 2


def test_a_new_order_number_moves_a_layer():
    at = fresh()
    gen = at.session_state["scratch_editor_gen"]
    rows = [dict(r) for r in at.session_state["scratch_table"]]
    rows[4]["order"] = 1  # Flatten to the top, as a visitor types it in the order column
    at.session_state["scratch_table"] = rows
    at.session_state["scratch_editor_gen"] = gen + 10
    at.run()
    assert not at.exception, at.exception
    assert [r["layer"] for r in at.session_state["scratch_table"]][:2] == ["Flatten", "Conv2D"]
    assert [r["order"] for r in at.session_state["scratch_table"]] == [1, 2, 3, 4, 5, 6]
    assert at.session_state["scratch_editor_gen"] == gen + 11


@pytest.mark.slow
def test_export_of_a_gray_model_says_why_there_is_no_tensorflow_js(trained):
    from cnnviz.train import scratch as S

    at = trained
    at.switch_page("pages/scratch.py").run()  # an earlier test may have left for the feature-map page
    at.button(key="scratch_export").click().run()
    assert not at.exception, at.exception
    assert plain(S.GRAY_TFJS) in [c.value for c in at.caption]
    files = at.session_state["scratch_files"]
    assert files[1][:2] == b"PK" and files[3] is None  # a .keras is a zip; no TF.js zip for a 1-channel model


@pytest.mark.slow
def test_draw_one_asks_for_a_drawing_and_the_page_goes_on(trained):
    at = trained
    at.switch_page("pages/scratch.py").run()
    at.radio(key="scratch_one_how").set_value("draw").run()
    assert not at.exception, at.exception
    assert any(i.value.startswith("Draw with the mouse") for i in at.info)
    assert at.button(key="scratch_export")  # what follows "classify one" is still drawn
    at.radio(key="scratch_one_how").set_value("image").run()
    assert not at.exception and not any(i.value.startswith("Draw with the mouse") for i in at.info)
