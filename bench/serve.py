"""A server under a lecture hall: memory per session and after close, CPU per click, latency under load.

Starts its own server (:data:`START`, on 127.0.0.1, a free port) and drives real headless
Chromium sessions (Debian's ``/usr/bin/chromium`` through Playwright's async API). Figures:

* ``ready_after_start_s``: seconds from starting the server until its readiness check
  (``/_cnnviz/ready``, :mod:`serve`) answers 200, i.e. the warm start has loaded the default model;
  ``first_model_page_s``: seconds from then until the first visitor's feature-map page has drawn
  its maps, i.e. the grid's picture is loaded (what a visitor behind a proxy that waits for
  readiness meets; the browser's own loading of Streamlit's scripts included).
* ``fm_layer_cpu_s``, ``fm_channel_cpu_s``, ``fm_switch_cpu_s`` (the larger of the two),
  ``conv_change_cpu_s``: server CPU time (``/proc/<pid>/stat`` utime + stime, the process's idle
  tick subtracted) of one layer switch, one channel step and one kernel preset change, each the
  median of a few, measured on an idle page with an uploaded painting.
* ``per_session_mb``: RSS (``/proc/<pid>/status``) added per feature-map session with one uploaded
  painting (from ``../shared/images``, read in place), over the warm baseline (the server after one
  such session came and went); ``returned_after_close_mb``: RSS above that baseline after those
  sessions closed and Streamlit dropped them (``server.disconnectedSessionTTL`` is shortened to
  :data:`SESSION_TTL_S` for the run, so the bench does not wait two minutes).
* ``p95_fm_switch_s_1``, ``p95_fm_switch_s_16`` and their ratio: wall seconds from choosing another
  layer until its maps are drawn, one session alone and 16 sessions switching at once.
* ``concurrent_trainings``: 8 visitors load the demo set and start training at once; how many
  finished, ``concurrent_trainings_slowest_s`` (start to results) and ``demo_load_slowest_s``.
* ``peak_rss_mb`` (VmHWM) and the load average (the machine is shared), at start and end.

Run:  .venv/bin/python -m bench.serve [--quick]
Last line: one JSON object with those figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._setup import ROOT, SHARED, temporary_keras_home

# The one line to change for another way of starting the app (e.g. a warm-start script); {python} and
# {port} are filled in. START_ENV is what `make run` gives the process too (see README, "Serving").
START = (
    "{python} -m streamlit run serve.py --server.port {port} --server.address 127.0.0.1 "
    "--server.headless true --browser.gatherUsageStats false"
)
START_ENV = {"MALLOC_ARENA_MAX": "2"}
SESSION_TTL_S = 15  # Streamlit's default keeps a closed tab's session 120 s

CHROMIUM = os.environ.get("CNNVIZ_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"]
PAINTING = SHARED / "images" / "paintings" / "landscape" / "van-gogh-starry-night-1889.jpg"
GRID = 'img[alt*="channels of layer"]'
LAYERS = ["block1_project_conv", "block3_add", "block5_expand_conv", "block8_add", "block11_dwconv", "head_conv"]
DEADLINE_S = 40 * 60


# ---------------------------------------------------------------------------------------- the server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def streamlit_pid(root: int) -> int:
    """The process that runs Streamlit: ``root`` itself, or its first descendant whose command line says so."""
    todo = [root]
    while todo:
        pid = todo.pop(0)
        try:
            if b"streamlit" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        todo.extend(int(c) for c in children)
    return root


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


async def quiet(pid: int, *, still_s: float = 0.02, step: float = 0.5, timeout: float = 60) -> None:
    """Wait until the server uses (almost) no CPU for one step: the page has gone idle."""
    end = time.monotonic() + timeout
    last = cpu_s(pid)
    while time.monotonic() < end:
        await asyncio.sleep(step)
        now = cpu_s(pid)
        if now - last <= still_s:
            return
        last = now


# ---------------------------------------------------------------------------------------- the browser
async def wait_idle(page, timeout_ms: int = 180_000) -> None:
    await page.wait_for_timeout(300)
    await page.wait_for_function(
        """() => {
            const app = document.querySelector('[data-testid="stApp"]');
            if (!app) return false;
            const running = document.querySelector('[data-testid="stStatusWidget"]');
            return !running || !/Running|Connecting/i.test(running.innerText || "");
        }""",
        timeout=timeout_ms,
    )
    await page.wait_for_timeout(300)


async def open_page(context, url: str, path: str, ready: str, timeout_ms: int = 300_000):
    page = await context.new_page()
    page.set_default_timeout(timeout_ms)
    for _ in range(60):
        try:
            await page.goto(f"{url}/{path}", wait_until="domcontentloaded")
            break
        except Exception:  # noqa: BLE001 - the server is not listening yet
            await asyncio.sleep(0.5)
    await page.wait_for_selector(ready, timeout=timeout_ms)
    await wait_idle(page)
    return page


async def maps_drawn(page, timeout_ms: int = 300_000) -> None:
    """The feature-map grid's picture is on the page and decoded: what the visitor came to see."""
    await page.wait_for_function(
        f"""() => {{
            const grid = document.querySelector('{GRID}');
            return grid !== null && grid.complete && grid.naturalWidth > 0;
        }}""",
        timeout=timeout_ms,
    )


