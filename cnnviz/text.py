"""Visitor-controlled text shown as text: file names, folder and class names, model and layer names.

Streamlit renders ``st.markdown``, ``st.caption``, ``st.error`` and friends as Markdown with
some HTML. A file called ``[Log in again](https://evil.example) ![](http://127.0.0.1:9/px.png).png``
would otherwise become a working link and make every viewer's browser fetch an outside address.
:func:`plain` escapes such a string so it renders literally; :func:`clean_class_name` is the rule
for names a visitor gives to classes. Never imports Streamlit.
"""

from __future__ import annotations

import html
import re
import unicodedata

__all__ = ["plain", "clean_class_name", "ClassNameError"]

# Every character CommonMark (and Streamlit's extensions: $ maths, ~ strike, : emoji shortcodes)
# gives a meaning to. A backslash before any ASCII punctuation makes it literal; "." ":" and "@"
# too, because GitHub-flavoured Markdown turns bare "www.x.org", "https://x" and "a@b.org" into links.
_MARKDOWN = set("\\`*_{}[]()<>#+-.!|~$:=&\"'@")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
MAX_CLASS_NAME = 60


def plain(s: object) -> str:
    """``s`` as Markdown that renders exactly as the characters of ``s``: no link, image, HTML or emphasis.

    Markdown punctuation gets a backslash; ``<`` and ``>`` (which Markdown escapes do not stop in
    every renderer) become HTML entities; line breaks and other control characters become spaces,
    so a name cannot start a new list item or heading.
    """
    text = _CONTROL.sub(" ", str(s)).replace("\r", " ").replace("\n", " ").replace("\t", " ")
    out = []
    for ch in text:
        if ch == "<":
            out.append("&lt;")
        elif ch == ">":
            out.append("&gt;")
        elif ch == "&":
            out.append("&amp;")
        elif ch in _MARKDOWN:
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def html_text(s: object) -> str:
    """``s`` escaped for an HTML page (quotes included), for reports written by hand."""
    return html.escape(str(s), quote=True)


class ClassNameError(ValueError):
    """A class name that cannot be used; ``str()`` is one sentence for the visitor."""


def clean_class_name(name: object) -> str:
    """The class name a visitor typed, tidied; raises :class:`ClassNameError` (one sentence) when nothing is left.

    Line breaks, tabs and invisible control characters become single spaces (a name must fit on
    one line of ``labels.txt`` and of a chart axis), runs of spaces shrink to one, the ends are
    trimmed and the name is cut to 60 characters. A blank name is refused.
    """
    text = unicodedata.normalize("NFC", str(name if name is not None else ""))
    text = _CONTROL.sub(" ", text)
    text = re.sub(r"\s+", " ", text).strip()[:MAX_CLASS_NAME].strip()
    if not text:
        raise ClassNameError("A class name cannot be blank; please type a name with at least one letter or digit.")
    return text
