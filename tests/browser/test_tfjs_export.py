"""The lesson's second half: ml5.js and @teachablemachine/image load our export in Chromium and agree with Keras.

A model is trained on a lesson-layout zip built from ../shared/images (in a temp dir),
exported with :func:`cnnviz.train.pipeline.export_trained`, unzipped, and served with the
pinned npm libraries from a local HTTP server on 127.0.0.1. Each testing image is fed at
224 × 224 pixels, so neither library resizes it (ml5 squashes every image to 224 × 224 and
tmImage centre-crops to metadata.imageSize; on other sizes their resizing differs from
Pillow's by up to 0.045 in probability, see /work/shared/notes/tfjs-export.md).

The libraries are installed once into ``$CNNVIZ_NPM_CACHE`` (default ``~/.cache/cnnviz``),
never into the repository; the test skips with the reason where npm or the registry is
unavailable.
"""

from __future__ import annotations

import functools
import http.server
import io
import json
import os
import shutil
import subprocess
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.lesson_layout import lesson_zip

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PINS = {"ml5": "1.4.0", "@tensorflow/tfjs": "4.22.0", "@teachablemachine/image": "0.8.5", "p5": "1.11.13"}
LIB_FILES = {
    "tf.min.js": "@tensorflow/tfjs/dist/tf.min.js",
    "teachablemachine-image.min.js": "@teachablemachine/image/dist/teachablemachine-image.min.js",
    "ml5.min.js": "ml5/dist/ml5.min.js",
    "p5.min.js": "p5/lib/p5.min.js",
}
TOLERANCE = 0.01


@pytest.fixture(scope="session")
def js_libs() -> Path:
    """``node_modules`` with the pinned libraries, installed once per machine outside the repository."""
    cache = Path(os.environ.get("CNNVIZ_NPM_CACHE", Path.home() / ".cache" / "cnnviz"))
    folder = cache / ("tfjs-libs-" + "-".join(f"{k.split('/')[-1]}-{v}" for k, v in PINS.items()))
    modules = folder / "node_modules"
    if all((modules / rel).is_file() for rel in LIB_FILES.values()):
        return modules
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed, so ml5.js and @teachablemachine/image cannot be fetched")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "package.json").write_text('{"name": "cnnviz-browser-libs", "private": true}\n')
    # tmImage 0.8.5 declares a peer tfjs 1.3.1 (works with 4.22); ml5's postinstall runs patch-package.
    cmd = [
        npm,
        "install",
        "--no-audit",
        "--no-fund",
        "--ignore-scripts",
        "--legacy-peer-deps",
        "--save-exact",
        *(f"{k}@{v}" for k, v in PINS.items()),
    ]
    try:
        done = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        pytest.skip("npm install of ml5.js / tfjs took more than 15 minutes (no registry access?)")
    if done.returncode != 0 or not all((modules / rel).is_file() for rel in LIB_FILES.values()):
        pytest.skip(f"npm could not install the pinned libraries: {(done.stderr or done.stdout)[-400:]}")
    return modules


@pytest.fixture(scope="module")
def exported(tmp_path_factory, shared_images, keras_home):
    """Train on the lesson zip (224 px PNGs), export, unzip; Keras probabilities of the testing images."""
    from cnnviz.model.registry import load_model
    from cnnviz.train import lesson, pipeline
    from cnnviz.train import transfer as training

    blob = lesson_zip(shared_images, side=224)
    collection = lesson.open_collection(blob, name="paintings.zip")
    embedder = training.embedding_model_for(load_model("efficientnet_lite0"))
    trained = pipeline.train_collection(collection, embedder, epochs=20)
    folder = tmp_path_factory.mktemp("export")
    zipfile.ZipFile(
        io.BytesIO(pipeline.export_trained(trained, model_name="Paintings", include_tflite=False))
    ).extractall(folder)
    images = {}
    for item in lesson.open_collection(blob).images(max_side=None):
        if item.part == "testing":
            name = Path(item.path).name
            (folder / "testing").mkdir(exist_ok=True)
            Image.fromarray(item.image).save(folder / "testing" / name)
            images[name] = item.image
    names = sorted(images)
    keras_probs = training.predict_probabilities(trained.model, [images[n] for n in names])
    example = np.asarray(Image.open(folder / "example.png").convert("RGB"))
    return {
        "folder": folder,
        "names": names,
        "keras": keras_probs,
        "classes": trained.class_names,
        "example": training.predict_probabilities(trained.model, [example])[0],
    }


