"""The app when the workspace store's disk is full: one sentence, and every page keeps working."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cnnviz.workspace import ids
from cnnviz.workspace.store import DISK_FULL, SQLiteStore, StoreFull
from cnnviz.workspace.writer import Writer
from ui import workspace

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def full_disk(tmp_path, monkeypatch):
    """A store whose file cannot grow (SQLite's max_page_count), filled to the last byte by someone else."""
    store = SQLiteStore(tmp_path / "workspaces.sqlite3")
    assert store._conn is not None
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count = {pages + 8}")
    other = ids.new_id()
    store.create(other)
    size, i = 4000, 0
    while size:  # fill the free pages, then the room left in them, with ever smaller items
        try:
            store.write(other, [("image", str(i), b"x" * size)])
            i += 1
        except StoreFull:
            size //= 2
    holder = workspace._Holder()
    holder.store, holder.writer = store, Writer(store)
    monkeypatch.setattr(workspace, "_HOLDER", holder)
    return store


def test_a_full_disk_is_one_sentence_and_the_app_keeps_running(full_disk):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    ws = at.session_state[workspace.WS]
    assert ids.is_valid(ws) and at.query_params["ws"] in (ws, [ws])
    assert workspace._HOLDER.writer is not None and workspace._HOLDER.writer.flush(ws, timeout=30)
    at.run()  # the write after the first run was refused: this run says so, once
    assert not at.exception
    assert [w.value for w in at.warning] == [DISK_FULL]
    assert "cnnviz" in at.title[0].value and "1. **Neuron and activation**" in at.main.markdown[1].value  # all there
    assert "saved on this server" in " ".join(c.value for c in at.caption)
    at.switch_page("pages/neuron.py").run()
    assert not at.exception and at.title and at.title[0].value.startswith("1 · One neuron")
    assert DISK_FULL in [w.value for w in at.warning]


@pytest.fixture()
def fresh_store(tmp_path, monkeypatch):
    store = SQLiteStore(tmp_path / "workspaces.sqlite3")
    holder = workspace._Holder()
    holder.store, holder.writer = store, Writer(store)
    monkeypatch.setattr(workspace, "_HOLDER", holder)
    return holder


def test_settings_and_opted_in_originals_come_back_with_the_link_and_only_with_it(fresh_store):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["cnnviz_settings"] = {"trainer_epochs": 7, "trainer_keep_originals": True}
    at.session_state["trainer_originals"] = {"k" * 32: ("Gemälde 1.jpg", b"\xff\xd8 original bytes")}
    at.run()
    ws = at.session_state[workspace.WS]
    assert fresh_store.writer.flush(ws, timeout=30)
    assert fresh_store.store.keys(ws, "original") == ["k" * 32]

    again = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    again.query_params["ws"] = ws  # a reload or a second tab: a new session with the same address
    again.run()
    assert not again.exception and again.session_state[workspace.WS] == ws
    assert again.session_state["cnnviz_settings"]["trainer_epochs"] == 7
    assert again.session_state["trainer_originals"] == {"k" * 32: ("Gemälde 1.jpg", b"\xff\xd8 original bytes")}
    assert not again.get("download_button")  # the sidebar's workspace panel is drawn only while open
    again.session_state["ws_panel"] = True  # the visitor opens it
    again.run()
    assert any("Download my 1 original files" in getattr(b, "label", "") for b in again.get("download_button"))

    stranger = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    stranger.query_params["ws"] = ws[:-1] + ("A" if ws[-1] != "A" else "B")  # one character guessed wrong
    stranger.run()
    assert stranger.session_state[workspace.WS] != ws and "trainer_originals" not in stranger.session_state
    assert "expired or was deleted" in " ".join(w.value for w in stranger.warning)
