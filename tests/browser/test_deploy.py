"""deploy/serve.sh: nginx in front of two cnnviz processes; each browser stays on its process.

Starts the real script (two ``streamlit run serve.py`` processes and Debian's nginx on free
127.0.0.1 ports), drives two Chromium contexts through the proxy until they sit on different
processes, gives each its own uploaded picture and uploaded model, and checks from nginx's
access log that every request of a browser (page, scripts, uploads, media, WebSocket) reached
that browser's process. Then one process is killed and the other browser keeps working.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from tests.browser.conftest import ROOT, _free_port
from tests.browser.helpers import assert_no_exception, choose, rerun, screenshot, shown_choice, wait_idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NGINX = os.environ.get("NGINX", "/usr/sbin/nginx")
MODEL_LABEL = "Model"
IMAGE_LABEL = "Image"
LOG_LINE = re.compile(
    r'"(?P<method>\S+) (?P<path>\S+) [^"]*" (?P<status>\d+) \d+ route=(?P<route>\S+) upstream=(?P<up>.*) rt='
)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """``deploy/serve.sh`` with two processes; yields ``(proxy_url, run_dir, {port: pid})``."""
    if not Path(NGINX).exists():
        pytest.skip(f"nginx is not installed ({NGINX}); apt-get install nginx-light to run the deployment test")
    run_dir = tmp_path_factory.mktemp("deploy")
    listen, ports = _free_port(), [_free_port(), _free_port()]
    env = dict(
        os.environ,
        CNNVIZ_LISTEN=f"127.0.0.1:{listen}",
        CNNVIZ_PORTS=" ".join(map(str, ports)),
        CNNVIZ_RUN_DIR=str(run_dir),
        NGINX=NGINX,
        CNNVIZ_WARM_MODELS="efficientnet_lite0",  # the page's default; the bundled CNNs are not used here
    )
    out = open(run_dir / "serve.out", "w")
    proc = subprocess.Popen(["bash", str(ROOT / "deploy" / "serve.sh")], cwd=ROOT, env=env, stdout=out, stderr=out)
    try:
        deadline = time.time() + 400
        while "cnnviz: http://" not in (run_dir / "serve.out").read_text():
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"deploy/serve.sh did not start:\n{(run_dir / 'serve.out').read_text()[-3000:]}")
            time.sleep(0.5)
        pids = {p: int((run_dir / f"cnnviz-{p}.pid").read_text()) for p in ports}
        yield f"http://127.0.0.1:{listen}", run_dir, pids
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        out.close()


def _log(run_dir: Path) -> list[dict[str, str]]:
    lines = (run_dir / "access.log").read_text().splitlines()
    return [m.groupdict() for m in map(LOG_LINE.search, lines) if m]


def _route(context) -> str:
    return next(c["value"] for c in context.cookies() if c["name"] == "cnnviz_route")


def _upstream_of(run_dir: Path, route: str) -> str:
    """The process that served this browser's first page (nginx logs a request when it ends)."""
    for _ in range(40):
        for line in _log(run_dir):
            if line["route"] == route and line["up"] != "-":
                return line["up"]
        time.sleep(0.25)
    raise AssertionError(f"no request with route {route} in nginx's access log")


def _tiny_model(path: Path, classes: list[str], seed: int) -> Path:
    from cnnviz.model.registry import save_model

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(inputs, keras.layers.Dense(len(classes), activation="softmax", name="predictions")(x))
    save_model(model, path, classes)
    return path


def _open_session(browser, url: str):
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.goto(f"{url}/feature_maps", wait_until="domcontentloaded")
    page.locator('img[alt^="All "][alt*="channels of layer"]').first.wait_for(timeout=180_000)
    wait_idle(page)
    return context, page


def _give_own_model_and_image(page, model_file: Path, image_file: Path) -> None:
    page.get_by_text("Upload your own model (.keras)").first.click()
    uploader = page.locator('[data-testid="stFileUploader"]').filter(has_text="Upload a Keras model")
    uploader.locator('input[type="file"]').set_input_files(str(model_file))
    page.wait_for_function(
        f"""() => [...document.querySelectorAll('input[aria-label="{MODEL_LABEL}"]')]
                 .some(i => i.value.includes("{model_file.stem}"))""",
        timeout=180_000,
    )
    wait_idle(page)
    page.get_by_text("Add your own image (upload or camera)").first.click()
    uploader = page.locator('[data-testid="stFileUploader"]').filter(has_text="Upload an image").first
    uploader.locator('input[type="file"]').set_input_files(str(image_file))
    page.locator(f'img[alt="The input image: {image_file.name}."]').wait_for(timeout=180_000)
    wait_idle(page)


