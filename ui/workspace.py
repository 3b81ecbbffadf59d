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
import time
from typing import Any, Callable

import streamlit as st

from cnnviz.workspace import contents, ids
from cnnviz.workspace.store import GONE, Store, StoreError, WorkspaceGone, open_store, workspaces_enabled
from ui.state import MODELS_KEY, TRAINING_KEY, visitor_models

S = st.session_state
PARAM = "ws"
WS, SAVED, NOTICES, RETRY, GONE_KEY = (
    "cnnviz_ws",
    "cnnviz_ws_saved",
    "cnnviz_ws_notices",
    "cnnviz_ws_retry",
    "cnnviz_ws_gone",
)
SETTINGS_KEY = "cnnviz_settings"  # ui.settings' per-session store of kept settings
AUDIT_KEY = "audit_result"  # ui.audit.RESULT (not imported: it pulls pandas into every page)
IMPORTED_KEY = "trainer_imported"  # page 4's list of imported model zips
RETRY_AFTER = 30.0  # seconds before a failed write (disk full) is tried again

Items = dict[tuple[str, str], tuple[str, Callable[[], bytes]]]


class _Holder:
    """The process's store, opened on first use (and again after a failure to reach it)."""

    def __init__(self) -> None:
        self.store: Store | None = None
        self.error = ""
        self.tried = 0.0

    def get(self) -> Store | None:
        if self.store is None and time.time() - self.tried > RETRY_AFTER:
            self.tried = time.time()
            try:
                self.store = open_store()
                self.error = ""
            except StoreError as err:
                self.error = str(err)
        return self.store


@st.cache_resource(show_spinner=False)
def _holder() -> _Holder:
    # One store per process (a connection and a lock), shared by every session: each session only
    # ever reads and writes under its own unguessable id.
    return _Holder()


def enabled() -> bool:
    return workspaces_enabled()


def _notice(sentence: str) -> None:
    shown = S.setdefault(NOTICES, [])
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
                S[SAVED] = {}
        except StoreError as err:
            _notice(str(err))
            return
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
            )
        audit = store.read(ws, "audit", "result")
        if audit:
            S[AUDIT_KEY] = contents.unpack(audit)
    except StoreError:
        raise
    except (ValueError, KeyError, TypeError, IndexError) as err:  # an item this version cannot read
        _notice(f"Part of your workspace could not be read ({type(err).__name__}), so it was left out.")
    S[SAVED] = {item: fp for item, (fp, _) in _items().items()}  # what is in memory now is what is stored


# --------------------------------------------------------------------------- saving
def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _items() -> Items:
    """Everything this session would store now: ``{(kind, key): (fingerprint, make the bytes)}``.

    Fingerprints are cheap (object ids, small JSON digests); bytes are made only for items
    whose fingerprint differs from the last write.
    """
    found: Items = {}

    def add(kind: str, key: str, fingerprint: str, make: Callable[[], bytes]) -> None:
        found[(kind, key)] = (fingerprint, make)

    kept = {k: v for k, v in S.get(SETTINGS_KEY, {}).items() if _jsonable(v)}
    settings_bytes = json.dumps(kept, sort_keys=True, ensure_ascii=False).encode()
    add("settings", "all", _digest(settings_bytes), lambda: settings_bytes)

    models = visitor_models() if MODELS_KEY in S else {}
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
    page = {"models": list(models), "imported": [item["name"] for item in S.get(IMPORTED_KEY, [])]}
    page_bytes = json.dumps(page, ensure_ascii=False).encode()
    add("page", "state", _digest(page_bytes), lambda: page_bytes)

    trainer = S.get(TRAINING_KEY)
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
    audit = S.get(AUDIT_KEY)
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
    """Write what changed in this run (one transaction); a refused write leaves one sentence, never an error."""
    if not enabled() or WS not in S or S.get(GONE_KEY) or time.time() < S.get(RETRY, 0.0):
        return
    store = _holder().get()
    if store is None:
        return
    ws, saved = S[WS], S.get(SAVED, {})
    current = _items()
    puts, fingerprints = [], {}
    for item, (fingerprint, make) in current.items():
        if saved.get(item) == fingerprint:
            fingerprints[item] = fingerprint
            continue
        try:
            puts.append((*item, make()))
        except (TypeError, ValueError, OSError):
            continue  # an item that cannot be kept (e.g. a model Keras cannot save) stays in this tab only
        fingerprints[item] = fingerprint
    deletes = [item for item in saved if item not in current]
    if not puts and not deletes:
        return
    try:
        store.write(ws, puts, deletes)
    except WorkspaceGone:
        S[GONE_KEY] = True
        _notice(GONE)
        return
    except StoreError as err:
        S[RETRY] = time.time() + RETRY_AFTER
        _notice(str(err))
        return
    S[SAVED] = fingerprints
    S[NOTICES] = [n for n in S.get(NOTICES, []) if n == store.notice]  # saved again: the "not saved" sentence goes


def show_notices() -> None:
    """The store's sentences for this visitor (disk full, link expired, store restarted), once each."""
    for sentence in S.get(NOTICES, []):
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
        "Your images (as small thumbnails and the numbers the network computes from them, not the files), "
        "models and settings are saved on this server in a workspace that only your link opens, and deleted "
        f"{expiry_words()} after you last used it, or at once with “Delete my workspace” in the sidebar."
    )


def sidebar() -> None:
    """ "Copy my workspace link" and "Delete my workspace", in the sidebar of every page."""
    if not enabled() or current_id() is None:
        return
    with st.sidebar.expander("💾 Your workspace", expanded=False):
        st.markdown("**Copy my workspace link**")
        st.code(link(), language=None, wrap_lines=True)
        st.caption(
            "Whoever has this link sees your work (images, models, settings): keep it to come back, "
            f"share it only with people who may see it. It stops working {expiry_words()} after your last visit."
        )
        if st.button("🗑 Delete my workspace", key="ws_delete", help="Removes everything at once from this server."):
            delete()


def delete() -> None:
    """Remove this workspace from the store and everything this session holds; start an empty one."""
    store = _holder().get()
    ws = current_id()
    try:
        if store is not None and ws is not None:
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
