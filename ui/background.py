"""Keep a visitor's background jobs alive on every page, and say in the sidebar that they run.

A job that no page touches for a while is taken for an abandoned tab and cancelled
(:data:`cnnviz.jobs.ORPHAN_S`). A visitor who starts a training on page 4 and goes to page 3
still has the tab open, so the router draws this small sidebar fragment on every page while
the visitor has unfinished jobs. Imports no TensorFlow (the Learn pages use it too).
"""

from __future__ import annotations

import streamlit as st

from cnnviz import jobs
from ui.runtime import keep_keras_state, tidy_memory_every

keep_keras_state()  # the router imports this module before any page runs
tidy_memory_every()

OWNER_KEY = "cnnviz_owner"  # the visitor's id in the job pool (ui.jobs.owner_id)


@st.fragment(run_every=5.0)
def _keep_alive(owner: str) -> None:
    running = [job for job in jobs.jobs_of(owner) if not job.finished]
    for job in running:
        job.touch()
    for job in running:
        place = job.position()
        st.caption(
            f"⏳ {job.label or job.kind}: "
            + (f"number {place} in the queue" if place else "training")
            + " (it goes on while you look at other pages)."
        )


def keep_jobs_alive() -> None:
    """Called by the router on every page run."""
    owner = st.session_state.get(OWNER_KEY)
    if owner and any(not job.finished for job in jobs.jobs_of(owner)):
        with st.sidebar:
            _keep_alive(owner)
