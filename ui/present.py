"""Lecture mode: presenter mode, stepping through a page, and the lecture plan in the sidebar.

- **Presenter mode** is a setting like any other (:mod:`ui.settings`), kept in the URL as
  ``?present=1``: large black type, prose folded behind "Explain" (:func:`explain`), pictures no
  taller than the screen, and the page shown one step at a time.
- **Steps**: a page marks where each of its sections begins with :func:`step` (one line, no
  re-indenting, so the page stays as it is outside presenter mode). In presenter mode CSS shows
  only the current step; the step is ``?step=N`` in the URL. Next/Previous buttons in the sidebar
  answer →/← and PageDown/PageUp (what a presentation clicker sends); past the last step they
  open the plan's next view.
- **The lecture plan** (:mod:`cnnviz.plan`): "add this view", reorder, retitle, remove; one link
  (``?plan=…``) or a JSON file opens it again, in any browser. A view keeps the address bar's
  settings, never the workspace or presenter mode; a visitor's own uploads and models are not in
  the address bar to begin with (:mod:`ui.settings`), so they are not in a plan either.

:func:`frame` is called by ``app.py`` before every page.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import urlencode, urlsplit

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from cnnviz import plan
from cnnviz.charts import style
from cnnviz.plan import PlanError, View
from cnnviz.text import plain
from ui import settings

__all__ = ["STEPS", "frame", "presenting", "step", "current_step", "explain"]

# Step titles per page id, in page order. A page marks each step's start with step(n).
STEPS: dict[str, list[str]] = {
    "neuron": ["Weights by hand", "An activation function", "Two layers can do it", "Watch them learn", "Softmax"],
    "convolution": [
        "A picture and a kernel",
        "Slide the kernel",
        "Play: the kernel slides",
        "One output pixel, by hand",
        "Cross-correlation",
        "Colour channels",
    ],
    "feature_maps": [
        "The image and the answer",
        "The layers",
        "One layer, its channels, one enlarged",
        "First-layer kernels",
        "Grad-CAM",
        "Two images",
    ],
    "trainer": [
        "Your classes and images",
        "Train",
        "How well did it learn?",
        "Test it on new images",
        "Take it home, bring it back",
    ],
    "audit": [
        "The model and the sets",
        "Run the audit",
        "What the measures say",
        "The most confident failures",
        "Take the report home",
        "Change only the style",
    ],
    "scratch": ["The data", "The network", "Train it and watch", "What it learnt", "Runs side by side"],
}
PAGE_TITLES = {
    "home": "Start here",
    "neuron": "1 · Neuron",
    "convolution": "2 · Convolution",
    "feature_maps": "3 · Feature maps",
    "trainer": "4 · Trainer",
    "scratch": "CNN from scratch",
    "audit": "5 · Audit",
}
CARRIED = ("ws", "present")  # kept when a plan opens its next view, never saved in the plan

_PLAN = "cnnviz_plan"  # [(id, View)] in order
_NEXT_ID = "cnnviz_plan_next_id"
_SEEN = "cnnviz_plan_seen"  # the last ?plan= read from a link (edits must not be undone by it)
_GOTO = "cnnviz_plan_goto"  # a view index to open at the start of the next run
_PAGE = "cnnviz_present_page"

# Large black type on white, thick focus outlines; headings and numbers larger still. Sizes are in
# px so they do not depend on the browser's zoom default; pictures never taller than the screen.
_CSS = """
<style>
[data-testid="stMain"] p, [data-testid="stMain"] li, [data-testid="stMain"] label,
[data-testid="stMain"] [data-testid="stCaptionContainer"], [data-testid="stMain"] [data-testid="stCaptionContainer"] p,
[data-testid="stMain"] [data-testid="stImageCaption"], [data-testid="stMain"] [data-testid="stImageCaption"] p,
[data-testid="stMain"] [data-testid="stWidgetLabel"] p, [data-testid="stMain"] input,
[data-testid="stMain"] [data-baseweb="select"] div, [data-testid="stMain"] button p,
[data-testid="stMain"] [data-testid="stAlertContentInfo"] p {
  font-size: 24px !important; line-height: 1.35 !important; color: #000 !important; opacity: 1 !important;
}
[data-testid="stMain"] h1 { font-size: 38px !important; padding: 0 0 0.2rem 0 !important; color: #000 !important; }
[data-testid="stMain"] h2 { font-size: 32px !important; padding: 0.1rem 0 !important; color: #000 !important; }
[data-testid="stMain"] h3, [data-testid="stMain"] h4 { font-size: 28px !important; color: #000 !important; }
[data-testid="stMain"] [data-testid="stMetricValue"], [data-testid="stMain"] [data-testid="stMetricValue"] * {
  font-size: 40px !important; line-height: 1.1 !important; color: #000 !important;
}
[data-testid="stMain"] .katex { font-size: 1.5em !important; color: #000 !important; }
[data-testid="stMainBlockContainer"] {
  padding: 0.8rem 1.5rem 2rem 1.5rem !important; max-width: none !important;
}
[data-testid="stMain"] [data-testid="stVerticalBlock"] { gap: 0.6rem; }
[data-testid="stMain"] [data-testid="stExpander"] summary { padding-top: 0.2rem; padding-bottom: 0.2rem; }
[data-testid="stMain"] [data-testid="stImage"] img { max-height: 56vh; width: auto !important; max-width: 100%; object-fit: contain !important; }
[data-testid="stMain"] [data-testid="stExpander"] summary p { font-weight: 700; }
.stApp { background: #fff; }
[data-testid="stLayoutWrapper"]:has(> [class*="st-key-cnnviz-step-"]) { display: none !important; }
</style>
"""


# ------------------------------------------------------------------------------ presenter mode
def presenting() -> bool:
    """Whether presenter mode is on (the sidebar toggle, kept in the URL as ``present=1``)."""
    return bool(settings.kept("present", False))


def _chart_scale() -> float:
    # Asked by every chart builder; outside a page run (a background job) there is no visitor.
    return style.PRESENTER_SCALE if get_script_run_ctx() is not None and presenting() else 1.0


style.use_scale(_chart_scale)


def explain(body: str, **kwargs: Any) -> None:
    """Explanatory prose: shown as Markdown, or folded behind "Explain" in presenter mode."""
    (st.expander("💬 Explain") if presenting() else st.container()).markdown(body, **kwargs)


def current_step(page_id: str) -> int:
    """The step shown (1-based) from ``?step=``; anything but a step number of this page is 1."""
    raw = st.query_params.get("step", "1")
    count = len(STEPS.get(page_id, []))
    return int(raw) if raw.isdigit() and 1 <= int(raw) <= count else 1


def step(n: int) -> None:
    """Mark where step ``n`` of the page begins (an empty keyed container; CSS does the rest)."""
    # An empty container is not drawn at all, so the marker holds one invisible element.
    st.container(key=f"cnnviz-step-{n}", border=False).markdown("&#8203;")


def _step_css(n: int, count: int) -> str:
    # Markers are siblings in the page's main block, each wrapped by Streamlit in a layout wrapper.
    # Hidden: what lies between the first marker and marker n, and from marker n + 1 on; the title
    # above the first marker stays.
    def marker(k: int) -> str:
        return f'[data-testid="stLayoutWrapper"]:has(> .st-key-cnnviz-step-{k})'

    rules = []
    if n > 1:
        rules.append(f"{marker(1)} ~ *:not({marker(n)}, {marker(n)} ~ *)")
    if n < count:
        rules.append(f"{marker(n + 1)} ~ *")
    return f"<style>{', '.join(rules)} {{ display: none !important; }}</style>" if rules else ""


# ------------------------------------------------------------------------------ the plan
def _entries() -> list[tuple[int, View]]:
    return st.session_state.setdefault(_PLAN, [])


def _views() -> list[View]:
    return [v for _, v in _entries()]


def _set_views(views: list[View]) -> None:
    start = st.session_state.get(_NEXT_ID, 0)
    st.session_state[_PLAN] = [(start + i, v) for i, v in enumerate(views)]
    st.session_state[_NEXT_ID] = start + len(views)


def _view_title(page_id: str) -> str:
    steps = STEPS.get(page_id, [])
    if presenting() and steps:
        return f"{PAGE_TITLES[page_id]} · {steps[current_step(page_id) - 1]}"
    return PAGE_TITLES.get(page_id, page_id)


def _add(page_id: str) -> None:
    title = (st.session_state.get("plan_new_title") or "").strip()[: plan.MAX_TITLE] or _view_title(page_id)
    if len(_entries()) >= plan.MAX_VIEWS:
        st.session_state["plan_message"] = f"A plan holds at most {plan.MAX_VIEWS} views."
        return
    new_id = st.session_state.get(_NEXT_ID, 0)
    st.session_state[_NEXT_ID] = new_id + 1
    _entries().append((new_id, View(title, page_id, plan.view_params(st.query_params.to_dict()))))
    st.session_state["plan_new_title"] = ""


def _move(uid: int, delta: int) -> None:
    entries = _entries()
    i = next(i for i, (u, _) in enumerate(entries) if u == uid)
    st.session_state[_PLAN] = plan.moved(entries, i, delta)


def _remove(uid: int) -> None:
    st.session_state[_PLAN] = [(u, v) for u, v in _entries() if u != uid]


def _retitle(uid: int) -> None:
    text = (st.session_state.get(f"plan_title_{uid}") or "").strip()[: plan.MAX_TITLE]
    st.session_state[_PLAN] = [
        (u, dataclasses.replace(v, title=text or v.title) if u == uid else v) for u, v in _entries()
    ]


def _current_view() -> int | None:
    """The open view's index (0-based) when this run came from a plan's link, else ``None``."""
    raw = st.query_params.get("view", "")
    count = len(_entries())
    return int(raw) - 1 if raw.isdigit() and 1 <= int(raw) <= count and "plan" in st.query_params else None


def _open(index: int) -> None:
    """Open view ``index`` of the plan as its link would (settings it names, the rest at defaults)."""
    views = _views()
    view = views[index]
    code = plan.to_code(views)
    st.session_state[_SEEN] = code
    params = dict(view.params)
    params.update({k: st.query_params[k] for k in CARRIED if k in st.query_params})
    if presenting():
        params["present"] = "1"
    params.update(plan=code, view=str(index + 1))
    settings.follow_link(f"pages/{view.page}.py", params)


def _read_link() -> None:
    """A ``?plan=`` link not read before replaces the plan; without ``view`` its first view opens."""
    code = st.query_params.get("plan")
    if not code or code == st.session_state.get(_SEEN):
        return
    st.session_state[_SEEN] = code
    try:
        views = plan.from_code(code)
    except PlanError as err:
        st.session_state["plan_message"] = str(err)
        return
    _set_views(views)
    if _current_view() is None:
        _open(0)


def _go(delta: int, page_id: str) -> None:
    """Next/Previous: the page's next step in presenter mode, else the plan's next view."""
    count = len(STEPS.get(page_id, []))
    n = current_step(page_id) + delta
    if presenting() and count and 1 <= n <= count:
        if n == 1:
            del st.query_params["step"]
        else:
            st.query_params["step"] = str(n)
        return
    view = _current_view()
    if view is not None and 0 <= view + delta < len(_entries()):
        st.session_state[_GOTO] = view + delta  # switch_page cannot run inside a callback


def _jump(index: int) -> None:
    if 0 <= index < len(_entries()):
        st.session_state[_GOTO] = index


def _base_url() -> str:
    url = st.context.url or "http://localhost:8501/"
    parts = urlsplit(url)
    base = parts.path.rsplit("/", 1)[0] if parts.path.count("/") > 1 else ""
    return f"{parts.scheme}://{parts.netloc}{base}"


def _navigation(page_id: str) -> None:
    steps = STEPS.get(page_id, [])
    view = _current_view()
    if not (presenting() and steps) and view is None:
        return
    lines = []
    if presenting() and steps:
        n = current_step(page_id)
        lines.append(f"**Step {n} of {len(steps)}** · {steps[n - 1]}")
    if view is not None:
        lines.append(f"**View {view + 1} of {len(_entries())}** · {_views()[view].title}")
    st.markdown("  \n".join(lines))
    back, forward = st.columns(2)
    back.button("◀ Previous", key="present_prev", shortcut="Left", on_click=_go, args=(-1, page_id), width="stretch")
    forward.button("Next ▶", key="present_next", shortcut="Right", on_click=_go, args=(1, page_id), width="stretch")
    if view is not None:
        back, forward = st.columns(2)
        back.button("⏮ Previous view", key="present_prev_view", on_click=_jump, args=(view - 1,), width="stretch")
        forward.button("Next view ⏭", key="present_next_view", on_click=_jump, args=(view + 1,), width="stretch")
    # A presentation clicker sends PageDown/PageUp; a button takes one shortcut, so two more (hidden).
    with st.container(key="present_clicker"):
        st.button("Next", key="present_pgdn", shortcut="PageDown", on_click=_go, args=(1, page_id))
        st.button("Previous", key="present_pgup", shortcut="PageUp", on_click=_go, args=(-1, page_id))


def _plan_panel(page_id: str) -> None:
    entries = _entries()
    message = st.session_state.pop("plan_message", None)
    if message:  # outside the folded panel: a damaged link must be noticed
        st.error(plain(message), icon="🚫")  # it can quote a page name from a link
    # A constant label: Streamlit folds an expander whose label changes. on_change="rerun": its
    # contents (an uploader, text inputs, the link's code block and its 1.5 MB highlighter) are
    # drawn only while it is open, not on every rerun of every page.
    panel = st.expander("🗂️ Lecture plan", expanded=False, key="plan_panel", on_change="rerun")
    if not panel.open:
        return
    with panel:
        st.markdown(f"**{len(entries)} view{'s' if len(entries) != 1 else ''}** in this plan")
        st.text_input(
            "Title of this view", key="plan_new_title", max_chars=plan.MAX_TITLE, placeholder=_view_title(page_id)
        )
        st.button("➕ Add this view to my plan", key="plan_add", on_click=_add, args=(page_id,), width="stretch")
        for pos, (uid, view) in enumerate(entries):
            with st.container(key=f"plan_row_{uid}"):
                st.session_state.setdefault(f"plan_title_{uid}", view.title)
                st.text_input(
                    f"{pos + 1} · {PAGE_TITLES.get(view.page, view.page)}",
                    key=f"plan_title_{uid}",
                    max_chars=plan.MAX_TITLE,
                    on_change=_retitle,
                    args=(uid,),
                )
                c1, c2, c3, c4 = st.columns([2, 1, 1, 1])
                c1.button("Open", key=f"plan_open_{uid}", on_click=st.session_state.__setitem__, args=(_GOTO, pos))
                c2.button("↑", key=f"plan_up_{uid}", on_click=_move, args=(uid, -1), disabled=pos == 0, help="Move up")
                last = pos == len(entries) - 1
                c3.button("↓", key=f"plan_down_{uid}", on_click=_move, args=(uid, 1), disabled=last, help="Move down")
                c4.button("✕", key=f"plan_del_{uid}", on_click=_remove, args=(uid,), help="Remove this view")
        if entries:
            try:
                link = f"{_base_url()}/?{urlencode({'plan': plan.to_code(_views()), 'present': '1'})}"
                st.markdown("**Link to this plan** (opens its first view in presenter mode):")
                st.code(link, language=None, wrap_lines=True)
            except PlanError as err:
                st.warning(plain(err))
            st.download_button(
                "⬇️ Download the plan (JSON)",
                plan.to_json(_views()),
                file_name="lecture-plan.json",
                mime="application/json",
                key="plan_download",
                width="stretch",
            )
        upload = st.file_uploader("Load a plan (JSON)", type=["json"], key="plan_upload")
        if upload is not None and st.session_state.get("plan_loaded") != upload.file_id:
            st.session_state["plan_loaded"] = upload.file_id
            try:
                _set_views(plan.from_json(upload.getvalue()))
                st.rerun()
            except PlanError as err:
                st.error(plain(err), icon="🚫")  # it can quote a page name from the file
        st.caption(
            "A plan keeps each view's settings from the address bar. Your own uploaded images and models "
            "are not in a plan or its link: a view that showed one opens with the page's default instead."
        )


def frame(page_id: str) -> None:
    """Presenter mode, steps and the lecture plan around the page about to run (``app.py``)."""
    st.session_state[_PAGE] = page_id
    _read_link()
    goto = st.session_state.pop(_GOTO, None)
    if isinstance(goto, int) and 0 <= goto < len(_entries()):
        _open(goto)
    with st.sidebar:
        on = settings.toggle(
            "🎓 Presenter mode",
            key="present",
            default=False,
            url="present",
            help="Large type for a hall, prose folded behind Explain, one step at a time (→ / PageDown).",
        )
        _navigation(page_id)
        _plan_panel(page_id)
    if on:
        steps = STEPS.get(page_id, [])
        hide_clicker = "<style>.st-key-present_clicker { display: none !important; }</style>"
        st.html(_CSS + hide_clicker + (_step_css(current_step(page_id), len(steps)) if steps else ""))
    else:
        st.html("<style>.st-key-present_clicker { display: none !important; }</style>")
