"""Presenter mode seen from the back of a hall: at 1920×1080 and 1280×720 the page's main picture is on
the first screen and body text is at least 24 px; → moves to the next step and changes the URL; a
saved lecture plan's link opened in a fresh browser shows the same views, in order, with their settings.
"""

from urllib.parse import parse_qs, urlparse

import pytest

from tests.browser.helpers import assert_no_exception, choose, go_to, open_page, screenshot, shown_choice, wait_idle

pytestmark = pytest.mark.browser

SIZES = [(1920, 1080), (1280, 720)]
# The picture or chart a hall must see first, per page (step 1 in presenter mode).
MAIN = {
    "": '.st-key-home_tour [data-testid="stImage"] img',
    "neuron": '[data-testid="stVegaLiteChart"][aria-label^="Error after each"]',
    "convolution": 'img[alt^="The picture the kernel will slide over"]',
    "feature_maps": 'img[alt^="The input image"]',
    "trainer": 'img[alt^="Training images: the first pictures of the demo dataset"]',
    "scratch": 'img[alt^="A grid with one row of sample images per class"]',
    "audit": 'img[alt^="The sets to audit"]',
}
# Pages that load a network (or a Keras data set) when they are the first to: mark them slow.
SLOW = {"feature_maps", "trainer", "scratch", "audit"}
# Generated pictures only in the screenshots (docs/screenshots): the scratch page's demo shapes.
QUERY = {"scratch": "&data=demo"}
BODY_TEXT = """() => Array.from(document.querySelectorAll(
    '[data-testid="stMain"] [data-testid="stMarkdownContainer"] p, [data-testid="stMain"] [data-testid="stWidgetLabel"] p'))
  .filter(e => e.offsetParent !== null && e.textContent.trim())
  .map(e => [parseFloat(getComputedStyle(e).fontSize), e.textContent.trim().slice(0, 40)])"""


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}


def inside_first_screen(page, selector: str) -> tuple[bool, dict]:
    box = page.locator(selector).first.bounding_box()
    view = page.viewport_size
    ok = box is not None and box["y"] >= 0 and box["x"] >= 0
    ok = ok and box["y"] + box["height"] <= view["height"] and box["x"] + box["width"] <= view["width"]
    return ok, box or {}


# feature_maps loads EfficientNet-Lite0 when it is the first to: 10–50 s on a busy machine.
@pytest.mark.parametrize("path", [pytest.param(p, marks=pytest.mark.slow) if p in SLOW else p for p in MAIN])
def test_main_picture_on_the_first_screen_and_large_type(page, app_url, path):
    open_page(page, app_url, path, query="present=1" + QUERY.get(path, ""))
    page.locator(MAIN[path]).first.wait_for(timeout=120_000)
    wait_idle(page)
    for width, height in SIZES:
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(800)  # the layout reflows, the charts resize
        ok, box = inside_first_screen(page, MAIN[path])
        screenshot(page, f"present-{path or 'home'}-{width}", full_page=False)
        assert ok, f"{path or 'home'} at {width}×{height}: main picture at {box}"
    sizes = page.evaluate(BODY_TEXT)
    assert sizes and min(size for size, _ in sizes) >= 24, [s for s in sizes if s[0] < 24][:5]
    if path == "":
        ok, box = inside_first_screen(page, "a:has-text('Start with page 1')")
        assert ok, f"'Start with page 1' at {box} at 1280×720"
    assert_no_exception(page)


def step_shown(page) -> str:
    return page.locator('[data-testid="stSidebar"]').get_by_text("Step ", exact=False).first.inner_text()


def test_arrow_key_and_clicker_keys_move_through_the_steps(page, app_url):
    open_page(page, app_url, "convolution", query="present=1")
    page.locator(MAIN["convolution"]).wait_for()
    assert "Step 1 of 6" in step_shown(page)
    page.locator("h1").first.click()  # the page has the focus, as after a click on the slide
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => location.search.includes('step=2')", timeout=30_000)
    wait_idle(page)
    assert "Step 2 of 6" in step_shown(page)
    assert page.locator('img[alt^="Convolved feature map"]').first.is_visible()  # step 2's pictures
    assert not page.locator(MAIN["convolution"]).is_visible()  # step 1 is folded away
    page.keyboard.press("PageDown")  # what a presentation clicker sends
    page.wait_for_function("() => location.search.includes('step=3')", timeout=30_000)
    page.keyboard.press("PageUp")
    page.wait_for_function("() => location.search.includes('step=2')", timeout=30_000)
    wait_idle(page)
    assert "Step 2 of 6" in step_shown(page) and query(page.url)["present"] == "1"
    assert_no_exception(page)


def add_view(page, title: str) -> None:
    sidebar = page.locator('[data-testid="stSidebar"]')
    add = sidebar.get_by_role("button", name="Add this view to my plan")
    if not add.is_visible():
        sidebar.get_by_text("Lecture plan").first.click()
    field = sidebar.get_by_label("Title of this view")
    field.fill(title)
    field.press("Enter")
    wait_idle(page)
    add.click()
    wait_idle(page)


