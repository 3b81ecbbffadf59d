"""Settings a lecturer wants to show again: kept per visitor, mirrored in the address bar.

Every selectbox, radio, slider and toggle that a page keeps goes through one of the widgets
here, so every page follows the same rules:

1. **A click always wins.** The widget's own value is what the page uses; the URL is only
   written after it, never read over it on a rerun.
2. **The URL seeds a setting** the first time this visitor's session draws it (a bookmark,
   a shared link), or when a page opens a link on purpose (:func:`follow_link`).
3. **Settings survive leaving the page.** Streamlit forgets the state of widgets that a run
   does not draw (going to another page and back would reset them); a copy is kept here and
   put back before the widget is drawn again.
4. **Bad values fall back.** A value in the URL that is not an option, not a number or out
   of range is ignored, silently: the default is used.
5. **Private choices stay private.** A value that is not ``shareable`` (a visitor's own
   upload or trained model) never goes into the URL; a value equal to the default is left
   out too, so links stay short.

Why not ``bind="query-params"`` alone: it writes an option's *label* into the URL (ours are
long titles), cannot keep a visitor's own upload out of a shareable link, and a slider whose
range shrinks (stride, a smaller model) must be clamped rather than reset. One helper for
every page keeps the rules above the same everywhere.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import streamlit as st
from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

__all__ = [
    "multiselect",
    "number_input",
    "radio",
    "select_slider",
    "selectbox",
    "slider",
    "text_input",
    "toggle",
    "kept",
    "forget",
    "value",
    "set_value",
    "follow_link",
    "begin_run",
]

_KEPT = "cnnviz_settings"  # widget key -> the visitor's last choice (survives page switches)
_PENDING = "cnnviz_link_pending"  # set by follow_link(): the next run reads its URL
_FOLLOW = "cnnviz_follow_link"  # set during that run


def kept(key: str, default: Any = None) -> Any:
    """The visitor's last choice for setting ``key`` (also while its widget is not drawn)."""
    return st.session_state.get(_KEPT, {}).get(key, default)


def forget(key: str) -> None:
    """Drop a setting, so its widget starts again from its default (the URL is left alone)."""
    st.session_state.get(_KEPT, {}).pop(key, None)
    st.session_state.pop(key, None)


def _prepare(
    key: str, default: Any, url: str | None, valid: Callable[[Any], bool], parse: Callable[[str], Any]
) -> None:
    """Put the right value into ``st.session_state[key]`` before its widget is drawn (rules 1–4).

    The URL is read only when this session has never drawn the setting, or when
    :func:`follow_link` asked for it. It is never compared with what the page wrote last:
    the browser can send a rerun with an address bar one step behind, and that must not
    undo a click.
    """
    state = st.session_state
    store = state.setdefault(_KEPT, {})
    # begin_run() only runs with the whole page: a fragment's rerun after a followed link is a click.
    following = state.get(_FOLLOW, False) and not _fragment_rerun()
    raw = st.query_params.get(url) if url else None
    if raw is not None and (key not in store or following):
        try:
            value = parse(raw)
        except (ValueError, TypeError, OverflowError, KeyError):
            value = None
        if value is not None and valid(value):
            store[key] = value
            state[key] = value
            return
    if following and url and raw is None and key in store:
        state[key] = store[key] = default  # the link leaves this setting at its default
        return
    if key in state and valid(state[key]):
        return  # the widget's current value: the visitor's click
    if key in store and valid(store[key]):
        state[key] = store[key]  # drawn again after a page switch
        return
    state[key] = default


def _fragment_rerun() -> bool:
    """Whether this script run reruns fragments only (a click inside an ``st.fragment``), not the page."""
    ctx = get_script_run_ctx()
    return bool(ctx is not None and ctx.fragment_ids_this_run)


def follow_link(page: Any, params: dict[str, str]) -> None:
    """Open ``page`` with ``params`` in the address bar as if the visitor had opened that link.

    Settings the link names take its values; the others return to their defaults. A workspace id
    (``ws``) in ``params`` is dropped: a link opens settings, never someone's work (this session's
    own ``ws`` is put back by :func:`ui.workspace.begin_run`).
    """
    st.session_state[_PENDING] = True
    st.switch_page(page, query_params={k: v for k, v in params.items() if k != "ws"})


def begin_run() -> None:
    """Called by the router before every page run: a link opened by :func:`follow_link` is read in
    the run it opened, and only in that one."""
    st.session_state[_FOLLOW] = st.session_state.pop(_PENDING, False)


def _commit(
    key: str,
    value: Any,
    default: Any,
    url: str | None,
    dump: Callable[[Any], str],
    shareable: Callable[[Any], bool] | None,
) -> Any:
    """Remember the widget's value and mirror it into the URL (rule 5)."""
    st.session_state[_KEPT][key] = value
    if url:
        if value == default or (shareable is not None and not shareable(value)):
            if url in st.query_params:
                del st.query_params[url]
        else:
            text = dump(value)
            if st.query_params.get(url) != text:
                st.query_params[url] = text
    return value


def _option_parser(options: Sequence[Any]) -> Callable[[str], Any]:
    by_text = {str(o): o for o in options}
    return lambda raw: by_text[raw]


def _number(kind: type, lo: float, hi: float) -> tuple[Callable[[str], Any], Callable[[Any], bool]]:
    def parse(raw: str) -> Any:
        value = kind(float(raw)) if kind is int and float(raw).is_integer() else kind(raw)
        return value

    def valid(value: Any) -> bool:
        return (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value)
            and lo <= value <= hi
        )

    return parse, valid


