"""serve.py's warm start: the first visitor of the feature-map page does not pay for loading the model.

Starts ``streamlit run serve.py`` as ``make run`` does, watches ``/_stcore/health`` and
``/_cnnviz/ready`` from the first second, then times the first and a second visitor's
feature-map page (until the channel grid is drawn). Without the warm start the first visitor
waits for TensorFlow, EfficientNet-Lite0 and tracing (about ten seconds more than the second).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.browser.conftest import ROOT, _free_port
from tests.browser.helpers import assert_no_exception, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

GRID = 'img[alt^="All "][alt*="channels of layer"]'


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError:
        return 0, ""


def _time_first_page(browser, url: str, name: str) -> float:
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    page = context.new_page()
    start = time.monotonic()
    page.goto(f"{url}/feature_maps", wait_until="domcontentloaded")
    page.locator(GRID).first.wait_for(timeout=120_000)
    seconds = time.monotonic() - start
    assert_no_exception(page)
    screenshot(page, name, full_page=False)
    context.close()
    return seconds


def test_ready_only_when_the_model_is_and_the_first_visitor_does_not_wait_for_it(browser, tmp_path):
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "serve.py", "--server.port", str(port)]
        + ["--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=ROOT,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        started = time.monotonic()
        health_ok = ready_ok = None
        not_ready_seen = False
        while ready_ok is None:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            assert time.monotonic() - started < 300, "not ready after 300 s"
            if health_ok is None and _get(f"{url}/_stcore/health")[0] == 200:
                health_ok = time.monotonic() - started
            status, body = _get(f"{url}/_cnnviz/ready")
            if status == 503:
                not_ready_seen = True
                assert json.loads(body)["ready"] is False
            elif status == 200:
                ready_ok = time.monotonic() - started
                state = json.loads(body)
            time.sleep(0.2)
        assert health_ok is not None and health_ok < ready_ok
        assert not_ready_seen, "the readiness check said ready before the model could have loaded"
        assert state["ready"] and "efficientnet_lite0" in state["loaded"] and state["failed"] == {}

        first = _time_first_page(browser, url, "warm-start-first-visitor")
        second = _time_first_page(browser, url, "warm-start-second-visitor")
        print(
            f"health after {health_ok:.1f} s, ready after {ready_ok:.1f} s; first_model_page_s={first:.2f}, second {second:.2f}"
        )
        # The target is 3 s on an idle 2-core machine; on a shared one the page itself is
        # slower for everyone, so the first visitor is compared with the second: no model load left.
        assert first <= second + 3.0, f"the first visitor waited {first:.1f} s, the second {second:.1f} s"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
