"""Convolution page in a real browser: a new kernel or stride visibly changes the feature map."""

import pytest

from tests.browser.helpers import (
    assert_no_exception,
    element_pixels,
    open_page,
    pixel_difference,
    screenshot,
    wait_idle,
)

pytestmark = pytest.mark.browser


def convolved_image(page):
    # Pictures in page order: input, convolved, activated, pooled, …
    return page.locator('[data-testid="stImage"] img').nth(1)


def wait_for_page(page):
    """The whole page has rendered (its last section is there) and the script is idle."""
    page.get_by_text("Colour pictures: three channels").wait_for()
    wait_idle(page)


def choose(page, label: str, option: str) -> None:
    """Pick ``option`` in the selectbox labelled ``label`` (its list can miss a click made mid-rerun)."""
    box = page.locator('[data-testid="stSelectbox"]').filter(has=page.locator(f'input[aria-label="{label}"]'))
    choice = page.locator('[role="option"]').filter(has_text=option)
    for _ in range(10):
        box.locator('button[aria-label="Open"]').click()
        try:
            choice.wait_for(timeout=3000)
            break
        except Exception:  # list did not open: click again
            page.keyboard.press("Escape")
    choice.click()


def test_kernel_preset_and_stride_change_the_feature_map(page, app_url):
    open_page(page, app_url, "convolution", query="image=Geometric+shapes&kernel=identity")
    wait_for_page(page)
    assert "Convolution and pooling" in page.locator("h1").first.inner_text()
    # Routed through app.py (its sectioned navigation), even as a bookmark on a fresh server.
    assert "2 · Convolution and pooling" in page.locator('[data-testid="stSidebarNav"]').inner_text()
    assert_no_exception(page)
    before = element_pixels(convolved_image(page))

    # The custom filter: open the editor, type 5 into the top-left weight of the 3 × 3 identity grid
    # (header row + 3 rows).
    main = page.locator('[data-testid="stMain"]')
    assert main.locator('[data-testid="stDataFrame"]').count() == 0  # drawn only while editing
    main.get_by_text("Edit the weights").click()
    wait_idle(page)
    assert "edit=1" in page.url
    editor = main.locator('[data-testid="stDataFrame"]').first
    editor.wait_for()
    editor.scroll_into_view_if_needed()
    grid = editor.bounding_box()
    page.mouse.click(grid["x"] + grid["width"] / 6, grid["y"] + grid["height"] * 1.5 / 4)
    page.wait_for_timeout(300)
    page.keyboard.type("5")  # typing into a selected cell opens its editor
    page.wait_for_timeout(300)
    page.keyboard.press("Enter")
    page.get_by_text("the weights add up to 6").wait_for()
    wait_for_page(page)
    assert "weights=5%2C0%2C0%2C0%2C1%2C0%2C0%2C0%2C0%3B1" in page.url  # the edited grid is shareable
    after_edit = element_pixels(convolved_image(page))
    assert pixel_difference(before, after_edit) > 1, "the picture did not change with the edited kernel"
    before = after_edit

    choose(page, "Kernel preset", "Sobel x (vertical edges)")
    wait_for_page(page)
    assert_no_exception(page)
    assert "kernel=sobel-x" in page.url  # the lecturer's setting is in the address bar
    assert "Right column minus left column" in page.locator('[data-testid="stMain"]').inner_text()
    after_kernel = element_pixels(convolved_image(page))
    assert pixel_difference(before, after_kernel) > 5, "the convolved picture did not change with the kernel"

    stride = page.locator('[data-testid="stSlider"] input[aria-label="Stride"]')
    stride.focus()
    stride.press("ArrowRight")
    wait_for_page(page)
    assert_no_exception(page)
    assert "stride=2" in page.url
    assert "63 × 63 × 1" in page.locator('[data-testid="stMain"]').inner_text()  # floor((128 − 3) / 2) + 1
    after_stride = element_pixels(convolved_image(page))
    assert pixel_difference(after_kernel, after_stride) > 2, "the convolved picture did not change with the stride"

    screenshot(page, "convolution")  # what a projector shows first
    page.set_viewport_size({"width": 1920, "height": 3600})  # Streamlit scrolls inside: grow to see it all
    wait_idle(page)
    screenshot(page, "convolution-full")
