"""A lecture plan survives its two forms (file, link) and refuses anything else with one sentence."""

import base64
import json
import zlib

import pytest

from cnnviz import plan
from cnnviz.plan import PlanError, View

PLAN = [
    View("The neuron", "neuron", {"w1": "0.8", "activation": "tanh"}),
    View("Edges", "convolution", {"kernel": "sobel-x", "stride": "2", "weights": "1,0,-1,2,0,-2,1,0,-1;1"}),
    View("Feature maps", "feature_maps", {"model": "fashion_better", "layer": "conv2", "channel": "3"}),
    View("Start", "home", {}),
]


def code_of(data) -> str:
    raw = json.dumps(data).encode()
    return base64.urlsafe_b64encode(zlib.compress(raw)).decode().rstrip("=")


def test_json_and_link_round_trip_keep_order_titles_and_settings():
    assert plan.from_json(plan.to_json(PLAN)) == PLAN
    assert plan.from_code(plan.to_code(PLAN)) == PLAN
    assert [v.title for v in plan.from_code(plan.to_code(PLAN[::-1]))] == [v.title for v in PLAN[::-1]]
    assert len(plan.to_code(PLAN)) < 400  # short enough to paste into a chat


def test_saved_settings_never_carry_workspace_presenter_or_plan_keys():
    query = {"ws": "secret-workspace", "present": "1", "step": "3", "plan": "x", "view": "2", "kernel": "blur"}
    assert plan.view_params(query) == {"kernel": "blur", "step": "3"}
    with pytest.raises(PlanError, match="name this app does not use"):
        plan.from_code(code_of([{"title": "x", "page": "home", "params": {"ws": "abc"}}]))


@pytest.mark.parametrize(
    "data, sentence",
    [
        ([{"title": "x", "page": "../../etc/passwd", "params": {}}], "page this app does not have"),
        ([{"title": "x", "page": ["home"], "params": {}}], "page this app does not have"),
        ([{"title": "x" * 81, "page": "home"}], "at most 80 characters"),
        ([{"title": 5, "page": "home"}], "must be text"),
        ([{"title": "x", "page": "home", "params": {"w1": 0.5}}], "must be text"),
        ([{"title": "x", "page": "home", "params": {"w1": "9" * 401}}], "at most 400"),
        ([{"title": "x", "page": "home", "params": {"<script>": "1"}}], "name this app does not use"),
        ([{"title": "x", "page": "home", "params": ["w1"]}], "text values"),
        ([{"title": "x", "page": "home"}] * 41, "at most 40"),
        ([], "no views"),
        ({"views": "home"}, "no list of views"),
        (["home"], "is not a title"),
    ],
)
def test_hostile_plans_get_one_sentence(data, sentence):
    for read in (lambda: plan.from_json(json.dumps(data)), lambda: plan.from_code(code_of(data))):
        with pytest.raises(PlanError, match=sentence) as err:
            read()
        message = str(err.value)
        assert message.endswith(".") and "\n" not in message and "Error" not in message


def test_damaged_links_and_files_and_zip_bombs_are_refused():
    good = plan.to_code(PLAN)
    for bad in ["", "!!!", good[: len(good) // 2], "A" * 9000, base64.urlsafe_b64encode(b"not zlib").decode()]:
        with pytest.raises(PlanError):
            plan.from_code(bad)
    bomb = base64.urlsafe_b64encode(zlib.compress(b"[" + b" " * 5_000_000 + b"]", 9)).decode()
    assert len(bomb) < plan.MAX_CODE
    with pytest.raises(PlanError, match="too large"):
        plan.from_code(bomb)
    with pytest.raises(PlanError, match="not readable JSON"):
        plan.from_json(b"\xff\xfe not json")
    with pytest.raises(PlanError, match="too large"):
        plan.from_json(" " * 70_000)


def test_titles_lose_control_characters_and_blank_titles_get_a_number():
    views = plan.from_json(
        json.dumps([{"title": "Edges\u0000\u202e", "page": "home"}, {"title": "  ", "page": "home"}])
    )
    assert [v.title for v in views] == ["Edges", "View 2"]


def test_a_view_moves_up_and_down_one_place_and_stops_at_either_end():
    titles = ["a", "b", "c", "d"]
    assert plan.moved(titles, 1, -1) == ["b", "a", "c", "d"]
    assert plan.moved(titles, 1, 1) == ["a", "c", "b", "d"]
    assert plan.moved(titles, 0, -1) == titles and plan.moved(titles, 3, 1) == titles
    assert titles == ["a", "b", "c", "d"]  # a new list: the plan shown is replaced, not edited in place


def test_a_hostile_page_name_in_a_plan_link_is_shown_as_text():
    """The damaged-plan sentence quotes the page name it met: as characters, never as a link."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from cnnviz.text import plain

    hostile = "[click](https://evil.example) <b>x</b>"
    raw = json.dumps([{"title": "t", "page": hostile, "params": {}}]).encode()
    code = base64.urlsafe_b64encode(zlib.compress(raw)).decode().rstrip("=")
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=60)
    at.query_params["plan"] = code
    at.run()
    shown = [e.value for e in at.error]
    sentence = f'View 1 opens a page this app does not have ("{hostile[:40]}").'
    assert plain(sentence) in shown, shown
    assert not any("](https://" in s or "<b>" in s for s in shown)