async def choose(page, label: str, option: str) -> None:
    """Pick ``option`` in the selectbox labelled ``label``: type part of it, click it (as tests/browser do)."""
    field = page.locator(f'[data-testid="stSelectbox"] input[aria-label="{label}"]')
    choice = page.locator('[role="option"]').filter(has_text=option)
    for _ in range(10):
        await field.scroll_into_view_if_needed()
        await field.click()
        await field.fill(option)
        try:
            await choice.first.wait_for(timeout=5000)
            await choice.first.click()
            return
        except Exception:  # noqa: BLE001 - a rerun redrew the box: try again
            await page.keyboard.press("Escape")
            await wait_idle(page)
    raise AssertionError(f"could not choose {option!r} in {label!r}")


async def upload_painting(page) -> None:
    await page.get_by_text("Add your own image").first.click()
    uploader = page.locator('[data-testid="stFileUploader"]').filter(has_text="Upload an image").first
    await uploader.locator('input[type="file"]').set_input_files(str(PAINTING))
    await page.wait_for_selector(f'img[alt="The input image: {PAINTING.name}."]', timeout=180_000)
    await wait_idle(page)


async def switch_layer(page, layer: str) -> float:
    """Choose ``layer``; wall seconds until its maps are drawn."""
    start = time.monotonic()
    await choose(page, "Layer", layer + " ·")
    await page.wait_for_selector(f'img[alt*="channels of layer {layer},"]', timeout=300_000)
    await wait_idle(page, 300_000)
    return time.monotonic() - start


async def cpu_of(pid: int, action) -> float:
    """Server CPU seconds of ``action()`` on an idle page, less what the idle process burns meanwhile."""
    await quiet(pid)
    idle_start, t0 = cpu_s(pid), time.monotonic()
    await asyncio.sleep(2.0)
    idle_rate = (cpu_s(pid) - idle_start) / (time.monotonic() - t0)
    before, t0 = cpu_s(pid), time.monotonic()
    await action()
    await quiet(pid)
    return max(0.0, cpu_s(pid) - before - idle_rate * (time.monotonic() - t0))


async def step_channel(page) -> None:
    """One arrow key on the channel slider (left, or right from channel 0); wait for that channel's picture."""
    alt = await page.locator('img[alt^="Channel "]').first.get_attribute("alt")
    now = int((alt or "Channel 0").split()[1])
    slider = page.locator('[data-testid="stSlider"]').filter(has_text="Channel").get_by_role("slider")
    await slider.focus()
    await slider.press("ArrowLeft" if now > 0 else "ArrowRight")
    await page.wait_for_selector(f'img[alt^="Channel {now - 1 if now > 0 else 1} of layer"]', timeout=120_000)
    await wait_idle(page)


# ---------------------------------------------------------------------------------------- the phases
async def cpu_phase(browser, url: str, pid: int, repeats: int) -> dict:
    context = await browser.new_context(viewport={"width": 1920, "height": 1080})
    page = await open_page(context, url, "feature_maps", GRID)
    await upload_painting(page)
    await switch_layer(page, LAYERS[0])  # the first switch pays one-off costs (a new layer's shapes)
    layers, channels = [], []
    for i in range(repeats):
        layer = LAYERS[1 + i % (len(LAYERS) - 1)]
        layers.append(await cpu_of(pid, lambda layer=layer: switch_layer(page, layer)))
        channels.append(await cpu_of(pid, lambda: step_channel(page)))
    print("feature-map CPU seconds: layer", layers, "channel", channels, flush=True)
    conv = await open_page(context, url, "convolution", "text=Colour pictures: three channels")
    await page.close()
    kernels = []
    presets = ["Sobel x", "Box blur", "Sharpen", "Laplacian", "Emboss", "Gaussian blur"]
    await choose(conv, "Kernel preset", presets[0])
    await wait_idle(conv)
    for i in range(repeats):

        async def change(preset: str = presets[1 + i % (len(presets) - 1)]) -> None:
            await choose(conv, "Kernel preset", preset)
            await conv.get_by_role("heading", name=preset).first.wait_for()  # the page used it
            await wait_idle(conv)

        kernels.append(await cpu_of(pid, change))
    await context.close()
    figures: dict[str, Any] = {
        "fm_layer_cpu_s": round(statistics.median(layers), 3),
        "fm_channel_cpu_s": round(statistics.median(channels), 3),
        "conv_change_cpu_s": round(statistics.median(kernels), 3),
        "fm_layer_cpu_all": [round(v, 3) for v in layers],
        "fm_channel_cpu_all": [round(v, 3) for v in channels],
        "conv_change_cpu_all": [round(v, 3) for v in kernels],
    }
    figures["fm_switch_cpu_s"] = round(max(statistics.median(layers), statistics.median(channels)), 3)
    return figures


