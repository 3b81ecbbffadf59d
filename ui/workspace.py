"""This visitor's workspace: reopened from ``?ws=…`` at the start of a run, saved at its end.

The router calls :func:`begin_run` before every page and :func:`end_run` after it (also when
the page stops or reruns), so work is saved as the visitor works, one atomic write per run
holding only what changed since the last write (:mod:`cnnviz.workspace.store`). A reload, a
second tab, a bookmark, or a tab that reconnects after a server restart is a new Streamlit
session with the same address: it finds ``?ws=…`` and reopens the same work (models are
loaded only when a page uses one). :func:`sidebar` has "Copy my workspace link" and "Delete my
workspace". ``CNNVIZ_WORKSPACES=off`` turns all of it off: nothing is kept, no id is made.

The id lives in the address bar only: :mod:`ui.settings` writes and deletes its own keys and
never ``ws``, and links meant for others (lecture plans, setting links) are built without it;
a page switch that drops the query string gets ``ws`` back at the start of the next run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from typing import Any, Callable

import numpy as np
import streamlit as st

from cnnviz.workspace import contents, ids
from cnnviz.workspace.store import GONE, Store, StoreError, WorkspaceGone, open_store, workspaces_enabled
from cnnviz.workspace.writer import Change, Writer
from ui.state import MODELS_KEY, TRAINING_KEY, visitor_models

S = st.session_state
PARAM = "ws"
WS, BOX = "cnnviz_ws", "cnnviz_ws_box"
SETTINGS_KEY = "cnnviz_settings"  # ui.settings' per-session store of kept settings
AUDIT_KEY = "audit_result"  # ui.audit.RESULT (not imported: it pulls pandas into every page)
AUDIT_SETS_KEY = "audit_kept_sets"  # ui.audit.KEPT: {set key: (source, classes, ImageSet, reopened)}
IMPORTED_KEY = "trainer_imported"  # page 4's list of imported model zips
ORIGINALS_KEY = "trainer_originals"  # ui.trainer.ORIGINALS: {pixel hash: (file name, bytes)}, only if asked for
RETRY_AFTER = 30.0  # seconds before a failed write (disk full) is tried again

Items = dict[tuple[str, str], tuple[str, Callable[[], bytes]]]


class _Holder:
    """The process's store, opened on first use (and again after a failure to reach it)."""

    def __init__(self) -> None:
        self.store: Store | None = None
        self.writer: Writer | None = None
        self.error = ""
        self.tried = 0.0
        self.lock = threading.Lock()
        self.running: dict[str, int] = {}  # workspace id -> page runs under way in this process
        self.ended = threading.Condition()

    def started(self, ws: str) -> None:
        with self.ended:
            self.running[ws] = self.running.get(ws, 0) + 1

    def finished(self, ws: str) -> None:
        with self.ended:
            self.running[ws] = self.running.get(ws, 1) - 1
            if self.running[ws] <= 0:
                del self.running[ws]
            self.ended.notify_all()

    def settle(self, ws: str, timeout: float = 30.0) -> None:
        """Wait until no run of ``ws`` is under way here and its writes have landed.

        A reload (F5) while the page was still computing starts the new session before the old
        run has stopped and handed over its changes (Streamlit stops a run only at its next call).
        """
        with self.ended:
            self.ended.wait_for(lambda: not self.running.get(ws), timeout=timeout)
        if self.writer is not None:
            self.writer.flush(ws, timeout=timeout)

    def get(self) -> Store | None:
        with self.lock:
            return self._get()

    def _get(self) -> Store | None:
        if self.store is None and time.time() - self.tried > RETRY_AFTER:
            self.tried = time.time()
            try:
                self.store = open_store()
                self.writer = Writer(self.store)
                self.error = ""
            except StoreError as err:
                self.error = str(err)
        return self.store


_HOLDER = _Holder()


def _holder() -> _Holder:
    # One store per process (a connection, a lock, a writer thread), shared by every session: each
    # session only ever reads and writes under its own unguessable id. A plain module global, not
    # st.cache_resource: end_run must reach it while Streamlit is stopping the run.
    return _HOLDER


def enabled() -> bool:
    return workspaces_enabled()


def _box() -> dict[str, Any]:
    """This session's workspace bookkeeping, a plain dict the writer thread may update too.

    ``saved``: ``{(kind, key): fingerprint}`` of what was written or is being written;
    ``notices``: sentences for the visitor; ``retry``: no write before this time; ``gone``: the
    workspace was deleted or expired under this tab.
    """
    return S.setdefault(BOX, {"saved": {}, "notices": [], "retry": 0.0, "gone": False})


def _notice(sentence: str) -> None:
    shown = _box()["notices"]
    if sentence and sentence not in shown:
        shown.append(sentence)


def current_id() -> str | None:
    """This session's workspace id (``None`` while workspaces are off)."""
    return S.get(WS)


