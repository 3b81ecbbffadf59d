"""Make deep links work on a freshly started server.

Streamlit treats an app with a ``pages/`` folder as an old-style multipage app until
``st.navigation`` has run once in the process. If the very first visitor opens a bookmark
such as ``/convolution``, Streamlit runs that page file directly, without ``app.py``:
no page config, no sections, the wrong sidebar (streamlit/streamlit#9624). Every page calls
:func:`ensure_app_shell` first; it switches Streamlit to ``st.navigation`` mode and reruns,
so ``app.py`` routes the same URL. Page url_paths equal their file names for this reason.
"""
from __future__ import annotations

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager


def ensure_app_shell() -> None:
    """Rerun through ``app.py`` if Streamlit started this page without it (a no-op otherwise)."""
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()