async def settled_rss(pid: int, wait_s: float) -> float:
    """RSS after ``wait_s`` seconds and the process going quiet."""
    await asyncio.sleep(wait_s)
    await quiet(pid, timeout=30)
    return rss_mb(pid)


async def memory_phase(browser, url: str, pid: int, sessions: int) -> dict:
    contexts = [await browser.new_context(viewport={"width": 1920, "height": 1080}) for _ in range(sessions)]

    async def visit(context) -> None:
        page = await open_page(context, url, "feature_maps", GRID, timeout_ms=600_000)
        await upload_painting(page)
        await switch_layer(page, LAYERS[2])

    for context in contexts:  # one after another: the figure is memory, not a race
        await visit(context)
    loaded = await settled_rss(pid, 3)
    for context in contexts:
        await context.close()
    return {"rss_with_sessions_mb": loaded, "after_close_mb": await settled_rss(pid, SESSION_TTL_S + 20)}


async def latency_phase(browser, url: str, sessions: int, rounds: int) -> list[float]:
    contexts = [await browser.new_context(viewport={"width": 1600, "height": 1000}) for _ in range(sessions)]
    pages = []
    for context in contexts:
        pages.append(await open_page(context, url, "feature_maps", GRID, timeout_ms=600_000))
    times: list[float] = []
    for r in range(rounds):
        layer = LAYERS[1 + r % (len(LAYERS) - 1)]
        times += await asyncio.gather(*(switch_layer(p, layer) for p in pages))
    for context in contexts:
        await context.close()
    return times


