"""Audit page in a real browser with the real EfficientNet-Lite0: run an audit, read it, take it home."""

import csv
import io

import pytest

from tests.browser.helpers import assert_no_exception, go_to, open_page, rerun, screenshot, wait_idle

pytestmark = pytest.mark.browser


def test_run_an_audit_see_charts_and_download_report_and_csv(page, app_url):
    # Small sets from the URL (a lecturer's saved link): 3 × 3 shapes as references, 8 abstract probes.
    open_page(
        page,
        app_url,
        "audit",
        query="audit_ref_per_shape=3&audit_probe0_n=8&audit_probe0_name=Abstract+%3Cb%3Eprobes%3C%2Fb%3E",
    )
    page.get_by_text("7 · Change only the style").wait_for(timeout=180_000)
    wait_idle(page)
    assert "Audit where it fails" in page.locator("h1").first.inner_text()
    assert_no_exception(page)

    screenshot(page, "audit-sets")
    page.get_by_role("button", name="Run the audit").click()
    page.get_by_text("6 · Take the report home").wait_for(timeout=240_000)
    wait_idle(page)
    assert_no_exception(page)
    main = page.locator('[data-testid="stMain"]')
    text = main.inner_text()
    for heading in (
        "Label distribution per set",
        "Confidence per set",
        "Telling probes from references (AUROC)",
        "Share the model abstains on",
        "The most confident failures, with Grad-CAM",
    ):
        assert heading in text
    page.get_by_text("4 · What the measures say").scroll_into_view_if_needed()
    screenshot(page, "audit")
    # Four audit charts + the style panel's chart (Vega draws them asynchronously).
    page.wait_for_function("document.querySelectorAll('[data-testid=\"stVegaLiteChart\"]').length >= 5", timeout=60_000)
    charts = page.locator('[data-testid="stVegaLiteChart"]')
    for name, anchor in (
        ("audit-charts", "Telling probes from references (AUROC)"),
        ("audit-gallery", "5 · The most confident failures, with Grad-CAM"),
        ("audit-style", "7 · Change only the style"),
    ):
        page.get_by_text(anchor, exact=True).scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        screenshot(page, name)
    assert charts.first.bounding_box()["height"] > 200
    gallery = page.locator('[data-testid="stImage"] img[alt*="Grad-CAM heat map"]')
    assert gallery.count() >= 1

    with page.expect_download() as download:
        page.get_by_role("button", name="Download the report (HTML)").click()
    html = open(download.value.path(), encoding="utf-8").read()
    assert "Abstract &lt;b&gt;probes&lt;/b&gt;" in html and "Abstract <b>probes</b>" not in html
    assert "For the seminar" in html and "Who chose the categories?" in html
    assert "data:image/svg+xml;base64," in html and "<script" not in html.lower()
    assert "EfficientNet-Lite0" in html

    with page.expect_download() as download:
        page.get_by_role("button", name="Download the table (CSV)").click()
    rows = list(csv.DictReader(io.StringIO(open(download.value.path(), encoding="utf-8").read())))
    assert len(rows) == 9 + 8
    assert {r["set"] for r in rows} == {"Reference", "Abstract <b>probes</b>"}
    assert "probability: tabby" in rows[0] and 0 < float(rows[0]["confidence"]) <= 1
    wait_idle(page)
    assert_no_exception(page)


def _source_box(page, nth: int):
    """The n-th "Images from" selectbox (0: the reference set, 1…: the probe sets)."""
    return (
        page.locator('[data-testid="stSelectbox"]').filter(has=page.locator('input[aria-label="Images from"]')).nth(nth)
    )


def _choose_source(page, nth: int, option: str) -> None:
    box = _source_box(page, nth)
    box.scroll_into_view_if_needed()
    choice = page.locator('[role="option"]').filter(has_text=option)
    for _ in range(10):
        box.locator('button[aria-label="Open"]').click()
        try:
            choice.first.wait_for(timeout=3000)
            break
        except Exception:  # list did not open: click again
            page.keyboard.press("Escape")
    choice.first.click()
    wait_idle(page)


def _shown_source(page, nth: int) -> str:
    return _source_box(page, nth).locator('input[aria-label="Images from"]').input_value().strip()


def test_the_sets_stick_across_reruns_and_a_visit_to_another_page(page, app_url):
    open_page(page, app_url, "audit", query="audit_probe0_n=100000&threshold=abc")  # crafted: both fall back
    page.get_by_text("7 · Change only the style").wait_for(timeout=180_000)
    wait_idle(page)
    assert_no_exception(page)
    _choose_source(page, 0, "Generated pictures (seeded)")
    page.locator('[data-testid="stRadio"] label').filter(has_text="2").first.click()
    wait_idle(page)
    _choose_source(page, 2, "Upload a zip (class folders)")
    rerun(page)
    assert _shown_source(page, 0) == "Generated pictures (seeded)"
    assert _shown_source(page, 1) == "Generated pictures (seeded)"  # probe set 1 kept its own default
    assert _shown_source(page, 2) == "Upload a zip (class folders)"
    assert "audit_ref_n=" not in page.url  # "how many" starts at its own default, not the shapes' count
    assert "audit_ref_src=generated" in page.url and "audit_probe1_src=zip" in page.url and "probe_sets=2" in page.url
    assert "threshold=" not in page.url and "audit_probe0_n=" not in page.url  # the crafted values were dropped

    go_to(page, "1 · Neuron and activation")
    go_to(page, "5 · Audit where it fails")
    page.get_by_text("7 · Change only the style").wait_for(timeout=180_000)
    rerun(page, 1)
    assert _shown_source(page, 0) == "Generated pictures (seeded)"
    assert _shown_source(page, 2) == "Upload a zip (class folders)"
    assert page.locator('[data-testid="stRadio"] input[type="radio"]').nth(1).is_checked()
    assert_no_exception(page)
    screenshot(page, "sticky-audit")
