"""A file name that is Markdown and HTML shows as text on the trainer and the audit page.

The name carries a link, an image that would make every viewer's browser call an outside address,
and an ``onerror`` script. It is a broken image, so it ends in the pages' lists of skipped files.
Passes when no ``<a>`` or ``<img>`` carries it, no request leaves for its addresses and no dialog opens.
"""

from __future__ import annotations

import io
import zipfile

import pytest

from tests.bad_inputs.hostile import INJECTION_NAME, png
from tests.browser.helpers import assert_no_exception, open_page, wait_idle

pytestmark = pytest.mark.browser

BAD_HOSTS = ("evil.example", "127.0.0.1:9")


def _zip(member_prefix: str = "") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr(member_prefix + INJECTION_NAME, b"this is not a picture")
    return buf.getvalue()


def _watch(page) -> dict:
    seen: dict[str, list[str]] = {"requests": [], "dialogs": []}

    def on_dialog(dialog) -> None:
        seen["dialogs"].append(dialog.message)
        dialog.dismiss()

    page.on("request", lambda request: seen["requests"].append(request.url))
    page.on("dialog", on_dialog)
    return seen


def _assert_shown_as_text(page, seen: dict) -> None:
    for host in BAD_HOSTS:
        assert page.locator(f'a[href*="{host}"]').count() == 0, f"a link to {host}"
        assert page.locator(f'img[src*="{host}"]').count() == 0, f"an image from {host}"
    assert page.locator("img[src='x'], [onerror]").count() == 0, "the <img onerror> became an element"
    assert page.locator('[data-testid="stMain"] a').filter(has_text="Log in again").count() == 0
    page.wait_for_timeout(500)  # let any lazily started fetch show up
    leaked = [url for url in seen["requests"] if any(host in url for host in BAD_HOSTS)]
    assert not leaked, f"requests left for {leaked}"
    assert not seen["dialogs"], f"a script ran: {seen['dialogs']}"
    main = page.locator('[data-testid="stMain"]')
    text = main.inner_text()
    assert "[Log in again]" in text and "<img src=x onerror=alert(1)>" in text, "the name is not shown literally"
    assert_no_exception(page)


def test_trainer_shows_an_injected_file_name_as_text(page, app_url):
    seen = _watch(page)
    open_page(page, app_url, "trainer")
    uploader = (
        page.locator('[data-testid="stFileUploader"]')
        .filter(has_text="A zip in the lesson")
        .locator('input[type="file"]')
    )
    uploader.set_input_files(
        {"name": "collection.zip", "mimeType": "application/zip", "buffer": _zip("training/cats/")}
    )
    page.get_by_text("Files that were not used").first.wait_for(timeout=240_000)
    wait_idle(page, 240_000)
    # The same name uploaded straight into a class (a browser keeps only what follows the last "/").
    first_class = page.locator('[data-testid="stFileUploader"]').filter(has_text="Add images").first
    first_class.locator('input[type="file"]').set_input_files(
        {"name": INJECTION_NAME.rsplit("/", 1)[-1], "mimeType": "image/png", "buffer": b"not a picture"}
    )
    page.get_by_text("Some uploads were not images this app can read").first.wait_for(timeout=120_000)
    wait_idle(page)
    for label in ("Files that were not used", "Some uploads were not images"):
        summary = page.locator("summary").filter(has_text=label).first
        if summary.count() and summary.get_attribute("aria-expanded") == "false":
            summary.click()
    wait_idle(page)
    _assert_shown_as_text(page, seen)


def test_audit_shows_an_injected_file_name_from_a_probe_zip_as_text(page, app_url):
    seen = _watch(page)
    open_page(page, app_url, "audit", query="audit_probe0_src=zip")
    page.get_by_text("7 · Change only the style").wait_for(timeout=180_000)
    wait_idle(page)
    uploader = page.locator('[data-testid="stFileUploader"]').filter(has_text="A zip of images in class folders")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr(INJECTION_NAME, b"this is not a picture")
        archive.writestr("good.png", png(1, (64, 64)))
    uploader.locator('input[type="file"]').set_input_files(
        {"name": "probes.zip", "mimeType": "application/zip", "buffer": buf.getvalue()}
    )
    page.get_by_text("files in the zip were not used").first.wait_for(timeout=120_000)
    wait_idle(page)
    page.locator("summary").filter(has_text="files in the zip were not used").first.click()
    wait_idle(page)
    _assert_shown_as_text(page, seen)
