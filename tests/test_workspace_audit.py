"""Page 5's own sets and audit through a real workspace store: a reload gives the same sets and a current audit.

The tiny style model of tests/audit_tiny_model.py is the visitor's model; it goes into the
store as ``.keras`` bytes and comes back lazily, as after a server restart.
"""

from __future__ import annotations

import functools
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from cnnviz.audit import sets as audit_sets
from cnnviz.model import registry
from cnnviz.text import plain
from cnnviz.workspace import contents, ids
from cnnviz.workspace.store import SQLiteStore
from cnnviz.workspace.writer import Writer
from tests.audit_tiny_model import KINDS, tiny_model
from ui import workspace

ROOT = Path(__file__).resolve().parents[1]


def _png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buf.getvalue()


@functools.lru_cache(maxsize=1)
def uncompiled_model():
    """The tiny model without its optimizer: a visitor's models are kept uncompiled (uploads load so)."""
    import keras

    model, card = tiny_model()
    return keras.Model(model.inputs, model.outputs, name="tiny_styles"), card  # the same layers, not compiled


@pytest.fixture()
def fresh_store(tmp_path, monkeypatch):
    store = SQLiteStore(tmp_path / "workspaces.sqlite3")
    holder = workspace._Holder()
    holder.store, holder.writer = store, Writer(store)
    monkeypatch.setattr(workspace, "_HOLDER", holder)
    return holder


def test_a_kept_set_has_the_same_pixels_files_and_classes_and_relabels_for_other_classes():
    images = [np.random.default_rng(i).integers(0, 256, (30 + i, 40, 3), dtype=np.uint8) for i in range(3)]
    found = audit_sets.uploaded_set(
        [(f"{c}/{i}.png", im) for i, (c, im) in enumerate(zip(["a", "b", "a"], images))], ["a", "b"]
    )
    source, classes, back = contents.read_audit_set_item(contents.audit_set_item("upload", ["a", "b"], found))
    assert (source, classes, back.files) == ("upload", ["a", "b"], found.files)
    assert all(np.array_equal(x, y) for x, y in zip(back.images, images))
    np.testing.assert_array_equal(back.labels, [0, 1, 0])
    again = audit_sets.reopened_set(back, classes, ["a", "b"])
    assert audit_sets.fingerprint({"R": again}, 1) == audit_sets.fingerprint({"R": found}, 1)
    assert again.sentences[0].startswith("3 pictures kept in your workspace")
    np.testing.assert_array_equal(audit_sets.reopened_set(back, classes, ["B", "A"]).labels, [1, 0, 1])
    assert audit_sets.reopened_set(back, classes, ["x"]).labels is None
    with pytest.raises(ValueError):
        contents.read_audit_set_item(b"not a kept set")


def test_the_audit_fingerprint_knows_the_weights_not_the_object():
    from ui.audit import model_key

    model, card = uncompiled_model()
    reopened, _ = registry.load_uploaded_model(contents.model_bytes(model, list(card["classes"])), "tiny.keras")
    assert reopened is not model and model_key(reopened) == model_key(model)
    changed, _ = registry.load_uploaded_model(contents.model_bytes(model, list(card["classes"])), "tiny.keras")
    changed.layers[-1].set_weights([w + 1 for w in changed.layers[-1].get_weights()])
    assert model_key(changed) != model_key(model)


def _audit_page(at: AppTest) -> AppTest:
    at.session_state["audit_model_choice"] = "mine:tiny"
    at.session_state["audit_probe0_source"] = "generated"
    at.session_state["audit_probe0_count"] = 8
    at.session_state["audit_gallery"] = 2
    at.session_state["audit_transform_on"] = False
    return at.switch_page("pages/audit.py").run()


