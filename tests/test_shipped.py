"""The warm start: shipped models load once per process, in the background, and readiness follows the default model."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import keras
import pytest

from cnnviz.model import registry, shipped

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = "fashion_mnist_carpentries"


@pytest.fixture()
def fresh(monkeypatch):
    """A process that has not warmed up yet (the module keeps its state per process)."""
    monkeypatch.setattr(shipped, "_MODELS", {})
    monkeypatch.setattr(shipped, "_FAILED", {})
    monkeypatch.setattr(shipped, "_READY", threading.Event())
    monkeypatch.setattr(shipped, "_STATE", {"started": None, "ready_after_s": None, "warming": None, "thread": None})
    loads: list[str] = []
    real = registry.load_model

    def counted(name: str = registry.DEFAULT_MODEL, *args, **kwargs):
        loads.append(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(registry, "load_model", counted)
    return loads


def _tiny_image_model() -> keras.Model:
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(2, 3, name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="predictions")(x))


def test_default_is_the_registrys():
    assert shipped.DEFAULT == registry.DEFAULT_MODEL


def test_the_pages_loader_gets_the_model_the_warm_start_loaded(fresh):
    from ui.models import shipped_model

    shipped_model.clear()
    shipped.warm_up([BUNDLED])
    assert fresh == [BUNDLED]
    model = shipped_model(BUNDLED)
    assert model is shipped.get(BUNDLED)
    assert fresh == [BUNDLED]  # loaded once, by the warm start, never again for a page
    shipped_model.clear()


def test_ready_only_once_the_default_model_is_loaded(fresh, monkeypatch):
    release = threading.Event()
    stand_in = _tiny_image_model()  # the state machine, without ten seconds of EfficientNet

    def slow_default(name: str = registry.DEFAULT_MODEL, *args, **kwargs):
        release.wait(30)
        return stand_in

    monkeypatch.setattr(registry, "load_model", slow_default)
    seen: list[bool] = []
    thread = shipped.start_warm_up([shipped.DEFAULT], also=[lambda: seen.append(shipped.readiness()["ready"])])
    assert shipped.start_warm_up([shipped.DEFAULT]) is thread  # once per process
    state = shipped.readiness()
    assert state["started"] and not state["ready"] and state["loaded"] == []
    release.set()
    thread.join(30)
    state = shipped.readiness()
    assert state["ready"] and state["loaded"] == [shipped.DEFAULT] and state["failed"] == {}
    assert state["warming"] is None and state["ready_after_s"] >= 0
    assert shipped.get(shipped.DEFAULT) is stand_in
    assert seen == [False]  # the server's other first-visit work ran once, before it said ready


def test_a_model_that_fails_is_reported_and_the_others_still_load(fresh):
    shipped.warm_up(["no_such_model", BUNDLED])
    state = shipped.readiness()
    assert "There is no model called" in state["failed"]["no_such_model"]
    assert state["loaded"] == [BUNDLED]
    assert state["ready"]  # the default model was not asked for, so nothing is awaited


def test_never_ready_when_the_default_model_fails(fresh, monkeypatch):
    def broken(name: str = registry.DEFAULT_MODEL, *args, **kwargs):
        raise registry.ModelError("EfficientNet-Lite0's ImageNet weights could not be read: damaged.")

    monkeypatch.setattr(registry, "load_model", broken)
    shipped.warm_up([shipped.DEFAULT])
    state = shipped.readiness()
    assert not state["ready"] and "could not be read" in state["failed"][shipped.DEFAULT]


def test_which_models_warm_up(monkeypatch):
    monkeypatch.delenv("CNNVIZ_WARM_MODELS", raising=False)
    names = shipped.warm_names()
    assert names[0] == registry.DEFAULT_MODEL and BUNDLED in names and "mobilenet_v2" not in names
    monkeypatch.setenv("CNNVIZ_WARM_MODELS", f" {BUNDLED}, lenet ")
    assert shipped.warm_names() == [BUNDLED, "lenet"]
    monkeypatch.setenv("CNNVIZ_WARM_MODELS", "none")
    assert shipped.warm_names() == []


def test_the_readiness_route_never_imports_tensorflow():
    # /_cnnviz/ready is answered on the web server's event loop: importing TensorFlow there would
    # stall every visitor for seconds. The warm-up thread imports it.
    script = "import sys, serve; serve.shipped.readiness(); print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["False", "False"]


def test_a_model_is_traced_once_per_process(monkeypatch):
    """The feature-map page asks for a trace of every shipped model it shows: after the warm start's
    trace, that costs nothing (not four forward passes and a gradient for its first visitor)."""
    from cnnviz.model import features

    calls: list[str] = []
    real = features.feature_maps

    def counted(*args, **kwargs):
        calls.append("maps")
        return real(*args, **kwargs)

    monkeypatch.setattr(features, "feature_maps", counted)
    model, other = _tiny_image_model(), _tiny_image_model()
    shipped.trace(model)
    shipped.trace(model)
    assert calls == ["maps"]
    shipped.trace(other)  # another model is traced on its own
    assert calls == ["maps", "maps"]
