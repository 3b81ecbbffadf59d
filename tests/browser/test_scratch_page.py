"""Build and train a CNN from scratch in a real browser: the Carpentries preset trains in the background
while the visitor clicks elsewhere, a second run is stopped half way and kept, and the trained model
is opened on the feature-map page."""
from __future__ import annotations

import re
import time

import pytest

from tests.browser.helpers import (assert_no_exception, element_pixels, open_page, pixel_difference, screenshot,
                                   wait_idle)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FILTERS = "img[alt=\"The first convolution layer's filters as small gray squares\"]"


def progress_text(page) -> str:
    bar = page.locator('[data-testid="stProgress"]')
    return bar.first.inner_text() if bar.count() else ""


def set_number(page, label: str, value: int) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")
    wait_idle(page)


def test_build_train_watch_stop_and_open_on_feature_maps(page, app_url):
    open_page(page, app_url, "scratch")
    main = page.locator('[data-testid="stMain"]')
    assert "Build and train a CNN from scratch" in page.locator("h1").first.inner_text()
    assert "Total: 56,714 parameters" in main.inner_text()  # the Carpentries preset on Fashion-MNIST

    # A small subset: the slider's lowest value (500) and nine steps of 500 → 5 000 images.
    thumb = page.locator('[data-testid="stSlider"] [role="slider"]').first
    thumb.focus()
    thumb.press("Home")
    for _ in range(9):
        thumb.press("ArrowRight")
    wait_idle(page)
    assert thumb.get_attribute("aria-valuenow") == "5000"
    set_number(page, "Epochs", 2)

    page.get_by_role("button", name="Train").click()
    page.locator(FILTERS).wait_for(timeout=120_000)
    page.get_by_text(re.compile(r"Epoch 1 of 2")).first.wait_for(timeout=120_000)
    before = element_pixels(page.locator(FILTERS))
    first_text = progress_text(page)
    screenshot(page, "scratch-training")

    # Another widget while it trains: the seed box reruns the page, not the training.
    set_number(page, "Seed", 7)
    page.get_by_text("Explore the data").click()
    deadline = time.monotonic() + 120
    while progress_text(page) in ("", first_text) and time.monotonic() < deadline:
        page.wait_for_timeout(300)
        if page.get_by_text("4 · What it learnt").count():
            break
    after = element_pixels(page.locator(FILTERS)) if page.locator(FILTERS).count() else None
    if after is not None:
        assert pixel_difference(before, after) > 0.5, "the first layer's filters did not change while training"
    page.get_by_text("4 · What it learnt").wait_for(timeout=240_000)
    wait_idle(page)
    assert_no_exception(page)
    text = main.inner_text()
    assert "Accuracy on 10,000 test images" in text and "2 of 2 epochs" in text
    assert page.locator('[data-testid="stVegaLiteChart"]').count() >= 3  # curves, confusion, probability bars
    screenshot(page, "scratch-results")

    # A second, long run stopped half way: the model is kept and judged.
    set_number(page, "Epochs", 30)
    page.get_by_role("button", name="Train").click()
    page.get_by_text(re.compile(r"Epoch 2 of 30")).first.wait_for(timeout=240_000)
    page.get_by_role("button", name="Stop (keep what it learnt)").click()
    page.get_by_text(re.compile(r"of 30 epochs \(stopped\)")).first.wait_for(timeout=240_000)
    wait_idle(page)
    assert_no_exception(page)
    assert "Run 2" in main.inner_text() and "Runs side by side" in main.inner_text()
    screenshot(page, "scratch-stopped")

    # One click to the feature-map page with this model.
    page.get_by_role("button", name="Open it on the feature-map page").click()
    page.wait_for_url(re.compile(r"/feature_maps"), timeout=60_000)
    page.locator("h1").filter(has_text="Feature maps").wait_for(timeout=120_000)
    wait_idle(page, 240_000)
    assert_no_exception(page)
    picker = page.locator('[data-testid="stSelectbox"]').first
    picker.click()
    assert page.get_by_role("option", name=re.compile(r"Your model · Run 2")).count() == 1  # offered to this visitor
    page.keyboard.press("Escape")
    screenshot(page, "scratch-feature-maps")
