"""The feature-map page's sections rerun on their own (st.fragment): their choices still stick.

A layer switch reruns only sections 2, 3 and section 6's grids; a channel step only section 3.
In a real browser: change the layer, then the channel, let the whole page rerun twice, and the
page still shows both choices, uses them (alt texts, also of section 6, which the layer section
draws from afar) and keeps them in the address bar.
"""

import pytest

from tests.browser.helpers import assert_no_exception, choose, open_page, rerun, screenshot, shown_choice, wait_idle

pytestmark = pytest.mark.browser


def image_alts(page) -> list[str]:
    return page.locator('[data-testid="stImage"] img').evaluate_all("els => els.map(e => e.alt)")


def test_layer_and_channel_sections_keep_their_choices_over_full_reruns(page, app_url):
    open_page(page, app_url, "feature_maps", query="model=fashion_mnist_better&image=Checkerboard")
    page.get_by_text("6 · Two images, the same layer").wait_for(timeout=180_000)
    choose(page, "Layer", "conv2 ·")
    page.locator('img[alt^="All channels of layer conv2 for Checkerboard"]').wait_for()  # section 6 followed
    slider = page.locator('[data-testid="stSlider"]').filter(has_text="Channel").get_by_role("slider")
    enlarged = page.locator('img[alt^="Channel "][alt*="of layer conv2, enlarged"]')
    start = int((enlarged.first.get_attribute("alt") or "").split()[1])  # a new layer opens on its strongest
    wanted = start - 1 if start > 0 else start + 1
    slider.focus()
    slider.press("ArrowLeft" if start > 0 else "ArrowRight")
    page.locator(f'img[alt^="Channel {wanted} of layer conv2, enlarged"]').wait_for()
    wait_idle(page)

    rerun(page)  # two whole-page reruns: the fragments' widgets are drawn again from the kept choices
    page.locator(f'img[alt^="Channel {wanted} of layer conv2, enlarged"]').wait_for()
    assert shown_choice(page, "Layer").startswith("conv2 ·")
    alts = image_alts(page)
    assert any(a.startswith("All channels of layer conv2 for Checkerboard") for a in alts)
    assert any(a.startswith(f"Channel {wanted} of layer conv2 laid over") for a in alts)
    assert "layer=conv2" in page.url and f"channel={wanted}" in page.url
    assert_no_exception(page)
    screenshot(page, "fragment-choices-feature-maps")
