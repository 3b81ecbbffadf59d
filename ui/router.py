"""Make deep links work on a freshly started server.

Streamlit treats an app with a ``pages/`` folder as an old-style multipage app until
``st.navigation`` has run once in the process. If the very first visitor opens a bookmark
such as ``/convolution``, Streamlit runs that page file directly, without ``app.py``:
no page config, no sections, the wrong sidebar (streamlit/streamlit#9624). Every page calls
:func:`ensure_app_shell` first; it switches Streamlit to ``st.navigation`` mode and runs
``app.py``'s router in the same script run, so the same URL is routed properly and a click
that started this run is not lost. Page url_paths equal their file names for this reason.
"""

from __future__ import annotations

import runpy
from pathlib import Path

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

APP = Path(__file__).resolve().parents[1] / "app.py"


def ensure_app_shell() -> None:
    """Route this run through ``app.py`` if Streamlit started the page without it (no-op otherwise)."""
    if not PagesManager.uses_pages_directory:
        return
    PagesManager.uses_pages_directory = False
    runpy.run_path(str(APP), run_name="__main__")  # st.navigation runs the requested page
    st.stop()  # the page already ran inside the router; don't run it a second time here
