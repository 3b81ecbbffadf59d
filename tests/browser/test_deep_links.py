"""A bookmark to a page works even when it is the first request a fresh server gets.

Without ui.router.ensure_app_shell, Streamlit runs the page file without app.py the first
time (streamlit/streamlit#9624): narrow layout, no sections, the wrong sidebar.
"""

from urllib.parse import urlparse

import pytest

from tests.browser.conftest import running_app
from tests.browser.helpers import assert_no_exception, open_page, screenshot

pytestmark = pytest.mark.browser


def test_first_request_to_a_page_is_routed_through_app_py(page, tmp_path):
    with running_app(tmp_path / "server.log") as fresh_url:
        open_page(page, fresh_url, "convolution")
        nav = page.locator('[data-testid="stSidebarNav"]').inner_text()
        assert "Learn" in nav and "2 · Convolution and pooling" in nav  # app.py's sections and titles
        assert "Convolution" in page.locator("h1").first.inner_text()
        assert urlparse(page.url).path == "/convolution"
        assert_no_exception(page)
        screenshot(page, "deep_link_convolution")
