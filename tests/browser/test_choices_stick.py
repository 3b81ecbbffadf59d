"""Choices stick in a real browser: change a widget, let the page rerun twice, it still shows the choice
and the page used it; leave the page and come back, and the settings are still there.

AppTest cannot show this: the browser sends the address bar with every rerun, and the old pickers
read the URL over the visitor's click.
"""

import pytest

from tests.browser.helpers import assert_no_exception, choose, go_to, open_page, rerun, screenshot, shown_choice

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


def test_neuron_choice_sticks(page, app_url):
    open_page(page, app_url, "neuron")
    page.get_by_text("From scores to probabilities").wait_for()
    choose(page, "activation function f", "tanh")
    rerun(page)
    assert shown_choice(page, "activation function f") == "tanh"
    assert "activation=tanh" in page.url
    charts = page.locator('[data-testid="stVegaLiteChart"]').evaluate_all("els => els.map(e => e.innerHTML)")
    assert page.get_by_text("weighted sum z").count() >= 1 and charts
    assert_no_exception(page)


def test_feature_map_choices_stick(page, app_url):
    open_page(page, app_url, "feature_maps")
    page.get_by_text("1 · The layers").wait_for(timeout=180_000)
    choose(page, "Model", "Fashion-MNIST · Better small CNN")
    page.get_by_text("1 · The layers").wait_for(timeout=180_000)
    choose(page, "Image", "Checkerboard")
    first_layer = shown_choice(page, "Layer")
    choose(page, "Layer", "conv2 ·")
    wanted = shown_choice(page, "Layer")
    rerun(page)
    assert "Fashion-MNIST · Better small CNN" in shown_choice(page, "Model")
    assert shown_choice(page, "Image") == "Checkerboard"
    assert shown_choice(page, "Layer") == wanted != first_layer and wanted.startswith("conv2")
    assert "The input image: Checkerboard" in image_alts(page)
    assert f"channels of layer {wanted.split(' · ')[0]}" in image_alts(page)
    assert_no_exception(page)
    screenshot(page, "sticky-feature-maps")


def test_trainer_settings_stick(page, app_url):
    open_page(page, app_url, "trainer")
    page.get_by_text("Advanced settings").click()
    choose(page, "Batch size", "32")
    choose(page, "Learning rate", "0.005")
    rerun(page)
    page.get_by_text("Advanced settings").click()
    assert shown_choice(page, "Batch size") == "32" and shown_choice(page, "Learning rate") == "0.005"
    assert "batch=32" in page.url and "lr=0.005" in page.url
    go_to(page, "1 · Neuron and activation")
    go_to(page, "4 · Train your own classifier")
    page.get_by_text("Advanced settings").click()
    assert shown_choice(page, "Batch size") == "32"
    assert_no_exception(page)


def test_scratch_preset_sticks_and_the_summary_follows(page, app_url):
    open_page(page, app_url, "scratch")
    page.get_by_text("Total: 56,714 parameters").wait_for(timeout=120_000)  # the Carpentries preset
    choose(page, "Start from a lesson's network", "LeNet")
    rerun(page)
    assert "LeNet" in shown_choice(page, "Start from a lesson's network")
    assert "Total: 56,714 parameters" not in page.locator('[data-testid="stMain"]').inner_text()  # it used it
    assert "preset=" in page.url
    assert_no_exception(page)
