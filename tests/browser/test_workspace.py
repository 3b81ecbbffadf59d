"""Workspaces in a real browser: nothing a visitor made is lost on a reload, a second tab or a server restart.

One server of its own (its own data folder, a fixed port), so the test can restart it under an open tab.
"""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import _free_port, running_app
from tests.browser.helpers import assert_no_exception, open_page, screenshot, wait_idle

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
]  # about 90 s: it trains, and restarts a server (the audit-set check: about 80 s)

RESULTS = "How well did it learn?"


def class_names(page) -> list[str]:
    names = page.locator('[data-testid="stMain"] [data-testid="stTextInput"] input')
    return [names.nth(i).input_value() for i in range(names.count())]


def wait_for_classes(page, n: int) -> None:
    """The page can still be drawing after it went idle: wait for the n-th class card's name."""
    page.locator('[data-testid="stMain"] [data-testid="stTextInput"] input').nth(n - 1).wait_for(timeout=120_000)
    wait_idle(page)


def ws_of(url: str) -> str:
    found = re.search(r"[?&]ws=([A-Za-z0-9_-]+)", url)
    assert found, f"no workspace id in {url}"
    return found.group(1)


def test_reload_second_browser_restart_and_delete(browser, tmp_path):
    port, data = _free_port(), tmp_path / "data"
    env = {"CNNVIZ_DATA_DIR": str(data)}
    log = tmp_path / "server.log"
    server = running_app(log, port=port, env=env)
    url = server.__enter__()
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        open_page(page, url, "trainer", query="epochs=3")
        ws = ws_of(page.url)
        page.get_by_role("button", name="Load the demo dataset").click()
        page.get_by_text("30 images", exact=True).first.wait_for(timeout=240_000)
        wait_idle(page, 240_000)
        page.get_by_role("button", name="Train the model").click()
        page.get_by_text(RESULTS).wait_for(timeout=240_000)
        wait_idle(page, 240_000)
        assert ws_of(page.url) == ws and "epochs=3" in page.url  # ui.settings kept ws beside its own keys

        # 1. A reload (F5) is a new session: the same classes, images, run and model come back.
        page.reload(wait_until="domcontentloaded")
        page.locator('[data-testid="stMain"] [data-testid="stTextInput"] input').first.wait_for(timeout=120_000)
        wait_idle(page)
        page.get_by_text(RESULTS).wait_for(timeout=120_000)
        assert_no_exception(page)
        assert class_names(page) == ["square", "triangle", "circle"]
        assert page.get_by_text("30 images", exact=True).count() == 3
        main = page.locator('[data-testid="stMain"]').inner_text()
        assert "3 of 3 epochs" in main and "My classifier 1" in main and ws_of(page.url) == ws
        page.get_by_text("4 · Test it on new images").wait_for()  # the model was loaded back to test an image
        screenshot(page, "workspace-after-reload")

        # 2. Another browser without the link sees nothing of it; with the link (a bookmark, a second tab) all of it.
        other = browser.new_context(viewport={"width": 1920, "height": 1080})
        stranger = other.new_page()
        open_page(stranger, url, "trainer")
        wait_for_classes(stranger, 2)
        assert class_names(stranger) == ["Class 1", "Class 2"] and stranger.get_by_text(RESULTS).count() == 0
        assert ws_of(stranger.url) != ws
        open_page(stranger, url, "trainer", query=f"ws={ws}")
        stranger.get_by_text(RESULTS).wait_for(timeout=120_000)
        wait_for_classes(stranger, 3)
        assert class_names(stranger) == ["square", "triangle", "circle"]
        other.close()

        # 3. Restart the server under the open tab: it reconnects, the next click works and the work is there.
        server.__exit__(None, None, None)
        server = running_app(log, port=port, env=env)
        server.__enter__()
        page.wait_for_timeout(3000)
        wait_idle(page, 120_000)
        page.get_by_role("button", name="Add a class").click()
        page.locator('[data-testid="stMain"] [data-testid="stTextInput"] input').nth(3).wait_for(timeout=120_000)
        wait_idle(page)
        assert_no_exception(page)
        assert class_names(page) == ["square", "triangle", "circle", "Class 4"]
        assert page.get_by_text(RESULTS).count() == 1
        screenshot(page, "workspace-after-restart")

        # 4. Delete: one sentence, and after a reload (and through the old link) nothing is left.
        page.locator('[data-testid="stSidebar"]').get_by_text("Your workspace").click()
        assert f"ws={ws}" in page.locator('[data-testid="stSidebar"] [data-testid="stCode"]').inner_text()
        assert page.get_by_text("Whoever has this link sees your work").count() == 1
        screenshot(page, "workspace-sidebar", full_page=False)
        page.get_by_role("button", name="Delete my workspace").click()
        page.get_by_text("Your workspace was deleted").wait_for(timeout=60_000)
        wait_idle(page)
        assert ws_of(page.url) != ws
        page.reload(wait_until="domcontentloaded")
        page.locator('[data-testid="stMain"] [data-testid="stTextInput"] input').first.wait_for()
        wait_idle(page)
        assert class_names(page) == ["Class 1", "Class 2"] and page.get_by_text(RESULTS).count() == 0
        open_page(page, url, "trainer", query=f"ws={ws}")
        wait_for_classes(page, 2)
        assert page.get_by_text("This workspace link has expired or was deleted").count() == 1
        assert class_names(page) == ["Class 1", "Class 2"]
        assert_no_exception(page)
    finally:
        context.close()
        server.__exit__(None, None, None)


def test_an_audit_set_from_uploads_comes_back_after_a_reload_and_can_be_cleared(app_url, page, tmp_path):
    from PIL import Image

    files = []
    for i, colour in enumerate([(200, 30, 30), (30, 200, 30), (30, 30, 200)]):
        path = tmp_path / f"probe {i}.png"
        Image.new("RGB", (64, 48), colour).save(path)
        files.append(str(path))
    open_page(page, app_url, "audit", query="audit_probe0_src=upload")
    needs_probe = page.get_by_text("Add images to at least one probe set.")
    needs_probe.wait_for(timeout=120_000)
    page.locator('[data-testid="stMain"] input[type="file"][multiple]').first.set_input_files(files)  # “Images”
    needs_probe.wait_for(state="detached", timeout=120_000)
    wait_idle(page)

    page.reload(wait_until="domcontentloaded")  # the uploader is empty now: the workspace gives the set back
    kept = page.get_by_text("3 pictures kept in your workspace from your last visit", exact=False)
    kept.wait_for(timeout=120_000)
    wait_idle(page)
    assert_no_exception(page)
    assert needs_probe.count() == 0  # the audit could run on the reopened set
    kept.scroll_into_view_if_needed()
    screenshot(page, "workspace-audit-set-after-reload", full_page=False)

    page.get_by_role("button", name="Clear this set").click()
    needs_probe.wait_for(timeout=120_000)
    kept.wait_for(state="detached", timeout=60_000)
    wait_idle(page)
    page.reload(wait_until="domcontentloaded")  # cleared is cleared in the workspace too
    needs_probe.wait_for(timeout=120_000)
    wait_idle(page)
    assert kept.count() == 0 and needs_probe.count() == 1
