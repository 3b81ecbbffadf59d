"""The trainer in a real browser: demo data, a short training, results, and the export zip."""

from __future__ import annotations

import io
import json
import re
import zipfile

import pytest

from tests.browser.helpers import assert_no_exception, open_page, screenshot, wait_idle

pytestmark = pytest.mark.browser


def test_train_the_demo_dataset_and_download_the_export(page, app_url, tmp_path):
    open_page(page, app_url, "trainer", query="epochs=3")
    assert "Train your own classifier" in page.locator("h1").first.inner_text()
    assert "EfficientNet-Lite0" in page.locator('[data-testid="stMain"]').inner_text()

    page.get_by_role("button", name="Load the demo dataset").click()
    page.get_by_text("30 images", exact=True).first.wait_for(timeout=240_000)
    wait_idle(page, 240_000)
    names = page.locator('[data-testid="stMain"] [data-testid="stTextInput"] input')  # the sidebar has the plan's
    assert [names.nth(i).input_value() for i in range(names.count())] == ["square", "triangle", "circle"]
    # The browser may still be adding the thumbnails after the script run ends: wait for the 72nd.
    page.locator('[data-testid="stImage"] img').nth(3 * 24 - 1).wait_for(state="attached", timeout=60_000)

    page.get_by_role("button", name="Train the model").click()
    page.get_by_text("How well did it learn?").wait_for(timeout=240_000)
    wait_idle(page, 240_000)
    assert_no_exception(page)
    main = page.locator('[data-testid="stMain"]')
    text = main.inner_text()
    assert "3 of 3 epochs" in text and "EfficientNet-Lite0" in text
    page.get_by_text("How well did it learn?").scroll_into_view_if_needed()
    screenshot(page, "trainer")
    # The page is long now (dataset check, test and validation results): bring the test section's chart into view.
    page.get_by_text("4 · Test it on new images").scroll_into_view_if_needed()
    wait_idle(page)
    charts = page.locator('[data-testid="stVegaLiteChart"]')
    charts.nth(2).wait_for(timeout=60_000)
    assert charts.count() >= 3  # learning curves, confusion matrix, probability bars of the test image
    for i in range(charts.count()):  # every chart really drew something
        box = charts.nth(i).bounding_box()
        assert box and box["width"] > 200 and box["height"] > 100
    # The chart itself, found by the title Vega drew into its SVG (the alt text alone would match any page
    # that merely mentions it), with one cell per (true, predicted) pair of the 3 classes.
    matrix = charts.filter(has=page.locator("svg text", has_text="Confusion matrix (rows: true class"))
    assert matrix.count() == 1
    assert matrix.locator("g.mark-rect.role-mark path").count() == 3 * 3  # the cells, not the legend gradient
    assert page.get_by_text("Numbers on the diagonal").count() == 1

    page.get_by_role("button", name="Prepare the export zip").click()
    download_button = page.get_by_role("button", name="Download the model zip")
    download_button.wait_for(timeout=240_000)
    wait_idle(page, 240_000)
    with page.expect_download(timeout=120_000) as info:
        download_button.click()
    path = tmp_path / "model.zip"
    info.value.save_as(path)
    archive = zipfile.ZipFile(io.BytesIO(path.read_bytes()))
    assert {
        "README.md",
        "labels.txt",
        "metadata.json",
        "model.keras",
        "model.tflite",
        "model/model.json",
        "index.html",
        "sketch.js",
    } <= set(archive.namelist())
    assert archive.read("labels.txt").decode().split() == ["square", "triangle", "circle"]
    meta = json.loads(archive.read("metadata.json"))
    assert meta["baseModel"] == "efficientnet_lite0" and meta["training"]["epochs_run"] == 3
    assert (
        archive.getinfo("model.keras").file_size > 1_000_000 and archive.getinfo("model.tflite").file_size > 1_000_000
    )
    assert_no_exception(page)

    # Stop: a long training stops at the click and keeps what it learnt.
    page.get_by_text("Advanced settings").click()
    epochs = page.get_by_label("Epochs")
    epochs.fill("500")
    epochs.press("Enter")
    wait_idle(page)
    page.get_by_role("button", name="Train the model").click()
    page.get_by_text(re.compile(r"Epoch \d+ of 500")).first.wait_for(timeout=240_000)
    page.get_by_text("Advanced settings").click()  # another click: the training goes on (a background job)
    page.wait_for_timeout(1500)
    assert page.get_by_text(re.compile(r"Epoch \d+ of 500")).count() >= 1
    page.get_by_role("button", name="Stop training").click()
    page.get_by_text("(stopped early)", exact=False).wait_for(timeout=120_000)
    wait_idle(page)
    text = page.locator('[data-testid="stMain"]').inner_text()
    assert "My classifier 2" in text and "of 500 epochs (stopped early)" in text
    assert_no_exception(page)