@pytest.mark.slow  # two sessions, four page runs: 18–36 s
def test_a_saved_plan_link_opens_the_same_views_in_order(page, app_url, browser):
    open_page(page, app_url, "neuron", query="w1=-1.5&w2=2&bias=0.5&activation=tanh")
    add_view(page, "My weights")
    go_to(page, "2 · Convolution and pooling")
    choose(page, "Image", "Checkerboard")
    choose(page, "Kernel preset", "Sobel x")
    add_view(page, "Edges")
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("2 views in this plan").wait_for()
    sidebar.get_by_role("button", name="↓").first.click()  # "My weights" down below "Edges"
    sidebar.get_by_label("1 · 2 · Convolution").wait_for()
    assert sidebar.get_by_label("1 · 2 · Convolution").input_value() == "Edges"
    assert sidebar.get_by_label("2 · 1 · Neuron").input_value() == "My weights"
    sidebar.get_by_role("button", name="↑").nth(1).click()  # and back up
    sidebar.get_by_label("1 · 1 · Neuron").wait_for()
    wait_idle(page)
    # The sidebar also shows the workspace's own link: the plan's is the one that carries a plan.
    link = sidebar.locator('[data-testid="stCode"] code').filter(has_text="plan=").text_content().strip()
    assert "plan=" in link and "ws=" not in link and "w1" not in link  # the settings are inside the code

    fresh = browser.new_context(viewport={"width": 1280, "height": 720})  # another browser, another session
    try:
        other = fresh.new_page()
        other.set_default_timeout(60_000)
        other.goto(link, wait_until="domcontentloaded")
        other.wait_for_function("() => location.pathname.endsWith('/neuron')", timeout=60_000)
        other.locator('[data-testid="stSidebar"]').get_by_text("View 1 of 2").wait_for()
        wait_idle(other)
        first = query(other.url)
        assert {k: first.get(k) for k in ("w1", "w2", "bias", "activation")} == {
            "w1": "-1.5",
            "w2": "2",
            "bias": "0.5",
            "activation": "tanh",
        }
        assert shown_choice(other, "activation function f") == "tanh"  # the page used them, not only the URL
        other.locator('[data-testid="stSidebar"]').get_by_role("button", name="Next view").click()
        other.wait_for_function("() => location.pathname.endsWith('/convolution')", timeout=60_000)
        other.locator('[data-testid="stSidebar"]').get_by_text("View 2 of 2").wait_for()
        wait_idle(other)
        second = query(other.url)
        assert second.get("kernel") == "sobel-x" and second.get("image") == "Checkerboard", second
        assert "w1" not in second  # one view's settings do not leak into the next
        assert "Sobel x" in shown_choice(other, "Kernel preset") and shown_choice(other, "Image") == "Checkerboard"
        assert_no_exception(other)
    finally:
        fresh.close()


def test_a_damaged_plan_link_gets_one_sentence_and_the_page_runs(page, app_url):
    open_page(page, app_url, "convolution", query="plan=eJzLSM3JyVcozy_KSQEAGgQEXQ&view=1")
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("This link's lecture plan is damaged").wait_for()
    page.locator('img[alt^="Input feature map"]').first.wait_for()  # the page itself still runs
    assert_no_exception(page)


def test_an_arrow_key_on_a_focused_slider_moves_the_slider_not_the_step(page, app_url):
    open_page(page, app_url, "convolution", query="present=1")
    page.locator(MAIN["convolution"]).wait_for()
    wait_idle(page)
    thumb = page.locator('[data-testid="stSlider"]', has_text="Working size").get_by_role("slider")
    assert "px=" not in page.url  # the default working size
    thumb.focus()
    thumb.press("ArrowRight")
    page.wait_for_function("() => location.search.includes('px=')", timeout=30_000)  # the slider moved
    wait_idle(page)
    page.wait_for_timeout(500)  # a step change would have reached the URL by now
    assert "step=" not in page.url, page.url
    assert "Step 1 of 6" in step_shown(page)
    assert_no_exception(page)


@pytest.mark.slow  # the from-scratch page imports Keras when it is the first to: 10–25 s
def test_the_from_scratch_page_shows_one_section_per_step_and_says_what_to_do_first(page, app_url):
    open_page(page, app_url, "scratch", query="present=1&data=demo&step=2")
    main = page.locator('[data-testid="stMain"]')
    main.get_by_role("heading", name="2 · The network").wait_for(timeout=120_000)
    wait_idle(page)
    assert "Step 2 of 5" in step_shown(page)
    assert not page.locator(MAIN["scratch"]).is_visible()  # step 1's picture is folded away
    assert not main.get_by_role("heading", name="3 · Train it and watch").is_visible()
    page.locator("h1").first.click()
    for n in (3, 4):  # one key at a time: a key pressed during a rerun can be dropped
        page.keyboard.press("PageDown")
        page.wait_for_function(f"() => location.search.includes('step={n}')", timeout=30_000)
        wait_idle(page)
    main.get_by_text("Train a network first (step 3)").wait_for()
    assert not main.get_by_role("heading", name="2 · The network").is_visible()
    assert_no_exception(page)