def _number_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def value(
    key: str,
    default: Any,
    *,
    url: str | None = None,
    parse: Callable[[str], Any] = str,
    valid: Callable[[Any], bool] = lambda v: True,
) -> Any:
    """A kept setting that is not one widget (an edited kernel grid): the same rules, read side."""
    _prepare(key, default, url, valid, parse)
    return st.session_state[key]


def set_value(key: str, new: Any, *, default: Any, url: str | None = None, dump: Callable[[Any], str] = str) -> Any:
    """Keep ``new`` for setting ``key`` (read by :func:`value`) and mirror it into the URL."""
    st.session_state[key] = new
    return _commit(key, new, default, url, dump, None)


def selectbox(
    label: str,
    options: Sequence[Any],
    *,
    key: str,
    default: Any = None,
    url: str | None = None,
    shareable: Callable[[Any], bool] | None = None,
    where: Any = st,
    **kwargs: Any,
) -> Any:
    """``st.selectbox`` under the rules above. The URL holds ``str(option)`` (an id, not the label)."""
    return _choice(where.selectbox, label, options, key, default, url, shareable, kwargs)


def radio(
    label: str,
    options: Sequence[Any],
    *,
    key: str,
    default: Any = None,
    url: str | None = None,
    where: Any = st,
    **kwargs: Any,
) -> Any:
    """``st.radio`` under the rules above."""
    return _choice(where.radio, label, options, key, default, url, None, kwargs)


def select_slider(
    label: str,
    options: Sequence[Any],
    *,
    key: str,
    default: Any,
    url: str | None = None,
    where: Any = st,
    **kwargs: Any,
) -> Any:
    """``st.select_slider`` under the rules above."""
    return _choice(where.select_slider, label, options, key, default, url, None, kwargs)


def _choice(
    widget: Callable[..., Any],
    label: str,
    options: Sequence[Any],
    key: str,
    default: Any,
    url: str | None,
    shareable: Callable[[Any], bool] | None,
    kwargs: dict[str, Any],
) -> Any:
    """One choice among ``options`` (selectbox, radio, select slider); a default not among them is the first."""
    options = list(options)
    default = options[0] if default not in options else default
    _prepare(key, default, url, lambda v: v in options, _option_parser(options))
    value = widget(label, options, key=key, **kwargs)
    return _commit(key, value, default, url, str, shareable)


def slider(
    label: str,
    lo: int | float,
    hi: int | float,
    *,
    key: str,
    default: int | float,
    url: str | None = None,
    where: Any = st,
    **kwargs: Any,
) -> Any:
    """``st.slider`` under the rules above; a kept value outside a shrunken range is clamped, not reset."""
    kind = float if isinstance(lo, float) or isinstance(hi, float) else int
    parse, valid = _number(kind, lo, hi)
    current = st.session_state.get(key, kept(key))
    if isinstance(current, (int, float)) and not isinstance(current, bool) and math.isfinite(current):
        st.session_state[key] = kind(min(max(current, lo), hi))  # e.g. the output row after a larger stride
    _prepare(key, kind(min(max(default, lo), hi)), url, valid, parse)
    value = where.slider(label, lo, hi, key=key, **kwargs)
    return _commit(key, value, default, url, _number_text, None)


def number_input(
    label: str,
    lo: int | float,
    hi: int | float,
    *,
    key: str,
    default: int | float,
    url: str | None = None,
    where: Any = st,
    **kwargs: Any,
) -> Any:
    """``st.number_input`` under the rules above (``?epochs=abc`` or ``?epochs=99999`` → the default)."""
    kind = float if isinstance(lo, float) or isinstance(hi, float) else int
    parse, valid = _number(kind, lo, hi)
    _prepare(key, default, url, valid, parse)
    value = where.number_input(label, lo, hi, key=key, **kwargs)
    return _commit(key, value, default, url, _number_text, None)


def toggle(label: str, *, key: str, default: bool, url: str | None = None, where: Any = st, **kwargs: Any) -> bool:
    """``st.toggle`` under the rules above; the URL holds ``1`` or ``0``."""
    _prepare(key, default, url, lambda v: isinstance(v, bool), lambda raw: {"1": True, "0": False}[raw])
    value = where.toggle(label, key=key, **kwargs)
    return _commit(key, bool(value), default, url, lambda v: "1" if v else "0", None)


def multiselect(
    label: str,
    options: Sequence[str],
    *,
    key: str,
    default: Sequence[str],
    url: str | None = None,
    where: Any = st,
    **kwargs: Any,
) -> list[str]:
    """``st.multiselect`` of strings under the rules above; the URL holds them comma-separated."""
    options = list(options)
    default = [d for d in default if d in options]

    def parse(raw: str) -> list[str]:
        return [o for o in raw.split(",") if o in options]

    _prepare(key, default, url, lambda v: isinstance(v, list) and all(o in options for o in v), parse)
    value = where.multiselect(label, options, key=key, **kwargs)
    return _commit(key, list(value), default, url, ",".join, None)


def text_input(
    label: str, *, key: str, default: str, url: str | None = None, max_chars: int = 60, where: Any = st, **kwargs: Any
) -> str:
    """``st.text_input`` under the rules above (at most ``max_chars`` characters from a URL)."""
    _prepare(key, default, url, lambda v: isinstance(v, str) and len(v) <= max_chars, str)
    value = where.text_input(label, key=key, max_chars=max_chars, **kwargs)
    return _commit(key, value, default, url, str, None)
