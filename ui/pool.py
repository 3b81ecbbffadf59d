"""Heavy work a page waits for (reading a zip, embedding the demo set, an audit), run on the shared pool.

The work runs on :mod:`cnnviz.jobs`'s process-wide pool, so a lecture hall that clicks at once
takes turns instead of sharing two cores twenty ways; this visitor's script run only waits,
showing their place in the queue, then the work's progress, and a Cancel button. Pressing it,
clicking anything else on the page or closing the tab ends the wait (Streamlit interrupts the
script run) and cancels the job. Imports no TensorFlow.
"""

from __future__ import annotations

import uuid
from typing import Any, Callable, TypeVar

import streamlit as st

from cnnviz import jobs
from cnnviz.text import plain
from ui.background import OWNER_KEY

__all__ = ["run_here", "report"]

T = TypeVar("T")


def owner_id() -> str:
    """This visitor's id in the job pool (the same as :func:`ui.jobs.owner_id`)."""
    return st.session_state.setdefault(OWNER_KEY, uuid.uuid4().hex)


def report(fraction: float, text: str) -> None:
    """From inside the work: how far it is (0–1) and what it does; raises to end it once it was cancelled."""
    ctx = jobs.current()
    if ctx is not None:
        ctx.report(fraction=float(fraction), text=text)
        ctx.check()


def _waiting_text(job: jobs.Job) -> tuple[float, str]:
    if job.state == "queued":
        place = job.position()
        ahead = "" if not place or place == 1 else f" ({place - 1} ahead of you)"
        return 0.0, f"Waiting for a free place on the server: number {place or 1} in the queue{ahead}."
    progress = job.progress
    return float(progress.get("fraction", 0.0)), str(progress.get("text") or "Working…")


def run_here(
    work: Callable[[], T],
    *,
    kind: str,
    label: str,
    on_cancel: Callable[[], None] | None = None,
    sentences: tuple[type[Exception], ...] = (),
    refusals: list[str] | None = None,
) -> T | None:
    """Run ``work()`` on the pool while this page waits; its result, or ``None`` with one sentence shown.

    ``None`` when the server's queue is full, the work failed, or the visitor cancelled it;
    ``on_cancel`` runs when the wait is interrupted (e.g. empty an uploader, so the same zip is
    not read again by the next run). An exception of a type in ``sentences`` (whose ``str()`` is
    one sentence for the visitor, such as :class:`cnnviz.zips.ZipError`) is shown as it is, and
    appended to ``refusals`` when given (to show it again on later runs without redoing the work).
    """
    bar = st.empty()
    cancel = st.empty()
    cancel.button(
        "✖ Cancel",
        key=f"cnnviz_cancel_{kind}",
        help="Stops waiting or working; what was already added stays. Any click on the page cancels it too.",
    )

    def on_wait(job: jobs.Job) -> None:
        fraction, text = _waiting_text(job)
        bar.progress(min(1.0, max(0.0, fraction)), text=plain(f"{label}: {text}"))

    def run(_ctx: jobs.JobContext) -> Any:
        try:
            return work()
        except sentences as err:
            raise jobs.JobError(str(err)) from err

    try:
        job = jobs.run_waiting(run, kind=kind, owner=owner_id(), label=label, on_wait=on_wait)
    except jobs.QueueFull as err:
        bar.empty()
        cancel.empty()
        st.error(str(err), icon="⏳")
        return None
    except BaseException:
        if on_cancel is not None:
            on_cancel()
        raise
    bar.empty()
    cancel.empty()
    if job.state == "failed":
        sentence = job.error or "Something went wrong on the server, so this was stopped."
        st.error(plain(sentence), icon="🚫")
        if refusals is not None:
            refusals.append(sentence)
        return None
    if job.state != "done":
        st.info(f"{label}: cancelled.", icon="✖")
        return None
    return job.result
