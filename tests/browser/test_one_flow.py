"""One product, as a visitor clicks it: a model trained on page 4 flows through pages 3 and 5.

In one browser session: load the demo classes, train 3 epochs, open page 3 from the sidebar,
choose "Your model", see its classes and a Grad-CAM; open page 5, choose it, run the audit, see
the measures, the gallery, the style section and download the report, all without an error
sentence. Then the export's ``.keras`` uploaded on page 5 shows its class names.
"""

from __future__ import annotations

import io
import zipfile

import pytest

from tests.browser.helpers import (
    assert_no_exception,
    choose,
    go_to,
    open_page,
    rerun,
    screenshot,
    shown_choice,
    wait_idle,
)

pytestmark = pytest.mark.browser

MINE = "Your model · My classifier 1"
CLASSES = ["square", "triangle", "circle"]


def no_error_sentence(page) -> None:
    assert_no_exception(page)
    errors = page.locator('[data-testid="stAlertContentError"]')
    assert errors.count() == 0, errors.first.inner_text()


def train_demo(page, app_url) -> None:
    open_page(page, app_url, "trainer", query="epochs=3")
    page.get_by_role("button", name="Load the demo dataset").click()
    page.get_by_text("30 images", exact=True).first.wait_for(timeout=240_000)
    wait_idle(page, 240_000)
    page.get_by_role("button", name="Train the model").click()
    page.get_by_text("How well did it learn?").wait_for(timeout=240_000)
    wait_idle(page, 240_000)
    assert "3 of 3 epochs" in page.locator('[data-testid="stMain"]').inner_text()
    no_error_sentence(page)


def test_the_trained_model_flows_through_feature_maps_and_audit(page, app_url, tmp_path):
    train_demo(page, app_url)

    # Page 3, from the sidebar: choose the trained model; it sticks, and every section runs on it.
    go_to(page, "3 · Feature maps")
    page.get_by_text("1 · The layers").wait_for(timeout=180_000)
    choose(page, "Model", MINE)
    page.get_by_text("5 · Grad-CAM").wait_for(timeout=180_000)
    rerun(page)
    assert shown_choice(page, "Model") == MINE
    main = page.locator('[data-testid="stMain"]')
    text = main.inner_text()
    assert "Trained here on 75 images" in text  # 90 demo images minus the 15 held out for validation
    choose(page, "Class to explain", "triangle")
    wait_idle(page)
    cam = page.locator('img[alt*="Grad-CAM heat map for the class triangle"]')
    cam.wait_for(timeout=60_000)
    top_k = page.locator('[data-testid="stVegaLiteChart"]').first
    assert any(name in (top_k.get_attribute("aria-label") or "") + text for name in CLASSES)
    assert page.locator('img[alt*="first convolution"]').count() == 1  # the base's first-layer kernels
    no_error_sentence(page)
    screenshot(page, "flow-feature-maps")

    # Page 5: the same model, the trainer's validation images as reference, the audit runs end to end.
    go_to(page, "5 · Audit where it fails")
    page.get_by_text("Change only the style").first.wait_for(timeout=180_000)
    choose(page, "Model", MINE)
    rerun(page)
    assert shown_choice(page, "Model") == MINE
    page.get_by_role("button", name="Run the audit").click()
    page.get_by_text("Take the report home").first.wait_for(timeout=300_000)
    wait_idle(page, 300_000)
    text = page.locator('[data-testid="stMain"]').inner_text()
    assert "What the measures say" in text and "most confident failures" in text.lower()
    assert page.locator('img[alt*="Grad-CAM"]').count() >= 1
    page.get_by_text("Change only the style").first.scroll_into_view_if_needed()
    page.locator('[data-testid="stVegaLiteChart"]').last.wait_for(timeout=120_000)
    no_error_sentence(page)
    with page.expect_download(timeout=120_000) as download:
        page.get_by_role("button", name="Download the report (HTML)").click()
    html = open(download.value.path(), encoding="utf-8").read()
    assert "My classifier 1" in html and "triangle" in html
    screenshot(page, "flow-audit")

    # Export on page 4, then upload only its .keras on page 5: the class names come with it.
    go_to(page, "4 · Train your own classifier")
    page.get_by_role("button", name="Prepare the export zip").click()
    button = page.get_by_role("button", name="Download the model zip")
    button.wait_for(timeout=240_000)
    wait_idle(page, 240_000)
    with page.expect_download(timeout=120_000) as info:
        button.click()
    keras_file = tmp_path / "shapes.keras"
    keras_file.write_bytes(zipfile.ZipFile(io.BytesIO(info.value.path().read_bytes())).read("model.keras"))
    go_to(page, "5 · Audit where it fails")
    page.get_by_text("Upload your own model (.keras)").first.click()
    main = page.locator('[data-testid="stMain"]')  # the sidebar has the lecture plan's uploader
    main.locator('[data-testid="stFileUploader"] input[type="file"]').first.set_input_files(str(keras_file))
    page.get_by_text("Your model · shapes").first.wait_for(timeout=180_000)
    wait_idle(page, 180_000)
    assert shown_choice(page, "Model") == "Your model · shapes"
    text = page.locator('[data-testid="stMain"]').inner_text()
    assert all(name in text for name in CLASSES), "the uploaded model's class names are not shown"
    assert "class 0" not in text
    no_error_sentence(page)