@pytest.fixture(scope="module")
def server(exported, js_libs):
    """Serve the unzipped export at / and the libraries at /libs/ on 127.0.0.1."""
    root = exported["folder"]
    libs = root / "libs"
    libs.mkdir(exist_ok=True)
    (root / "blank.html").write_text("<!DOCTYPE html><html><head><meta charset='utf-8'></head><body></body></html>")
    for name, rel in LIB_FILES.items():
        shutil.copyfile(js_libs / rel, libs / name)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _offline(page, base: str) -> None:
    """Route the CDN addresses in index.html to the local copies; refuse every other outside request."""

    def handle(route):
        url = route.request.url
        if url.startswith(base):
            return route.continue_()
        for name in LIB_FILES:
            if url.endswith("/" + name):
                return route.fulfill(status=302, headers={"Location": f"{base}/libs/{name}"})
        refused.append(url)
        return route.abort()

    refused: list[str] = []
    page.refused = refused
    page.route("**/*", handle)


CLASSIFY = """async ([library, names]) => {
  const load = (src) => new Promise((ok, fail) => {
    const s = document.createElement('script'); s.src = src; s.onload = ok; s.onerror = () => fail(new Error(src));
    document.head.appendChild(s);
  });
  const pictures = {};
  for (const name of names) { const img = new Image(); img.src = '/testing/' + name; await img.decode(); pictures[name] = img; }
  const out = {};
  if (library === 'tmImage') {  // the lesson's tmImage code: load(model.json, metadata.json), predict(image)
    await load('/libs/tf.min.js'); await load('/libs/teachablemachine-image.min.js');
    const model = await tmImage.load('/model/model.json', '/model/metadata.json');
    for (const name of names) {
      const result = await model.predict(pictures[name]);  // label order
      out[name] = result.map(r => [r.className, r.probability]);
    }
  } else {  // the lesson's ml5 code: imageClassifier(url + "model.json"), url a full http:// address, classify(image, callback)
    await load('/libs/ml5.min.js');
    const classifier = await new Promise((ok) => { const c = ml5.imageClassifier(location.origin + '/model/' + 'model.json', () => ok(c)); });
    for (const name of names) {
      const result = await new Promise((ok) => classifier.classify(pictures[name], ok));  // most confident first
      out[name] = result.map(r => [r.label, r.confidence]);
    }
  }
  return out;
}"""


def _classify(page, base: str, library: str, names: list[str]) -> dict:
    _offline(page, base)
    page.goto(f"{base}/blank.html")
    return page.evaluate(CLASSIFY, [library, names])


def _by_label(result: list, classes: list[str]) -> np.ndarray:
    probs = dict(result)
    assert set(probs) == set(classes), f"labels {sorted(probs)} are not the model's classes {classes}"
    return np.array([probs[c] for c in classes])


@pytest.mark.parametrize("library", ["ml5", "tmImage"])
def test_library_loads_the_export_and_agrees_with_keras(browser, server, exported, library):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(180_000)
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    try:
        out = _classify(page, server, library, exported["names"])
    except Exception as err:
        raise AssertionError(f"{library} failed: {err}; outside requests refused: {page.refused}") from None
    finally:
        context.close()
    assert not errors, errors
    keras_probs, classes = exported["keras"], exported["classes"]
    diffs = []
    for name, expected in zip(exported["names"], keras_probs):
        got = _by_label(out[name], classes)
        assert classes[int(got.argmax())] == classes[int(expected.argmax())], f"{library} top-1 differs on {name}"
        diffs.append(float(np.abs(got - expected).max()))
    print(json.dumps({"library": library, "images": len(diffs), "max_probability_difference": max(diffs)}))
    assert max(diffs) <= TOLERANCE, f"{library} differs from Keras by up to {max(diffs):.4f}"


def test_the_exported_sketch_runs_as_the_lesson_shows(browser, server, exported):
    """index.html + sketch.js, unchanged, with p5 and ml5 routed from their CDN addresses to the local copies."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(180_000)
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    try:
        _offline(page, server)
        page.goto(f"{server}/index.html")
        page.wait_for_function("() => window.classified !== undefined")
        results = page.evaluate("() => window.classified.map(r => [r.label, r.confidence])")
        shown = page.locator("#result").inner_text()
    finally:
        context.close()
    assert not errors, errors
    classes, expected = exported["classes"], exported["example"]
    got = _by_label(results, classes)
    assert results[0][0] == classes[int(expected.argmax())] and shown.startswith(results[0][0])
    assert float(np.abs(got - expected).max()) <= TOLERANCE
