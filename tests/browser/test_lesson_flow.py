"""The Programming Historian lesson end to end on page 4, in Chromium, as a seminar does it.

A small lesson-layout zip (training/<topic>/, testing/<topic>/) is built in a temp dir from
../shared/images (three topics, 224-pixel PNGs so that ml5 and tmImage do not resize), uploaded
on page 4 → the dataset check is shown → a few epochs of training → the test set on testing/
is the headline → the CSV downloaded has the seminar's columns → the export zip downloaded is
loaded by ml5.js and @teachablemachine/image (the pinned npm libraries of test_tfjs_export.py)
and gives the same top-1 as Keras (the export's own model.keras) on every testing image.
"""

from __future__ import annotations

import csv
import functools
import http.server
import io
import json
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.browser.helpers import assert_no_exception, open_page, wait_idle
from tests.browser.test_tfjs_export import LIB_FILES, TOLERANCE, _by_label, _classify, js_libs  # noqa: F401
from tests.lesson_layout import lesson_split

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TOPICS = ("landscape", "portrait", "seascape")
SIDE = 224


def small_lesson_zip(shared_images: Path) -> tuple[bytes, dict[str, np.ndarray]]:
    """The zip's bytes (three topics, 224 × 224 PNGs) and its testing images by file name."""
    buffer, testing = io.BytesIO(), {}
    with zipfile.ZipFile(buffer, "w") as archive:
        for part, topics in lesson_split(shared_images).items():
            for topic in TOPICS:
                for path in topics[topic]:
                    image = Image.open(path).convert("RGB").resize((SIDE, SIDE), Image.Resampling.BILINEAR)
                    png = io.BytesIO()
                    image.save(png, format="PNG")
                    name = f"{Path(path.name).stem}.png"
                    archive.writestr(f"paintings/{part}/{topic}/{name}", png.getvalue())
                    if part == "testing":
                        testing[name] = np.asarray(image)
    return buffer.getvalue(), testing


def serve(root: Path):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


def download(page, button_name: str, path: Path) -> bytes:
    button = page.get_by_role("button", name=button_name)
    button.wait_for(timeout=240_000)
    button.scroll_into_view_if_needed()
    with page.expect_download(timeout=120_000) as info:
        button.click()
    info.value.save_as(path)
    return path.read_bytes()


def test_the_lesson_zip_from_upload_to_ml5(page, app_url, tmp_path, shared_images, js_libs, browser):  # noqa: F811
    blob, testing = small_lesson_zip(shared_images)
    zip_path = tmp_path / "paintings.zip"
    zip_path.write_bytes(blob)
    n_test = len(testing)

    open_page(page, app_url, "trainer", query="epochs=5")
    uploader = page.locator('[data-testid="stFileUploader"]').filter(has_text="A zip in the lesson")
    uploader.locator('input[type="file"]').set_input_files(str(zip_path))
    page.get_by_text("Read “paintings.zip” (lesson layout)").wait_for(timeout=240_000)
    wait_idle(page, 240_000)
    assert_no_exception(page)

    # The dataset check, before training: its table and its plain sentences.
    page.get_by_text("Check your images before training").wait_for()
    main = page.locator('[data-testid="stMain"]')
    main.locator('[data-testid="stDataFrame"]').first.wait_for()  # its code loads on first use
    assert main.locator('[data-testid="stDataFrame"]').count() == 1  # the check's table (nothing else yet)
    n_train = sum(len(lesson_split(shared_images)["training"][t]) for t in TOPICS)
    assert f"{n_train} training images in 3 classes and {n_test} testing images." in main.inner_text()
    assert "No picture appears twice." in main.inner_text()

    page.get_by_role("button", name="Train the model").click()
    page.get_by_text("How well did it learn?").wait_for(timeout=240_000)
    wait_idle(page, 240_000)
    assert_no_exception(page)
    text = main.inner_text()
    # The test set on testing/ is the headline; validation beside it, labelled as what it is.
    assert "Test accuracy (testing/ images)" in text and "Validation accuracy (held out of training)" in text
    assert f"of {n_test} images in testing/ right" in text
    assert "On the test images (the headline)" in text and "Misclassified test images, most confident first" in text

    rows = list(
        csv.DictReader(io.StringIO(download(page, "Download the test results (CSV)", tmp_path / "test.csv").decode()))
    )
    assert list(rows[0])[:7] == ["file", "folder", "true class", "predicted class", "confidence", "correct", "unsure"]
    assert [c for c in rows[0] if c.startswith("probability: ")] == [f"probability: {t}" for t in TOPICS]
    assert sorted(r["file"] for r in rows) == sorted(testing)
    assert all(r["folder"] == f"paintings/testing/{r['true class']}" for r in rows)
    assert all(r["correct"] == ("yes" if r["true class"] == r["predicted class"] else "no") for r in rows)
    assert all(r["unsure"] == ("yes" if float(r["confidence"]) < 0.5 else "no") for r in rows)
    right = sum(r["correct"] == "yes" for r in rows)
    assert f"Test: {right} of {n_test} images in testing/ right" in text
    for r in rows:  # every error is shown with its file name
        if r["correct"] == "no":
            assert r["file"] in text

    page.get_by_role("button", name="Prepare the export zip").click()
    exported = zipfile.ZipFile(io.BytesIO(download(page, "Download the model zip", tmp_path / "model.zip")))
    assert_no_exception(page)
    folder = tmp_path / "export"
    exported.extractall(folder)
    meta = json.loads(exported.read("metadata.json"))["training"]
    assert meta["test_accuracy"] == pytest.approx(right / n_test) and meta["validation_accuracy"] is not None
    (folder / "testing").mkdir()
    names = sorted(testing)
    for name in names:
        Image.fromarray(testing[name]).save(folder / "testing" / name)
    (folder / "blank.html").write_text("<!DOCTYPE html><html><head><meta charset='utf-8'></head><body></body></html>")
    (folder / "libs").mkdir()
    for name, rel in LIB_FILES.items():
        (folder / "libs" / name).write_bytes((js_libs / rel).read_bytes())

    from cnnviz.train import transfer
    from cnnviz.train.export import import_zip

    model, card = import_zip((tmp_path / "model.zip").read_bytes())
    classes = card["classes"]
    assert classes == list(TOPICS)
    keras_probs = transfer.predict_probabilities(model, [testing[n] for n in names])
    predicted = {r["file"]: r["predicted class"] for r in rows}
    assert [classes[int(p.argmax())] for p in keras_probs] == [predicted[n] for n in names]  # the page's CSV agrees

    httpd, base = serve(folder)
    figures = {"test_images": n_test, "test_accuracy": right / n_test}
    try:
        for library in ("ml5", "tmImage"):
            context = browser.new_context()
            lib_page = context.new_page()
            lib_page.set_default_timeout(180_000)
            try:
                out = _classify(lib_page, base, library, names)
            finally:
                context.close()
            for name, expected in zip(names, keras_probs):
                got = _by_label(out[name], classes)
                assert classes[int(got.argmax())] == classes[int(expected.argmax())], (
                    f"{library} top-1 differs on {name}"
                )
                assert float(np.abs(got - expected).max()) <= TOLERANCE, (library, name)
            figures[f"max_probability_difference_{library}"] = max(
                float(np.abs(_by_label(out[n], classes) - p).max()) for n, p in zip(names, keras_probs)
            )
    finally:
        httpd.shutdown()
        httpd.server_close()
    print(json.dumps(figures))
