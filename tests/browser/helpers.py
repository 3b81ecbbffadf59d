"""Helpers for end-to-end tests in Debian's Chromium driven by Playwright."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
from PIL import Image

SCREENSHOTS = Path(__file__).resolve().parents[1] / "screenshots"


def open_page(page, app_url: str, path: str = "", *, query: str = "") -> None:
    """Open ``app_url/path?query`` and wait until Streamlit has finished running the script."""
    url = f"{app_url}/{path}" + (f"?{query}" if query else "")
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_selector('[data-testid="stApp"]', timeout=60_000)
    # The shell paints before the page script has run: wait for the page's own content.
    page.wait_for_selector('[data-testid="stMain"] [data-testid="stElementContainer"]', timeout=120_000)
    wait_idle(page)


def wait_idle(page, timeout_ms: int = 120_000) -> None:
    """Wait until the app is no longer running (the status widget's 'Running' indicator is gone)."""
    page.wait_for_timeout(300)
    page.wait_for_function(
        """() => {
            const app = document.querySelector('[data-testid="stApp"]');
            if (!app) return false;
            const running = document.querySelector('[data-testid="stStatusWidget"]');
            return !running || !/Running|Connecting/i.test(running.innerText || "");
        }""",
        timeout=timeout_ms,
    )
    page.wait_for_timeout(300)


def assert_no_exception(page) -> None:
    """Fail if Streamlit shows an exception box or a "Page not found" dialog anywhere on the page."""
    boxes = page.locator('[data-testid="stException"]')
    assert boxes.count() == 0, f"exception shown: {boxes.first.inner_text()[:500]}"
    # A bookmark must route through app.py even on a fresh server (ui.router), never this dialog.
    assert page.locator('[role="dialog"]').filter(has_text="Page not found").count() == 0


def screenshot(page, name: str, *, full_page: bool = True) -> np.ndarray:
    """Save ``tests/screenshots/<name>.png`` (git-ignored) and return it as an RGB array."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    png = page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def element_pixels(locator) -> np.ndarray:
    """Screenshot one element (an image, a chart) and return its pixels as an RGB array."""
    png = locator.screenshot()
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)


def pixel_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two screenshots (cropped to a common size), in 0–255."""
    h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    return float(np.abs(a[:h, :w].astype(np.int16) - b[:h, :w].astype(np.int16)).mean())


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def selectbox(page, label: str):
    """The selectbox whose label is ``label``."""
    return page.locator('[data-testid="stSelectbox"]').filter(has=page.locator(f'input[aria-label="{label}"]'))


def choose(page, label: str, option: str) -> None:
    """Pick ``option`` in the selectbox labelled ``label``, as a visitor does: type part of it, click it.

    Typing filters the list, so an option far down a long list (a layer) is as easy to reach as the first.
    """
    box = selectbox(page, label)
    box.scroll_into_view_if_needed()
    field = box.locator(f'input[aria-label="{label}"]')
    choice = page.locator('[role="option"]').filter(has_text=option)
    for _ in range(10):
        field.click()
        field.fill(option)
        try:
            choice.first.wait_for(timeout=3000)
            wanted = choice.first.inner_text().strip()
            choice.first.click()
        except Exception:  # the list did not open (a rerun redrew the box): try again
            page.keyboard.press("Escape")
            wait_idle(page)
            continue
        wait_idle(page)
        if field.input_value().strip() == wanted:
            return
    raise AssertionError(f"could not choose {option!r} in {label!r}")


def shown_choice(page, label: str) -> str:
    """What the selectbox labelled ``label`` shows as chosen."""
    return selectbox(page, label).locator(f'input[aria-label="{label}"]').input_value().strip()


def rerun(page, times: int = 2) -> None:
    """Rerun the script ``times`` times as Streamlit's "R" shortcut does, waiting for each to end."""
    for _ in range(times):
        page.locator("h1").first.click()
        page.keyboard.press("r")
        wait_idle(page)


def go_to(page, title: str) -> None:
    """Click a page in the sidebar navigation, as a visitor does, and wait for it to run."""
    page.locator('[data-testid="stSidebarNav"] a').filter(has_text=title).first.click()
    page.wait_for_timeout(500)
    wait_idle(page)
