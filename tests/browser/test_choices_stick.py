"""Choices stick in a real browser: change a widget, let the page rerun twice, it still shows the choice
and the page used it; leave the page and come back, and the settings are still there.

AppTest cannot show this: the browser sends the address bar with every rerun, and the old pickers
read the URL over the visitor's click.
"""
import pytest

from tests.browser.helpers import (assert_no_exception, choose, go_to, open_page, rerun, screenshot,
                                   shown_choice, wait_idle)

pytestmark = pytest.mark.browser


def image_alts(page) -> str:
    return " ".join(page.locator('[data-testid="stImage"] img').evaluate_all("els => els.map(e => e.alt)"))


def test_convolution_choices_stick_and_survive_navigation(page, app_url):
    open_page(page, app_url, "convolution")
    page.get_by_text("Colour pictures: three channels").wait_for()
    choose(page, "Image", "Checkerboard")
    choose(page, "Kernel preset", "Sobel x")
    rerun(page)
    assert "Checkerboard" in shown_choice(page, "Image")
    assert "Sobel x" in shown_choice(page, "Kernel preset")
    assert "of Checkerboard" in image_alts(page)  # the page used it, not only the widget
    assert "kernel=sobel-x" in page.url and "image=Checkerboard" in page.url
    choose(page, "Image", "City at night")  # a second change sticks as well as the first
    rerun(page)
    assert "City at night" in shown_choice(page, "Image")
    assert "of City at night" in image_alts(page)

    go_to(page, "3 · Feature maps")
    page.get_by_text("The layers").first.wait_for(timeout=120_000)
    go_to(page, "2 · Convolution and pooling")
    page.get_by_text("Colour pictures: three channels").wait_for()
    rerun(page, 1)
    assert "Sobel x" in shown_choice(page, "Kernel preset")
    assert "City at night" in shown_choice(page, "Image")
    assert "kernel=sobel-x" in page.url  # and the link to this view is back in the address bar
    assert_no_exception(page)
    screenshot(page, "sticky-convolution")