def test_a_zip_set_and_its_audit_come_back_after_a_reload_and_can_be_cleared(fresh_store):
    model, card = uncompiled_model()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.session_state["cnnviz_user_models"] = {"tiny": {"model": model, "card": card}}
    at.session_state["audit_ref_source"] = "zip"
    at = _audit_page(at.run())
    assert not at.exception
    files = {f"mine/{k}/{i}.png": _png(10 * j + i) for j, k in enumerate(KINDS) for i in range(2)}
    at.file_uploader(key="audit_ref_zipfile").set_value(("my sets.zip", _zip(files), "application/zip")).run()
    at.button(key="audit_run_button").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    before = at.session_state["audit_result"]
    ws = at.session_state[workspace.WS]
    assert fresh_store.writer.flush(ws, timeout=60)
    assert fresh_store.store.keys(ws, "auditset") == ["audit_ref"]

    again = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    again.query_params["ws"] = ws  # a reload: the zip uploader is empty now
    again = _audit_page(again.run())
    assert not again.exception and again.session_state[workspace.WS] == ws
    assert not again.error, [e.value for e in again.error]
    captions = " ".join(c.value for c in again.caption)
    assert "6 pictures kept in your workspace from your last visit" in captions
    assert not any("changed since this audit ran" in w.value for w in again.warning)
    after = again.session_state["audit_result"]
    assert after["sets"]["Reference"]["files"] == before["sets"]["Reference"]["files"]
    np.testing.assert_array_equal(after["sets"]["Reference"]["labels"], [0, 0, 1, 1, 2, 2])
    assert after["fingerprint"] == before["fingerprint"]

    again.button(key="audit_ref_clear").click().run()
    assert not again.exception
    assert any("Upload a zip of images" in i.value for i in again.info)
    assert any("changed since this audit ran" in w.value for w in again.warning)  # the set is gone
    assert fresh_store.writer.flush(ws, timeout=60)
    assert fresh_store.store.keys(ws, "auditset") == []


def test_a_damaged_model_in_the_store_is_one_sentence_and_the_page_keeps_running(fresh_store):
    model, card = uncompiled_model()
    data = bytearray(contents.model_bytes(model, list(card["classes"])))
    data[len(data) // 2 : len(data) // 2 + 64] = b"\0" * 64  # a damaged stretch inside the archive
    store, ws = fresh_store.store, ids.new_id()
    store.create(ws)
    kept = {k: v for k, v in card.items() if k != "model"}
    store.write(
        ws,
        [
            ("card", "tiny", json.dumps(kept).encode()),
            ("model", "tiny", bytes(data)),
            ("page", "state", json.dumps({"models": ["tiny"], "imported": []}).encode()),
        ],
    )
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params["ws"] = ws
    at = _audit_page(at.run())
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == [
        plain(
            f"“{card['name']}” could not be read back from your workspace (its saved file is damaged); "
            "train or upload it again."
        )
    ]
    at.switch_page("pages/neuron.py").run()  # the rest of the app is unaffected
    assert not at.exception and at.title[0].value.startswith("1 · One neuron")


def test_camera_photos_come_back_as_this_sets_photos(fresh_store):
    model, card = uncompiled_model()
    photos = [np.full((30, 40, 3), 60 * i, np.uint8) for i in range(3)]
    store, ws = fresh_store.store, ids.new_id()
    store.create(ws)
    store.write(
        ws, [("auditset", "audit_probe0", contents.audit_set_item("camera", [], audit_sets.camera_set(photos)))]
    )
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params["ws"] = ws
    at.session_state["cnnviz_user_models"] = {"tiny": {"model": model, "card": card}}
    at = _audit_page(at.run())
    at.selectbox(key="audit_probe0_source").set_value("camera").run()
    assert not at.exception and not at.error
    shots = at.session_state["audit_probe0_shots"]
    assert [s[0] for s in shots] == ["kept 0", "kept 1", "kept 2"]
    assert all(np.array_equal(s[1], p) for s, p in zip(shots, photos))
    assert plain("3 photos in this set.") in [c.value for c in at.caption]  # a new photo is added to them