# --------------------------------------------------------------------------- opening
def begin_run() -> None:
    """Reopen the workspace named in ``?ws=`` (first run of a session), or start a new one; keep ``ws`` in the URL."""
    if not enabled():
        return
    holder = _holder()
    store = holder.get()
    if store is None:
        _notice(holder.error)
        return
    if store.notice:
        _notice(store.notice)
    if WS not in S:
        asked = st.query_params.get(PARAM)
        try:
            if asked is not None and ids.is_valid(asked):
                holder.settle(asked)  # a reload: the tab's last run and writes end before they are read
            if asked is not None and store.exists(asked):
                _restore(store, asked)
                store.touch(asked)
                S[WS] = asked
            else:
                if asked is not None:
                    _notice("This workspace link has expired or was deleted, so a new, empty workspace was started.")
                ws = ids.new_id()
                store.create(ws)
                S[WS] = ws
        except StoreError as err:
            _notice(str(err))
            return
    holder.started(S[WS])
    _box()["running"] = True  # end_run says when this run's changes were handed over
    if st.query_params.get(PARAM) != S[WS]:
        st.query_params[PARAM] = S[WS]


def _restore(store: Store, ws: str) -> None:
    """Put the workspace's items back into this session (models stay on disk until used)."""

    def loader(name: str) -> Callable[[], bytes | None]:
        return lambda: store.read(ws, "model", name)

    try:
        raw = store.read(ws, "settings", "all")
        if raw:
            S[SETTINGS_KEY] = dict(json.loads(raw))
        page = json.loads(store.read(ws, "page", "state") or b"{}")
        cards = store.read_kind(ws, "card")
        models = visitor_models()
        for name in page.get("models", []) + sorted(set(cards) - set(page.get("models", []))):
            if name in cards:
                models[name] = contents.ModelEntry(json.loads(cards[name]), loader(name))
        imported = [models[n] for n in page.get("imported", []) if n in models]
        for entry in imported:
            entry.update(name=entry["card"]["name"], head=None)
        S[IMPORTED_KEY] = imported
        outline = store.read(ws, "trainer", "session")
        if outline:
            S[TRAINING_KEY] = contents.restore_trainer(
                outline,
                store.read_kind(ws, "image"),
                run=store.read(ws, "run", "head"),
                example=store.read(ws, "example", "image"),
                models=models,
                embedder_for=_embedder,
            )
        originals = {}
        for key, data in store.read_kind(ws, "original").items():
            tree = contents.unpack(data)
            originals[key] = (str(tree["name"]), bytes(tree["data"]))
        if originals:
            S[ORIGINALS_KEY] = originals
        audit = store.read(ws, "audit", "result")
        if audit:
            S[AUDIT_KEY] = contents.unpack(audit)
        kept_sets = {}
        for key, data in store.read_kind(ws, "auditset").items():
            try:
                source, classes, found = contents.read_audit_set_item(data)
            except (ValueError, KeyError, TypeError, OSError):
                _notice("One of your audit sets could not be read back from your workspace, so it was left out.")
                continue
            if source == "camera":  # photos the visitor takes next are added to these, as before the reload
                S[f"{key}_shots"] = [(f"kept {i}", image) for i, image in enumerate(found.images)]
                kept_sets[key] = (source, classes, found, False)
            else:
                kept_sets[key] = (source, classes, found, True)
        if kept_sets:
            S[AUDIT_SETS_KEY] = kept_sets
    except StoreError:
        raise
    except (ValueError, KeyError, TypeError, IndexError) as err:  # an item this version cannot read
        _notice(f"Part of your workspace could not be read ({type(err).__name__}), so it was left out.")
    _box()["saved"] = {item: fp for item, (fp, _) in _items().items()}  # what is in memory now is what is stored


def _embedder(base: str) -> Any:
    from ui.trainer import embedder  # TensorFlow: only when a reopened run's stored model is damaged

    return embedder(base)


# --------------------------------------------------------------------------- saving
def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _quiet_state() -> Any:
    """This session's state, read without Streamlit's stop check.

    :func:`end_run` runs in the router's ``finally``, also when the visitor's next click or a reload
    stopped the page: every ``st.session_state`` read then raises the stop again, and the run's
    changes (a model just trained) would never be saved. Reading is safe (Streamlit only forbids
    *changing* the state of a run being stopped); on any other Streamlit, fall back to the proxy.
    """
    try:
        from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

        safe = get_script_run_ctx().session_state  # type: ignore[union-attr]
        raw, lock = safe._state, safe._lock
    except Exception:
        return S

    class Quiet(dict):
        def get(self, key: str, default: Any = None) -> Any:
            with lock:
                try:
                    return raw[key]
                except KeyError:
                    return default

        def __contains__(self, key: object) -> bool:
            return self.get(str(key), _MISSING) is not _MISSING

    return Quiet()


