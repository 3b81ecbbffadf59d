"""Visitor text rendered literally, class-name rules, and the limits a server sets by environment variable."""

from __future__ import annotations

import html
import re

import numpy as np
import pytest

from cnnviz import limits
from cnnviz.text import ClassNameError, clean_class_name, plain
from tests.bad_inputs.hostile import INJECTION_NAME


def _markdown_to_html(text: str) -> str:
    """Render as CommonMark with raw HTML on and GFM tables (markdown-it, which Streamlit's rich brings).

    Bare-URL autolinks are GFM-only; the browser test checks those in Streamlit's real front end.
    """
    markdown_it = pytest.importorskip("markdown_it")
    md = markdown_it.MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    return md.render(text)


@pytest.mark.parametrize(
    "name",
    [
        INJECTION_NAME,
        "**bold** _it_ `code` ~~gone~~ $x^2$ :smile: # heading",
        "www.evil.example and https://evil.example and someone@evil.example",
        "1. not a list\n- nor this\n> nor a quote",
        "a | table | row",
        "<script>alert(1)</script>&amp; &lt;",
    ],
)
def test_plain_renders_every_character_literally(name):
    rendered = _markdown_to_html(plain(name))
    assert "<a" not in rendered and "<img" not in rendered and "<script" not in rendered
    assert "<strong>" not in rendered and "<em>" not in rendered and "<code>" not in rendered
    assert "<h1>" not in rendered and "<ol>" not in rendered and "<ul>" not in rendered and "<table>" not in rendered
    text = html.unescape(re.sub(r"<[^>]+>", "", rendered)).strip()
    assert text == re.sub(r"\s", " ", name)  # line breaks become spaces, nothing else changes


def test_plain_keeps_ordinary_names_readable():
    assert plain("Portraits 1890–1910") == "Portraits 1890–1910"
    assert plain("Ölbild ñ 日本") == "Ölbild ñ 日本"


def test_clean_class_name_keeps_one_line_and_refuses_blank():
    assert clean_class_name("  two\nlines\t ") == "two lines"
    assert clean_class_name("zero\u200bwidth\x00") == "zero width"
    assert clean_class_name("x" * 80) == "x" * 60
    for blank in ("", "   ", "\n\t", "\u200b\u200e", None):
        with pytest.raises(ClassNameError, match="cannot be blank"):
            clean_class_name(blank)


def test_limits_come_from_the_environment_and_ignore_typos(monkeypatch):
    assert limits.limit("CNNVIZ_MAX_MODEL_PARAMS") == 50_000_000
    monkeypatch.setenv("CNNVIZ_MAX_MODEL_PARAMS", "1_000")
    assert limits.limit("CNNVIZ_MAX_MODEL_PARAMS") == 1000
    for typo in ("abc", "-5", "0", "1e9", ""):
        monkeypatch.setenv("CNNVIZ_MAX_MODEL_PARAMS", typo)
        assert limits.limit("CNNVIZ_MAX_MODEL_PARAMS") == 50_000_000


def test_every_limit_is_documented_in_the_readme():
    readme = limits.__file__.rsplit("/cnnviz/", 1)[0] + "/README.md"
    text = open(readme, encoding="utf-8").read()
    for name, default in limits.DEFAULTS.items():
        assert f"`{name}`" in text, name
        assert f"{default:,}".replace(",", " ") in text or f"{default:,}" in text, (name, default)


def test_visitor_model_caps(monkeypatch):
    registry = pytest.importorskip("cnnviz.model.registry")
    registry.check_visitor_models([], 5_000_000)
    registry.check_visitor_models([1] * 4, 1)
    with pytest.raises(registry.ModelError, match="already uploaded 5 models"):
        registry.check_visitor_models([1] * 5, 1)
    with pytest.raises(registry.ModelError, match="would hold 120,000,000 parameters"):
        registry.check_visitor_models([60_000_000], 60_000_000)
    monkeypatch.setenv("CNNVIZ_MAX_VISITOR_MODELS", "1")
    with pytest.raises(registry.ModelError, match="already uploaded 1 models"):
        registry.check_visitor_models([10], 10)
    monkeypatch.setenv("CNNVIZ_MAX_MODEL_INPUT_PIXELS", "1000")
    with pytest.raises(registry.ModelError, match="takes pictures of 224 × 224"):
        registry.check_size([(None, 224, 224, 3)], 10)


def test_images_a_visitor_holds_are_capped_and_a_seminar_collection_fits(monkeypatch):
    session = pytest.importorskip("cnnviz.train.session")
    from cnnviz.limits import DEFAULTS

    assert session.TrainingSession().store.max_images == DEFAULTS["CNNVIZ_MAX_VISITOR_IMAGES"] >= 5_000 + 1_000
    assert DEFAULTS["CNNVIZ_MAX_VISITOR_PICTURES"] * 1024 * 1024 * 3 <= 200_000_000  # pickers: ≤ 200 MB a visitor
    monkeypatch.setenv("CNNVIZ_MAX_VISITOR_IMAGES", "3")
    store = session.TrainingSession().store
    assert store.max_images == 3
    for i in range(5):
        store.put(f"k{i}", "base", np.zeros(4, np.float32), np.zeros((8, 8, 3), np.uint8))
    assert len(store) == 3  # the oldest were dropped, never more than the server allows
