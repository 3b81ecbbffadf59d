"""The router lists only pages that exist, and the home page renders."""

from __future__ import annotations

import ast
from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]


def routed_pages() -> list[str]:
    tree = ast.parse((ROOT / "app.py").read_text())
    return [
        str(node.args[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "attr", "") == "Page"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    ]


def test_every_routed_page_exists_and_every_page_is_routed():
    routed = routed_pages()
    assert "pages/home.py" in routed
    for page in routed:
        assert (ROOT / page).is_file(), page
    on_disk = {f"pages/{p.name}" for p in (ROOT / "pages").glob("*.py") if not p.name.startswith("_")}
    assert on_disk == set(routed), "a page file is not routed, or a routed page is missing"


def test_home_page_renders():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert "convolutional neural network" in at.title[0].value
