"""The neuron page in a real browser: widgets redraw the charts, no exception, projector screenshot."""

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

pytestmark = pytest.mark.browser


def chart(page, alt_start: str):
    """A chart found by the start of its alt text (Streamlit puts ``alt=`` in ``aria-label``)."""
    loc = page.locator(f'[data-testid="stVegaLiteChart"][aria-label^="{alt_start}"]').first
    loc.wait_for(state="visible")
    loc.scroll_into_view_if_needed()
    page.wait_for_timeout(500)  # Vega draws after the element appears
    return loc


def redrawn(page, alt_start: str, before, *, at_least: float, timeout_s: float = 20.0) -> float:
    """Poll until the chart's pixels differ from ``before`` by ``at_least`` (Vega redraws asynchronously)."""
    deadline = time.monotonic() + timeout_s
    while True:
        diff = pixel_difference(before, element_pixels(chart(page, alt_start)))
        if diff > at_least or time.monotonic() > deadline:
            return diff
        page.wait_for_timeout(300)


def url_has(page, text: str) -> None:
    page.wait_for_function("t => decodeURIComponent(location.search).includes(t)", arg=text, timeout=20_000)


def test_neuron_page_charts_follow_the_widgets(page, app_url):
    open_page(page, app_url, "neuron")
    assert "One neuron" in page.locator("h1").first.inner_text()
    chart(page, "Probability of each class")  # the last chart: the whole page has been drawn
    assert page.locator('[data-testid="stVegaLiteChart"]').count() == 9  # 2 in "Watch them learn"
    assert_no_exception(page)
    page.locator("h1").first.scroll_into_view_if_needed()
    screenshot(page, "neuron")

    # A weight slider moves the point on the activation curve and turns the line on the plane.
    curve_before = element_pixels(chart(page, "Curve of the"))
    plane_before = element_pixels(chart(page, "Heat map of the neuron"))
    slider = page.locator('[data-testid="stSlider"]', has_text="weight w₁").get_by_role("slider")
    slider.focus()
    for _ in range(40):  # each step reruns the section; a key pressed mid-rerun can be dropped, so check the value
        shown = page.evaluate("new URLSearchParams(location.search).get('w1')")
        if shown is not None and float(shown) <= -0.95:
            break
        slider.focus()
        slider.press("ArrowLeft")
        page.wait_for_timeout(250)
    url_has(page, "w1=-1")  # 0.5 - 15 × 0.1, mirrored in the address bar (as ui.settings writes it)
    wait_idle(page)
    assert redrawn(page, "Curve of the", curve_before, at_least=0.5) > 0.5
    assert redrawn(page, "Heat map of the neuron", plane_before, at_least=2.0) > 2.0

    # Another activation function draws another curve.
    curve_before = element_pixels(chart(page, "Curve of the"))
    page.locator('[data-testid="stSelectbox"]', has_text="activation function").click()
    page.get_by_role("option", name="step (threshold)").click()
    url_has(page, "activation=step")
    wait_idle(page)
    assert redrawn(page, "Curve of the", curve_before, at_least=1.0) > 1.0

    # Temperature flattens the softmax bars.
    bars_before = element_pixels(chart(page, "Probability of each class"))
    temperature = page.locator('[data-testid="stSlider"]', has_text="temperature T").get_by_role("slider")
    for _ in range(60):  # 1.0 + 20 × 0.1, one checked key at a time (a key pressed mid-rerun can be dropped)
        shown = page.evaluate("new URLSearchParams(location.search).get('temperature')")
        if shown is not None and float(shown) >= 2.95:
            break
        temperature.focus()
        temperature.press("ArrowRight")
        page.wait_for_timeout(250)
    url_has(page, "temperature=3")
    wait_idle(page)
    assert redrawn(page, "Probability of each class", bars_before, at_least=1.0) > 1.0
    assert_no_exception(page)
    chart(page, "Curve of the")
    screenshot(page, "neuron-step")


def test_neuron_page_opens_from_a_shared_url(page, app_url):
    open_page(page, app_url, "neuron", query="activation=tanh&w1=-2.0&bias=0.5&data=circles")
    assert_no_exception(page)
    assert "-3.50" in page.locator('[data-testid="stMetric"]', has_text="weighted sum z").inner_text()
    assert page.get_by_role("radio", name="circles (disc in a ring)").is_checked()
    trained = '[data-testid="stVegaLiteChart"][aria-label^="Decision map of a trained two-layer"]'
    assert "on circles" in page.locator(trained).get_attribute("aria-label")
    # The data set's radio lives in the neuron's section but also reruns the trained networks' section.
    page.get_by_text("XOR (four clouds)").click()
    # XOR is the default, so it leaves the URL.
    page.wait_for_function("() => !location.search.includes('data=')", timeout=20_000)
    page.wait_for_function(
        "s => document.querySelector(s).getAttribute('aria-label').includes('on xor')", arg=trained, timeout=20_000
    )
    assert_no_exception(page)
    screenshot(page, "neuron-shared-url")
