"""Build and train a CNN from scratch in a real browser: the Carpentries preset trains in the background
while the visitor clicks elsewhere, a second run is stopped half way and kept, and the trained model
is opened on the feature-map page."""

from __future__ import annotations

import re
import time

import pytest

from tests.browser.helpers import (
    assert_no_exception,
    element_pixels,
    open_page,
    pixel_difference,
    screenshot,
    wait_idle,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FILTERS = 'img[alt="The first convolution layer\'s filters as small gray squares"]'


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
    page.get_by_text("Total: 56,714 parameters").wait_for(timeout=120_000)  # the Carpentries preset, Fashion-MNIST
    wait_idle(page)

    # A small subset: the slider's lowest value (500) and nine steps of 500 → 5 000 images.
    thumb = page.locator('[data-testid="stSlider"]', has_text="Training images").get_by_role("slider")
    thumb.focus()
    thumb.press("Home")
    wait_idle(page)

    def value() -> str:
        return thumb.get_attribute("aria-valuenow") or thumb.input_value()

    for _ in range(20):  # each step reruns the page; a key pressed during a rerun can be dropped, so check
        if "5000" in value():
            break
        thumb.focus()
        thumb.press("ArrowRight")
        wait_idle(page)
    assert "5000" in value()
    set_number(page, "Epochs", 4)  # enough epochs that a later one is seen while it trains, even on a fast machine

    page.get_by_role("button", name="▶️ Train", exact=True).click()
    try:
        page.locator(FILTERS).wait_for(timeout=120_000)
    except Exception:
        screenshot(page, "scratch-debug-train")
        print("MAIN", main.inner_text()[-3000:])
        raise
    assert page.get_by_role("button", name="▶️ Train", exact=True).is_disabled()  # one run at a time
    page.get_by_text(re.compile(r"Epoch 1 of 4")).first.wait_for(timeout=120_000)
    before = element_pixels(page.locator(FILTERS))
    first_text = progress_text(page)
    screenshot(page, "scratch-training")

    # Another widget while it trains: the seed box reruns the page, not the training.
    set_number(page, "Seed", 7)
    page.get_by_text("Explore the data").click()
    after = None
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not page.get_by_text("4 · What it learnt").count():
        if re.search(r"Epoch [2-4] of 4", progress_text(page)) and page.locator(FILTERS).count():
            after = element_pixels(page.locator(FILTERS))  # one epoch later, still training
            assert progress_text(page) != first_text
            break
        page.wait_for_timeout(200)
    assert after is not None, "the second epoch was never seen while training"
    assert pixel_difference(before, after) > 0.5, "the first layer's filters did not change while training"
    try:
        page.get_by_text("4 · What it learnt").wait_for(timeout=60_000)
    except Exception:
        screenshot(page, "scratch-debug")
        print("MAIN", main.inner_text()[-3000:])
        raise
    wait_idle(page)
    assert_no_exception(page)
    text = main.inner_text()
    assert "Accuracy on 10,000 test images" in text and "4 of 4 epochs" in text
    page.get_by_text("Classify one").scroll_into_view_if_needed()
    page.wait_for_function(
        "document.querySelectorAll('[data-testid=\"stVegaLiteChart\"]').length >= 3", timeout=60_000
    )  # curves, confusion matrix, probability bars of the picked image
    start = element_pixels(page.locator('img[alt="The first layer\'s filters before training (random)"]'))
    end = element_pixels(page.locator('img[alt="The first layer\'s filters after training"]'))
    assert pixel_difference(start, end) > 2, "training did not change the first layer's filters"
    screenshot(page, "scratch-results")

    # Classify one the visitor draws: a stroke on the canvas reaches the network.
    page.get_by_text("Draw one", exact=True).click()
    wait_idle(page)
    pad = page.locator("canvas.upper-canvas").first
    pad.wait_for(timeout=60_000)
    pad.scroll_into_view_if_needed()
    box = pad.bounding_box()
    page.mouse.move(box["x"] + 140, box["y"] + 40)
    page.mouse.down()
    for i in range(1, 21):
        page.mouse.move(box["x"] + 140, box["y"] + 40 + i * 10)
    page.mouse.up()
    page.locator('img[alt="Your drawing as the network sees it"]').wait_for(timeout=60_000)
    wait_idle(page)
    assert_no_exception(page)
    drawn = element_pixels(page.locator('img[alt="Your drawing as the network sees it"]'))
    assert drawn.max() > 200 and drawn.min() < 50, "the drawn stroke did not reach the network's input"
    screenshot(page, "scratch-drawn")

    # A second, long run stopped half way: the model is kept and judged.
    set_number(page, "Epochs", 30)
    page.get_by_role("button", name="▶️ Train", exact=True).click()
    page.get_by_text(re.compile(r"Epoch ([2-9]|[12][0-9]) of 30")).first.wait_for(timeout=240_000)  # polled each second
    page.get_by_role("button", name="Stop (keep what it learnt)").click()
    page.get_by_text(re.compile(r"of 30 epochs \(stopped\)")).first.wait_for(timeout=240_000)
    wait_idle(page)
    assert_no_exception(page)
    # The page can still be drawing below its header: wait for the comparison's chips, not a snapshot.
    page.locator('[data-testid="stMultiSelect"]').get_by_text(re.compile(r"Run 2 ·")).first.wait_for(timeout=60_000)
    assert "Runs side by side" in main.inner_text()
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
