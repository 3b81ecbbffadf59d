"""Feature-maps page in a real browser with the real EfficientNet-Lite0: layer, channel, Grad-CAM."""

import re

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


def image_with_alt(page, start: str):
    return page.locator(f'[data-testid="stImage"] img[alt^="{start}"]').first


def loaded_pixels(img):
    """Pixels of an image once the browser has really decoded it (not the blank placeholder)."""
    img.scroll_into_view_if_needed()
    img.evaluate("el => el.decode()")
    return element_pixels(img)


def choose(page, label: str, typed: str, option: re.Pattern) -> None:
    box = page.locator('[data-testid="stSelectbox"]').filter(has=page.get_by_text(label, exact=True))
    box.click()
    page.keyboard.type(typed)
    page.get_by_role("option", name=option).first.click()
    wait_idle(page)


def test_pick_a_layer_enlarge_a_channel_and_see_grad_cam(page, app_url):
    open_page(page, app_url, "feature_maps", query="image=Geometric+shapes")
    # The first visit loads (and converts) the network: wait for the page's last section.
    page.get_by_text("Two images, the same layer").wait_for(timeout=180_000)
    wait_idle(page)
    assert "Feature maps" in page.locator("h1").first.inner_text()
    assert_no_exception(page)
    main = page.locator('[data-testid="stMain"]')
    assert "stem_conv" in main.inner_text()  # the layer table lists the real network

    choose(page, "Layer", "block2_expand_relu", re.compile(r"^block2_expand_relu · "))
    page.get_by_text("block2_expand_relu: 96 channels").wait_for()
    wait_idle(page)
    assert_no_exception(page)
    assert "layer=block2_expand_relu" in page.url

    before = loaded_pixels(image_with_alt(page, "Channel "))
    slider = page.locator('[data-testid="stSlider"]').filter(has_text="Channel").get_by_role("slider")
    slider.focus()
    for _ in range(3):
        slider.press("ArrowRight")
    channel = slider.get_attribute("aria-valuetext")
    page.get_by_text(f"Channel {channel} of block2_expand_relu (min").wait_for()
    wait_idle(page)
    assert_no_exception(page)
    assert f"channel={channel}" in page.url
    after = loaded_pixels(image_with_alt(page, f"Channel {channel} of layer block2_expand_relu"))
    assert pixel_difference(before, after) > 2, "the enlarged channel did not change"

    cam_before = loaded_pixels(image_with_alt(page, "Grad-CAM heat map"))
    box = page.locator('[data-testid="stSelectbox"]').filter(has=page.get_by_text("Class to explain", exact=True))
    box.click()
    option = page.get_by_role("option").nth(3)  # the third most probable class
    explained = option.inner_text().rsplit(" (", 1)[0]
    option.click()
    page.get_by_text(f"Grad-CAM for “{explained}”").wait_for()
    wait_idle(page)
    assert_no_exception(page)
    assert re.search(r"cam=\d+", page.url)
    cam_after = loaded_pixels(image_with_alt(page, f"Grad-CAM heat map for the class {explained}"))
    assert pixel_difference(cam_before, cam_after) > 1, "Grad-CAM did not change with the class"
    assert "What it does not show" in main.inner_text()

    images = page.locator('[data-testid="stImage"] img')
    assert images.count() >= 15
    for i in range(images.count()):
        img = images.nth(i)
        assert img.get_attribute("alt"), "an image without alt text"
        # Images below the fold load lazily: bring each into view and wait for its decode.
        img.scroll_into_view_if_needed()
        loaded = img.evaluate("el => el.decode().then(() => el.naturalWidth > 0, () => false)")
        assert loaded, "an image that did not load"
    assert page.locator('[data-testid="stVegaLiteChart"]').count() >= 2
    page.mouse.wheel(0, -100000)
    screenshot(page, "feature_maps")
    # The whole lecture page at once (Streamlit scrolls inside its main area, so a tall window).
    page.set_viewport_size({"width": 1920, "height": 9000})
    wait_idle(page)
    screenshot(page, "feature_maps_full")
