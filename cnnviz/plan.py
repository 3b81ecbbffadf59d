"""A lecture plan: an ordered list of saved views, as a small JSON document and as one link.

A *view* is what a lecturer wants to show again: a page and the settings in its address bar
(``{"title": "Sobel edges", "page": "convolution", "params": {"kernel": "sobel-x"}}``).
A plan is a list of views, walked through in order. It travels two ways:

- a JSON file (:func:`to_json` / :func:`from_json`), to download, edit and load again;
- a compact link parameter (:func:`to_code` / :func:`from_code`): the JSON, deflated and
  base64url-encoded, so one ``?plan=…`` link opens the whole plan.

Both come from strangers (a link in an e-mail, a file from a colleague), so reading is strict:
anything that is not a small, well-formed plan raises :class:`PlanError`, whose ``str()`` is one
sentence for a non-programmer. A view never keeps the keys in :data:`NOT_SAVED` (the workspace,
presenter mode, the plan's own position): a plan link must not open someone's workspace.
Visitor uploads never reach a view in the first place, because :mod:`ui.settings` keeps them out
of the address bar.

>>> plan = [View("Edges", "convolution", {"kernel": "sobel-x", "stride": "2"})]
>>> from_code(to_code(plan)) == plan
True
>>> from_json('[{"title": "x", "page": "nowhere", "params": {}}]')
Traceback (most recent call last):
...
cnnviz.plan.PlanError: View 1 opens a page this app does not have ("nowhere").
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import zlib
from dataclasses import dataclass, field
from typing import Any, Mapping, TypeVar

__all__ = [
    "moved",
    "PAGES",
    "NOT_SAVED",
    "MAX_VIEWS",
    "MAX_TITLE",
    "View",
    "PlanError",
    "view_params",
    "to_json",
    "from_json",
    "to_code",
    "from_code",
]

# Page ids are the pages' file names (= their url_path; the home page's is "").
PAGES = ("home", "neuron", "convolution", "feature_maps", "trainer", "scratch", "audit")
T = TypeVar("T")
NOT_SAVED = frozenset({"ws", "present", "plan", "view"})  # the step is part of a view
MAX_VIEWS = 40
MAX_TITLE = 80
MAX_PARAMS = 40  # the busiest page (convolution) keeps about 20 settings
MAX_VALUE = 400  # an edited 7 × 7 kernel is about 150 characters
MAX_JSON = 64_000  # bytes: a full plan is a few kilobytes
MAX_CODE = 8_000  # characters of ?plan=…; browsers and servers accept URLs of this length
_KEY = re.compile(r"[a-z][a-z0-9_]{0,39}")


class PlanError(ValueError):
    """A plan that cannot be read; ``str()`` is one sentence for a non-programmer."""


@dataclass(frozen=True)
class View:
    """One saved view: a title the lecturer chose, a page id from :data:`PAGES`, its settings.

    ``params`` maps address-bar names to their text values, as the page wrote them.
    """

    title: str
    page: str
    params: dict[str, str] = field(default_factory=dict)


def moved(items: list[T], index: int, delta: int) -> list[T]:
    """``items`` with the one at ``index`` moved ``delta`` places (−1 up, +1 down), stopping at either end."""
    out = list(items)
    target = min(max(index + delta, 0), len(out) - 1)
    out.insert(target, out.pop(index))
    return out


def view_params(query: Mapping[str, Any]) -> dict[str, str]:
    """The settings of an address bar worth saving: every key but :data:`NOT_SAVED`, sorted.

    >>> view_params({"ws": "abc", "kernel": "blur", "present": "1", "step": "2"})
    {'kernel': 'blur', 'step': '2'}
    """
    return {str(k): str(v) for k, v in sorted(query.items()) if str(k) not in NOT_SAVED}


def _check(views: list[View]) -> list[View]:
    if not views:
        raise PlanError("The plan has no views; add at least one view first.")
    if len(views) > MAX_VIEWS:
        raise PlanError(f"The plan has {len(views)} views; a plan can hold at most {MAX_VIEWS}.")
    return views


def _view(item: Any, number: int) -> View:
    if not isinstance(item, dict):
        raise PlanError(f"View {number} is not a title, a page and its settings.")
    title, page, params = item.get("title", ""), item.get("page"), item.get("params", {})
    if not isinstance(title, str) or len(title) > MAX_TITLE:
        raise PlanError(f"The title of view {number} must be text of at most {MAX_TITLE} characters.")
    if page not in PAGES:
        shown = str(page)[:40] if isinstance(page, (str, int, float)) else "?"
        raise PlanError(f'View {number} opens a page this app does not have ("{shown}").')
    if not isinstance(params, dict) or len(params) > MAX_PARAMS:
        raise PlanError(f"The settings of view {number} must be at most {MAX_PARAMS} names with text values.")
    for key, value in params.items():
        if not isinstance(key, str) or not _KEY.fullmatch(key) or key in NOT_SAVED:
            raise PlanError(f"View {number} has a setting with a name this app does not use.")
        if not isinstance(value, str) or len(value) > MAX_VALUE:
            raise PlanError(f"The setting {key} of view {number} must be text of at most {MAX_VALUE} characters.")
    # Control characters in a title would be invisible on the slide and confusing in a file name.
    clean = "".join(ch for ch in title if ch.isprintable()).strip() or f"View {number}"
    return View(clean, str(page), dict(params))


def _views(data: Any) -> list[View]:
    if isinstance(data, dict):  # the downloaded file: {"cnnviz_plan": 1, "views": [...]}
        data = data.get("views")
    if not isinstance(data, list):
        raise PlanError("This is not a cnnviz lecture plan: it has no list of views.")
    if len(data) > MAX_VIEWS:
        raise PlanError(f"The plan has {len(data)} views; a plan can hold at most {MAX_VIEWS}.")
    return _check([_view(item, n) for n, item in enumerate(data, start=1)])


def _document(views: list[View]) -> dict[str, Any]:
    return {
        "cnnviz_plan": 1,
        "views": [{"title": v.title, "page": v.page, "params": dict(v.params)} for v in views],
    }


def to_json(views: list[View]) -> str:
    """The plan as the JSON file a lecturer downloads (readable, one view per block)."""
    return json.dumps(_document(_check(list(views))), indent=2, ensure_ascii=False)


def from_json(text: str | bytes) -> list[View]:
    """Read a plan file (as written by :func:`to_json`, or a bare list of views); strict."""
    if len(text) > MAX_JSON:
        raise PlanError(f"This file is too large for a lecture plan (at most {MAX_JSON // 1000} kB).")
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise PlanError("This file is not a lecture plan: it is not readable JSON.") from None
    return _views(data)


def to_code(views: list[View]) -> str:
    """The plan as one URL-safe text for ``?plan=`` (deflated JSON in base64url, no padding)."""
    raw = json.dumps(_document(_check(list(views)))["views"], separators=(",", ":"), ensure_ascii=False)
    code = base64.urlsafe_b64encode(zlib.compress(raw.encode(), 9)).decode().rstrip("=")
    if len(code) > MAX_CODE:
        raise PlanError("This plan is too long for one link; download it as a file instead.")
    return code


def from_code(code: str) -> list[View]:
    """Read ``?plan=`` text written by :func:`to_code`; strict, and safe against a zip bomb."""
    if not isinstance(code, str) or not code or len(code) > MAX_CODE:
        raise PlanError("This link's lecture plan is empty or too long to read.")
    try:
        packed = base64.urlsafe_b64decode(code + "=" * (-len(code) % 4))
        inflater = zlib.decompressobj()
        raw = inflater.decompress(packed, MAX_JSON)
        if inflater.unconsumed_tail or not inflater.eof:
            raise PlanError("This link's lecture plan is damaged or too large to read.")
        data = json.loads(raw.decode())
    except PlanError:
        raise
    except (ValueError, binascii.Error, zlib.error, UnicodeDecodeError):
        raise PlanError("This link's lecture plan is damaged (was the link cut short?).") from None
    return _views(data)