def _assert_keeps_its_own(page, model_file: Path, image_file: Path) -> None:
    assert shown_choice(page, MODEL_LABEL) == f"Your model · {model_file.stem}"
    assert shown_choice(page, IMAGE_LABEL) == image_file.name
    page.locator(f'img[alt="The input image: {image_file.name}."]').wait_for(timeout=60_000)
    page.locator('img[alt^="All "][alt*="channels of layer conv"]').first.wait_for(timeout=60_000)
    assert_no_exception(page)


def _model_options(page) -> list[str]:
    page.locator(f'input[aria-label="{MODEL_LABEL}"]').click()
    page.locator('[role="option"]').first.wait_for(timeout=10_000)
    options = [o.strip() for o in page.locator('[role="option"]').all_inner_texts()]
    page.keyboard.press("Escape")
    wait_idle(page)
    return options


def _media_status(backend: str, media_path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://{backend}{media_path}", timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def test_two_browsers_stay_on_their_processes_and_survive_the_other_dying(deployment, browser, tmp_path):
    url, run_dir, pids = deployment
    files = {}
    for who, colour, seed in (("a", (200, 30, 30), 1), ("b", (30, 160, 60), 2)):
        image = np.zeros((64, 64, 3), np.uint8)
        image[:, :32] = colour
        Image.fromarray(image).save(tmp_path / f"picture-{who}.png")
        model = _tiny_model(tmp_path / f"tiny_{who}.keras", [f"{who}-yes", f"{who}-no"], seed)
        files[who] = (model, tmp_path / f"picture-{who}.png")

    # Two browsers on different processes: a new browser's process depends on its random route,
    # so open fresh ones until the second lands on the other process.
    context_a, page_a = _open_session(browser, url)
    route_a = _route(context_a)
    up_a = _upstream_of(run_dir, route_a)
    for _ in range(12):
        context_b, page_b = _open_session(browser, url)
        route_b = _route(context_b)
        up_b = _upstream_of(run_dir, route_b)
        if up_b != up_a:
            break
        context_b.close()
    assert up_b != up_a, "twelve new browsers all landed on the first browser's process"
    assert {up_a, up_b} == {f"127.0.0.1:{p}" for p in pids}

    _give_own_model_and_image(page_a, *files["a"])
    _give_own_model_and_image(page_b, *files["b"])
    for page, who in ((page_a, "a"), (page_b, "b")):
        rerun(page)
        _assert_keeps_its_own(page, *files[who])
    options_b = _model_options(page_b)
    assert "Your model · tiny_b" in options_b and not any("tiny_a" in o for o in options_b)
    screenshot(page_a, "deploy-a-own-model")
    screenshot(page_b, "deploy-b-own-model")

    # The uploaded picture lives in its own process's memory, and nowhere else.
    src = page_a.locator('img[alt="The input image: picture-a.png."]').get_attribute("src") or ""
    media = "/" + src.split("/", 3)[-1] if src.startswith("http") else src
    assert media.startswith("/media/"), src
    assert _media_status(up_a, media) == 200 and _media_status(up_b, media) == 404

    # Every request each browser made so far (its WebSocket is logged when it closes) reached its process.
    before_kill = _log(run_dir)
    for route, up in ((route_a, up_a), (route_b, up_b)):
        mine = [line for line in before_kill if line["route"] == route]
        assert {line["up"] for line in mine} == {up}, f"one browser's requests reached {set(x['up'] for x in mine)}"
        assert any(line["path"].startswith("/_stcore/upload_file") and line["method"] == "PUT" for line in mine)

    # A's process dies; B carries on with its own model and picture, still on its own process.
    port_a = int(up_a.rsplit(":", 1)[1])
    os.kill(pids[port_a], signal.SIGKILL)
    time.sleep(2)
    rerun(page_b)
    _assert_keeps_its_own(page_b, *files["b"])
    # Something only a living server can draw (the old page stays on screen when the server is gone):
    # another picture, then B's own again.
    choose(page_b, IMAGE_LABEL, "Geometric shapes")
    page_b.locator('img[alt="The input image: Geometric shapes."]').wait_for(timeout=60_000)
    choose(page_b, IMAGE_LABEL, files["b"][1].name)
    _assert_keeps_its_own(page_b, *files["b"])
    screenshot(page_b, "deploy-b-after-a-died")
    screenshot(page_a, "deploy-a-after-its-process-died")  # greyed out: Streamlit says the connection was lost
    context_a.close()
    context_b.close()
    time.sleep(1)
    after = _log(run_dir)[len(before_kill) :]
    assert {line["up"] for line in after if line["route"] == route_b} == {up_b}
    assert any(line["route"] == route_b and line["path"] == "/_stcore/stream" for line in after + before_kill)