_MISSING = object()


def _items(state: Any = None) -> Items:
    """Everything this session would store now: ``{(kind, key): (fingerprint, make the bytes)}``.

    Fingerprints are cheap (object ids, small JSON digests); bytes are made only for items
    whose fingerprint differs from the last write.
    """
    state = S if state is None else state
    found: Items = {}

    def add(kind: str, key: str, fingerprint: str, make: Callable[[], bytes]) -> None:
        found[(kind, key)] = (fingerprint, make)

    kept = {k: v for k, v in (state.get(SETTINGS_KEY) or {}).items() if _jsonable(v)}
    settings_bytes = json.dumps(kept, sort_keys=True, ensure_ascii=False).encode()
    add("settings", "all", _digest(settings_bytes), lambda: settings_bytes)

    models = state.get(MODELS_KEY) or {}
    for name, entry in models.items():
        card = {k: v for k, v in dict(entry["card"]).items() if _jsonable(v)}
        card_bytes = json.dumps(card, ensure_ascii=False).encode()
        add("card", name, _digest(card_bytes), lambda b=card_bytes: b)  # type: ignore[misc]
        add(
            "model",
            name,
            str(id(entry)),
            lambda e=entry: contents.model_bytes(e["model"], list(e["card"].get("classes", []))),  # type: ignore[misc]
        )
    page = {"models": list(models), "imported": [item["name"] for item in state.get(IMPORTED_KEY) or []]}
    page_bytes = json.dumps(page, ensure_ascii=False).encode()
    add("page", "state", _digest(page_bytes), lambda: page_bytes)

    trainer = state.get(TRAINING_KEY)
    if trainer is not None:
        run = trainer.run
        run_model = run.card.get("name") if run is not None and run.finished and run.card else None
        outline = contents.trainer_outline(trainer, run_model if run_model in models else None)
        add("trainer", "session", _digest(outline), lambda: outline)
        for key, (thumb, embeddings) in trainer.store.entries().items():
            add(
                "image",
                key,
                ",".join(sorted(embeddings)) + ("+t" if thumb is not None else ""),
                lambda t=thumb, e=embeddings: contents.image_item(t, e),  # type: ignore[misc]
            )
        if trainer.example is not None:
            add("example", "image", str(id(trainer.example)), lambda: contents.pack({"image": trainer.example}))
        if run is not None and run.finished and run.head is not None:
            add("run", "head", f"{id(run)}:{len(run.history.rows)}", lambda: contents.run_item(run))
    for key, (name, data) in (state.get(ORIGINALS_KEY) or {}).items():
        add("original", key, "1", lambda n=name, d=data: contents.pack({"name": n, "data": np.frombuffer(d, np.uint8)}))  # type: ignore[misc]
    kept_sets = state.get(AUDIT_SETS_KEY) or {}
    if kept_sets:
        from cnnviz.audit.sets import fingerprint as audit_fingerprint  # only once page 5 ran
    for key, (source, classes, image_set, _) in kept_sets.items():
        add(
            "auditset",
            key,
            audit_fingerprint({key: image_set}, (source, classes)),
            lambda s=source, c=classes, f=image_set: contents.audit_set_item(s, c, f),  # type: ignore[misc]
        )
    audit = state.get(AUDIT_KEY)
    if audit is not None:
        add("audit", "result", str(id(audit)), lambda: contents.pack(audit))
    return found


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def end_run() -> None:
    """Hand what changed in this run to the writer (one transaction); a refused write leaves one sentence."""
    state = _quiet_state()
    try:
        _end_run(state)
    except Exception:  # a bug here must not hide the page's own result; the visitor's work stays in the tab
        logging.getLogger(__name__).exception("saving the workspace failed")
    finally:
        ws, box = state.get(WS), state.get(BOX)
        if ws is not None and box is not None and box.pop("running", False):
            _holder().finished(ws)