async def training_phase(browser, url: str, visitors: int) -> dict:
    contexts = [await browser.new_context(viewport={"width": 1600, "height": 1000}) for _ in range(visitors)]
    pages = [await open_page(c, url, "trainer", "text=Load the demo dataset", timeout_ms=600_000) for c in contexts]

    async def one(page) -> tuple[float, float, bool]:
        start = time.monotonic()
        await page.get_by_role("button", name="Load the demo dataset").click()
        train = page.get_by_role("button", name="Train the model")
        await page.wait_for_function(
            """() => [...document.querySelectorAll('button')].some(
                b => b.innerText.includes('Train the model') && !b.disabled)""",
            timeout=900_000,
        )
        loaded = time.monotonic() - start
        start = time.monotonic()
        await train.click()
        try:
            await page.get_by_text("3 · How well did it learn?").wait_for(timeout=900_000)
        except Exception:  # noqa: BLE001 - counted as not finished
            return loaded, time.monotonic() - start, False
        return loaded, time.monotonic() - start, True

    results = await asyncio.gather(*(one(p) for p in pages), return_exceptions=True)
    for context in contexts:
        await context.close()
    done = [r for r in results if isinstance(r, tuple)]
    return {
        "concurrent_trainings": sum(1 for r in done if r[2]),
        "concurrent_trainings_started": visitors,
        "concurrent_trainings_slowest_s": round(max((r[1] for r in done), default=float("nan")), 1),
        "demo_load_slowest_s": round(max((r[0] for r in done), default=float("nan")), 1),
        "training_errors": [str(r)[:200] for r in results if not isinstance(r, tuple)],
    }


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def wait_ready(url: str, proc: subprocess.Popen, timeout_s: float = 300) -> float:
    """When ``/_cnnviz/ready`` first answers 200 (a server started without :mod:`serve` has no such
    route: then when ``/_stcore/health`` does)."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"The server stopped while starting (exit {proc.returncode}).")
        for route in ("/_cnnviz/ready",) if "serve.py" in START else ("/_stcore/health",):
            try:
                with urllib.request.urlopen(url + route, timeout=2) as answer:
                    if answer.status == 200:
                        return time.monotonic()
            except (urllib.error.URLError, OSError):
                pass
        time.sleep(0.2)
    raise SystemExit(f"The server was not ready after {timeout_s:.0f} s.")


async def main(args: argparse.Namespace) -> dict:
    from playwright.async_api import async_playwright

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = Path(tempfile.mkdtemp(prefix="cnnviz-bench-serve-")) / "server.log"
    env = dict(
        os.environ, **START_ENV, PYTHONUNBUFFERED="1", STREAMLIT_SERVER_DISCONNECTED_SESSION_TTL=str(SESSION_TTL_S)
    )
    figures: dict = {"load_average_start": [round(v, 2) for v in os.getloadavg()], "start_command": START}
    started = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            shlex.split(START.format(python=sys.executable, port=port)),
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            ready = wait_ready(url, proc)
            figures["ready_after_start_s"] = round(ready - started, 1)
            first = await browser.new_context(viewport={"width": 1920, "height": 1080})
            page = await first.new_page()
            await page.goto(f"{url}/feature_maps", wait_until="domcontentloaded")
            await maps_drawn(page)
            figures["first_model_page_s"] = round(time.monotonic() - ready, 1)
            await wait_idle(page)
            await first.close()
            pid = streamlit_pid(proc.pid)
            print(f"first model page after {figures['first_model_page_s']} s; server pid {pid}", flush=True)

            if not args.skip_cpu:
                figures.update(await cpu_phase(browser, url, pid, args.repeats))
                print({k: v for k, v in figures.items() if "cpu" in k}, flush=True)
            else:  # the memory baseline still needs one painting session that came and went
                context = await browser.new_context(viewport={"width": 1920, "height": 1080})
                await upload_painting(await open_page(context, url, "feature_maps", GRID))
                await context.close()

            baseline = await settled_rss(pid, SESSION_TTL_S + 20)  # the CPU phase's session has come and gone
            memory = await memory_phase(browser, url, pid, args.sessions)
            figures["warm_baseline_mb"] = round(baseline)
            figures["per_session_mb"] = round((memory["rss_with_sessions_mb"] - baseline) / args.sessions, 1)
            figures["returned_after_close_mb"] = round(memory["after_close_mb"] - baseline)
            figures["memory_sessions"] = args.sessions
            print(
                {k: figures[k] for k in ("warm_baseline_mb", "per_session_mb", "returned_after_close_mb")}, flush=True
            )

            if not args.skip_latency:
                alone = await latency_phase(browser, url, 1, args.rounds_alone)
                crowd = await latency_phase(browser, url, args.crowd, args.rounds_crowd)
                figures["p95_fm_switch_s_1"] = round(p95(alone), 2)
                figures[f"p95_fm_switch_s_{args.crowd}"] = round(p95(crowd), 2)
                figures["p95_fm_switch_ratio"] = round(p95(crowd) / p95(alone), 1)
                print({k: v for k, v in figures.items() if k.startswith("p95")}, flush=True)

            if not args.no_training:
                figures.update(await training_phase(browser, url, args.trainings))
            await browser.close()
        figures["peak_rss_mb"] = round(rss_mb(pid, "VmHWM"))
        figures["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
        figures["bench_s"] = round(time.monotonic() - started)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        print(f"server log: {log}", flush=True)
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=8, help="feature-map sessions for the memory figures")
    parser.add_argument("--crowd", type=int, default=16, help="sessions switching a layer at once")
    parser.add_argument("--repeats", type=int, default=4, help="interactions per CPU figure")
    parser.add_argument("--rounds-alone", type=int, default=6)
    parser.add_argument("--rounds-crowd", type=int, default=2)
    parser.add_argument("--trainings", type=int, default=8)
    parser.add_argument("--no-training", action="store_true")
    parser.add_argument("--skip-cpu", action="store_true", help="leave out the CPU-per-click figures")
    parser.add_argument("--skip-latency", action="store_true", help="leave out the p95 figures")
    parser.add_argument("--quick", action="store_true", help="few sessions, no trainings: to try the bench out")
    parser.add_argument("--bare", action="store_true", help="start the server without START_ENV (a before figure)")
    ns = parser.parse_args()
    temporary_keras_home()  # inherited by the server: a copy of ../shared/keras-cache, as tests use
    if ns.bare:
        START_ENV.clear()
    if ns.quick:
        ns.sessions, ns.crowd, ns.rounds_crowd, ns.no_training = 2, 2, 1, True
    result = asyncio.run(asyncio.wait_for(main(ns), DEADLINE_S))
    print(json.dumps(result))
