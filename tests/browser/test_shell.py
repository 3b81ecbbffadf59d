"""The app shell opens in a real browser and lists its pages."""

import pytest

from tests.browser.helpers import assert_no_exception, open_page, screenshot

pytestmark = pytest.mark.browser


def test_home_page_opens_and_lists_pages(page, app_url):
    open_page(page, app_url)
    screenshot(page, "home")
    assert "how a convolutional neural network sees" in page.locator("h1").first.inner_text()
    nav = page.locator('[data-testid="stSidebarNav"]')
    for title in ["Start here", "Neuron and activation", "Convolution and pooling"]:
        assert title in nav.inner_text()
    assert_no_exception(page)
    screenshot(page, "home")
