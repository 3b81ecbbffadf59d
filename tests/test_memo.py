"""ui.memo: per-session results, bounded per kind, keyed by what they depend on."""

from __future__ import annotations

import numpy as np
from streamlit.testing.v1 import AppTest

from ui.memo import digest, token


def _script() -> None:
    import streamlit as st

    from ui.memo import memo

    calls = st.session_state.setdefault("calls", [])
    key = st.session_state.get("key", 0)
    st.text(str(memo("answer", key, lambda: calls.append(key) or key * 10, keep=2)))


def test_memo_builds_once_per_key_keeps_the_latest_few_and_lives_in_one_session():
    at = AppTest.from_function(_script)
    for key in (0, 0, 1, 0, 2, 1, 0):
        at.session_state["key"] = key
        at.run()
        assert at.text[0].value == str(key * 10)
    # The second 0 and the reused 0 cost nothing; keep=2 drops the least recently used: 2 pushed out 1,
    # the later 1 pushed out 0, so both were built again.
    assert at.session_state["calls"] == [0, 1, 2, 1, 0]
    other = AppTest.from_function(_script)
    other.run()
    assert other.session_state["calls"] == [0]  # another visitor's session builds its own


def test_tokens_name_objects_and_digests_name_contents():
    class Model:  # any weak-referenceable object, as a Keras model is
        pass

    a, b = Model(), Model()
    assert token(a) == token(a) != token(b)
    image = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    assert digest(image) == digest(image.copy()) != digest(image[::-1])
    # The same bytes as another shape or type are another picture.
    assert len({digest(image), digest(image.reshape(16, 3)), digest(image.view(np.int8))}) == 3