def _end_run(state: Any) -> None:
    ws, box = state.get(WS), state.get(BOX)
    if not enabled() or ws is None or box is None:
        return
    holder = _holder()
    if box["gone"] or time.time() < box["retry"] or holder.get() is None or holder.writer is None:
        return
    saved: dict[tuple[str, str], str] = box["saved"]
    current = _items(state)
    puts: list[tuple[str, str, Any]] = []
    sent: dict[tuple[str, str], str] = {}
    for item, (fingerprint, make) in current.items():
        if saved.get(item) == fingerprint:
            continue
        try:
            # What a page may change in its next run becomes bytes now; a model or an audit set's PNGs
            # (seconds to make, never changed once made: a new upload is a new object) in the writer's thread.
            puts.append((*item, make if item[0] in ("model", "auditset") else make()))
        except (TypeError, ValueError, OSError):
            continue  # an item that cannot be kept stays in this tab only
        sent[item] = fingerprint
    deletes = [item for item in saved if item not in current]
    if not puts and not deletes:
        return
    before = {item: saved.get(item) for item in sent}
    saved.update(sent)
    for item in deletes:
        saved.pop(item, None)

    def done(error: StoreError | None) -> None:  # runs in the writer's thread: plain dicts only
        if error is None:
            box["notices"][:] = [n for n in box["notices"] if n not in _NOT_SAVED]
            return
        for item, fingerprint in before.items():
            if saved.get(item) == sent[item]:  # not overtaken by a later run: try it again next time
                if fingerprint is None:
                    saved.pop(item, None)
                else:
                    saved[item] = fingerprint
        for item in deletes:
            saved.setdefault(item, "")
        if isinstance(error, WorkspaceGone):
            box["gone"] = True
        else:
            box["retry"] = time.time() + RETRY_AFTER
        _NOT_SAVED.add(str(error))
        if str(error) not in box["notices"]:
            box["notices"].append(str(error))

    holder.writer.submit(Change(ws, puts, deletes, done))


_NOT_SAVED: set[str] = {GONE}  # sentences that say a write failed; they go once a write succeeds


def show_notices() -> None:
    """The store's sentences for this visitor (disk full, link expired, store restarted), once each."""
    for sentence in list(_box()["notices"]):
        st.warning(sentence, icon="💾")


# --------------------------------------------------------------------------- the sidebar
def link() -> str:
    """This workspace's link: the app's address with only ``?ws=…`` (none while workspaces are off)."""
    ws = current_id()
    if ws is None:
        return ""
    base = (st.context.url or "").split("?", 1)[0].split("#", 1)[0]
    return f"{base}?{PARAM}={ws}"


def expiry_words() -> str:
    store = _holder().store
    hours = (store.limits.expiry if store is not None else 7 * 24 * 3600) / 3600
    if hours >= 48 and hours % 24 == 0:
        return f"{hours / 24:.0f} days"
    return f"{hours:g} hours" if hours != 1 else "1 hour"


def where_things_go() -> str:
    """One sentence for the home page: where images go and how long they stay."""
    if not enabled():
        return (
            "This server keeps nothing: your images, models and settings live only in this browser tab "
            "and are gone when you close or reload it."
        )
    return (
        "Your images (on page 4 as small thumbnails and the numbers the network computes from them, the files "
        "themselves only if you ask for it; on page 5, your own audit sets' pictures at the size the model "
        "reads them), "
        "models and settings are saved on this server in a workspace that only your link opens, and deleted "
        f"{expiry_words()} after you last used it, or at once with “Delete my workspace” in the sidebar."
    )


def sidebar() -> None:
    """ "Copy my workspace link" and "Delete my workspace", in the sidebar of every page."""
    if not enabled() or current_id() is None:
        return
    # Drawn only while open (on_change="rerun"): its code block loads a 1.5 MB highlighter in the
    # browser, which every visitor's first page paid for a folded panel.
    panel = st.sidebar.expander("💾 Your workspace", expanded=False, key="ws_panel", on_change="rerun")
    if not panel.open:
        return
    with panel:
        st.markdown("**Copy my workspace link**")
        st.code(link(), language=None, wrap_lines=True)
        st.caption(
            "Whoever has this link sees your work (images, models, settings): keep it to come back, "
            f"share it only with people who may see it. It stops working {expiry_words()} after your last visit."
        )
        originals = S.get(ORIGINALS_KEY) or {}
        if originals:
            st.download_button(
                f"⬇️ Download my {len(originals)} original files (zip)",
                data=lambda: _originals_zip(originals),
                file_name="cnnviz-original-files.zip",
                mime="application/zip",
                key="ws_originals",
                on_click="ignore",
            )
        if st.button("🗑 Delete my workspace", key="ws_delete", help="Removes everything at once from this server."):
            delete()


def _originals_zip(originals: dict[str, tuple[str, bytes]]) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        seen: set[str] = set()
        for key, (name, data) in originals.items():
            base = name.rsplit("/", 1)[-1] or key
            archive.writestr(base if base not in seen else f"{key[:8]}-{base}", data)
            seen.add(base)
    return buffer.getvalue()


def delete() -> None:
    """Remove this workspace from the store and everything this session holds; start an empty one."""
    holder = _holder()
    store = holder.get()
    ws = current_id()
    try:
        if store is not None and ws is not None:
            if holder.writer is not None:
                holder.writer.flush(ws)  # a write still under way must not land after the delete
            store.delete_workspace(ws)
    except StoreError as err:
        _notice(str(err))
        st.rerun()
    S.clear()
    st.query_params.clear()
    _notice(
        "Your workspace was deleted: its images, models, audit and settings are gone from this server, "
        "and its link opens nothing."
    )
    st.rerun()
