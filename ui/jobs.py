"""Watch a background job (:mod:`cnnviz.jobs`) from a page without blocking it.

:func:`live_training` is a fragment that reruns by itself every second: it touches the job
(the tab is open), shows its place in the queue or its progress, elapsed time and an
estimate, the live curves and the first layer's filters, and a Stop button. Clicks
elsewhere on the page rerun the page, not the training: the job lives in the process-wide
pool, the page only holds the :class:`~cnnviz.jobs.Job`. When the job ends, the fragment
reruns the whole page once so its results appear.
"""

from __future__ import annotations

import functools
import uuid

import streamlit as st

from cnnviz.charts import training as charts
from cnnviz.jobs import Job
from cnnviz.model.features import tile_images
from cnnviz.train.progress import fraction_done, seconds_left
from cnnviz.train.scratch import filter_tiles
from ui.runtime import keep_keras_state


keep_keras_state()  # also when a page imports this module without the router (AppTest)


def owner_id() -> str:
    """This visitor's id for the job pool (one per browser session)."""
    return st.session_state.setdefault("cnnviz_owner", uuid.uuid4().hex)


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def progress_text(job: Job) -> str:
    """One line: where the job stands, elapsed time and the estimate of time left."""
    p = job.progress
    if job.state == "queued":
        place = job.position()
        return f"Waiting for a free place: number {place} in the queue." if place else "Starting…"
    if p.get("event") == "judging":
        return f"Judging the model on the test set · {_clock(job.elapsed_s)} so far."
    left = seconds_left(p, p.get("seconds") or job.elapsed_s)
    where = f"Epoch {max(p.get('epoch', 0), 1)} of {p.get('epochs', '?')}"
    if p.get("event") == "batch" and p.get("batches"):
        where += f", batch {p['batch']} of {p['batches']}"
    estimate = f" · about {_clock(left)} left" if left is not None else ""
    return f"{where} · {_clock(job.elapsed_s)} elapsed{estimate}"


@functools.lru_cache(maxsize=16)
def _empty_curves(epochs: int) -> dict:
    # Building the Altair chart costs ~30 ms of the GIL that training shares; each second only swaps the rows.
    return charts.training_curves([], epochs=epochs).to_dict()


@st.fragment(run_every=1.0)
def live_training(job: Job, key: str) -> None:
    """The live view of one training job (reruns itself every second until the job ends)."""
    job.touch()
    if job.finished:
        if not st.session_state.get(f"{key}_shown_{job.id}"):
            st.session_state[f"{key}_shown_{job.id}"] = True
            st.rerun(scope="app")  # the page draws the results
        return
    st.progress(fraction_done(job.progress), text=progress_text(job))
    label = "⏹ Stop (keep what it learnt)" if job.state == "running" else "✖ Leave the queue"
    if st.button(
        label,
        key=f"{key}_stop_{job.id}",
        disabled=job._stop,
        help="Stops after the current batch; the network keeps the weights it has learnt so far.",
    ):
        job.stop()
    if job._stop:
        st.caption("Stopping after the current batch…")
    rows = job.rows("epoch")
    left, right = st.columns([3, 1])
    with left:
        spec = _empty_curves(int(job.progress.get("epochs") or 2))
        st.vega_lite_chart(
            spec=charts.with_rows(spec, rows),
            width="content",
            alt="Training and validation loss and accuracy per epoch, growing while it trains",
        )
    with right:
        kernel = job.progress.get("filters")
        if kernel is not None:
            st.image(
                tile_images(filter_tiles(kernel, scale=max(2, 48 // kernel.shape[0])), gap=3),
                caption="First layer's filters now (gray = 0, light = positive, dark = negative)",
                width=260,
                alt="The first convolution layer's filters as small gray squares",
            )
        else:
            st.caption("This network has no convolution, so there are no filters to show.")
