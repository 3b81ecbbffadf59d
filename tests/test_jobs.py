"""The job pool: real threads doing real (small) work; events only decide *when* a job may finish."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from cnnviz.jobs import JobError, Pool, QueueFull, current, default_queue, run_waiting


def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


def held(gate: threading.Event, value="done"):
    """A job that computes until ``gate`` opens, then returns ``value``."""

    def fn(ctx):
        total = 0.0
        while not gate.is_set():
            total += float(np.linalg.norm(np.ones(64)))
            time.sleep(0.002)
        return value

    return fn


def learner(steps: int, started: threading.Event | None = None):
    """A job that 'learns' a running mean step by step, keeps it as partial result and obeys stop."""

    def fn(ctx):
        rng = np.random.default_rng(0)
        mean = 0.0
        for step in range(1, steps + 1):
            mean += (rng.normal(5.0, 1.0) - mean) / step
            ctx.partial({"mean": mean, "steps": step})
            ctx.report(event="step", step=step, mean=mean)
            if started is not None and step == 3:
                started.set()
            if ctx.should_stop():
                return {"mean": mean, "steps": step}
            time.sleep(0.002)
        return {"mean": mean, "steps": steps}

    return fn


def test_queue_positions_and_order():
    pool = Pool(workers=1, queue=4, per_owner=5)
    gate = threading.Event()
    first = pool.submit(held(gate, "a"), kind="t", owner="x")
    wait_for(lambda: first.state == "running")
    second = pool.submit(held(gate, "b"), kind="t", owner="y")
    third = pool.submit(held(gate, "c"), kind="t", owner="z")
    assert (first.position(), second.position(), third.position()) == (None, 1, 2)
    second.cancel()
    assert second.state == "cancelled" and third.position() == 1
    gate.set()
    wait_for(lambda: third.finished)
    assert (first.state, first.result, third.state, third.result) == ("done", "a", "done", "c")
    assert third.position() is None


def test_bounded_queue_raises_queue_full_with_a_sentence():
    pool = Pool(workers=1, queue=2, per_owner=10)
    gate = threading.Event()
    running = pool.submit(held(gate), kind="t", owner="a")
    wait_for(lambda: running.state == "running")
    pool.submit(held(gate), kind="t", owner="b")
    pool.submit(held(gate), kind="t", owner="c")
    with pytest.raises(QueueFull) as err:
        pool.submit(held(gate), kind="t", owner="d")
    text = str(err.value)
    assert "busy" in text and text.endswith(".") and text.count(". ") == 0 and "QueueFull" not in text
    gate.set()


def test_one_visitor_cannot_fill_the_queue():
    pool = Pool(workers=1, queue=8, per_owner=1)
    gate = threading.Event()
    pool.submit(held(gate), kind="t", owner="same")
    with pytest.raises(QueueFull, match="already have 1 job"):
        pool.submit(held(gate), kind="t", owner="same")
    other = pool.submit(held(gate), kind="t", owner="other")
    gate.set()
    wait_for(lambda: other.finished)
    assert other.state == "done"


def test_stop_keeps_what_was_learnt():
    pool = Pool(workers=1, queue=2)
    started = threading.Event()
    job = pool.submit(learner(10_000, started), kind="learn", owner="v")
    assert started.wait(5)
    job.stop()
    wait_for(lambda: job.finished)
    assert job.state == "stopped"
    assert 3 <= job.result["steps"] < 10_000
    assert abs(job.result["mean"] - 5.0) < 2.0
    assert job.history[-1]["step"] == job.result["steps"] and job.progress == job.history[-1]
    assert [r["step"] for r in job.rows("step")] == list(range(1, job.result["steps"] + 1))


def test_stopping_a_waiting_job_drops_it():
    pool = Pool(workers=1, queue=2)
    gate = threading.Event()
    running = pool.submit(held(gate), kind="t", owner="a")
    wait_for(lambda: running.state == "running")
    waiting = pool.submit(learner(5), kind="t", owner="b")
    waiting.stop()
    assert waiting.state == "cancelled" and waiting.result is None and pool.waiting() == 0
    gate.set()


def test_orphaned_jobs_are_cancelled():
    pool = Pool(workers=1, queue=4, orphan_s=0.3)
    started = threading.Event()
    running = pool.submit(learner(100_000, started), kind="learn", owner="closed-tab")
    waiting = pool.submit(learner(10), kind="learn", owner="also-closed")
    watched = pool.submit(learner(5), kind="learn", owner="open-tab")
    assert started.wait(5)
    deadline = time.monotonic() + 5
    while not running.finished and time.monotonic() < deadline:
        watched.touch()  # only this tab is still open
        time.sleep(0.02)
    wait_for(lambda: watched.finished)
    assert running.state == "cancelled" and running.result is None
    assert waiting.state == "cancelled" and waiting.started_at is None
    assert watched.state == "done" and watched.result["steps"] == 5


def test_a_failing_job_does_not_affect_the_others():
    pool = Pool(workers=1, queue=4)

    def broken(ctx):
        ctx.report(event="step", step=1)
        return np.zeros(3)[7]  # IndexError

    def refused(ctx):
        raise JobError("These images are too small to train on.")

    bad = pool.submit(broken, kind="t", owner="a")
    told = pool.submit(refused, kind="t", owner="b")
    good = pool.submit(learner(20), kind="t", owner="c")
    wait_for(lambda: good.finished)
    assert bad.state == "failed" and bad.error is not None and bad.error.endswith(".") and "IndexError" not in bad.error
    assert told.state == "failed" and told.error == "These images are too small to train on."
    assert good.state == "done" and good.result["steps"] == 20 and good.error is None
    again = pool.submit(learner(3), kind="t", owner="a")  # the worker survived
    wait_for(lambda: again.finished)
    assert again.state == "done"


def test_two_workers_run_two_jobs_at_once_and_jobs_of_lists_an_owner():
    pool = Pool(workers=2, queue=2, per_owner=3)
    gate = threading.Event()
    a = pool.submit(held(gate, 1), kind="t", owner="me")
    b = pool.submit(held(gate, 2), kind="t", owner="me")
    wait_for(lambda: a.state == "running" and b.state == "running")  # both at once on two workers
    pool.submit(held(gate, 3), kind="t", owner="you")
    assert [j.id for j in pool.jobs_of("me")] == [a.id, b.id]
    assert a.elapsed_s >= 0 and a.position() is None
    gate.set()
    wait_for(lambda: all(j.finished for j in pool.jobs_of("you")))


# ---------------------------------------------------------------------------- work a page waits for
def test_run_waiting_waits_here_shows_the_place_and_returns_the_result():
    pool = Pool(workers=1, queue=4)
    gate = threading.Event()
    blocker = pool.submit(held(gate), kind="train", owner="a")
    wait_for(lambda: blocker.state == "running")
    places: list = []

    def on_wait(job):
        places.append(job.position())
        if len(places) == 3:
            gate.set()  # the other visitor's training ends while this one waits

    job = run_waiting(
        lambda ctx: 41 + 1, kind="embed", owner="b", label="Reading", on_wait=on_wait, poll_s=0.01, pool=pool
    )
    assert job.state == "done" and job.result == 42 and job.label == "Reading"
    assert places[:3] == [1, 1, 1]  # waited behind the running job, first in the queue


def test_an_interrupted_wait_cancels_the_job_before_raising():
    """Streamlit ends a waiting script run by raising from its next call (a click, a closed tab)."""
    pool = Pool(workers=1, queue=4)
    seen: list = []
    checks = threading.Event()

    def work(ctx):
        seen.append(current() is ctx)
        while True:  # an embedding loop: one batch, then a check
            time.sleep(0.01)
            checks.set()
            ctx.check()

    class Interrupted(BaseException):
        pass

    def on_wait(job):
        if checks.is_set():
            raise Interrupted()

    with pytest.raises(Interrupted):
        run_waiting(work, kind="embed", owner="a", on_wait=on_wait, poll_s=0.01, pool=pool)
    (job,) = pool.jobs_of("a")
    assert job.state == "cancelled" and job.finished  # it had stopped before the raise went on
    assert seen == [True] and current() is None  # the job saw its own context; this thread has none


def test_run_waiting_with_a_full_queue_raises_one_sentence():
    pool = Pool(workers=1, queue=1)
    gate = threading.Event()
    pool.submit(held(gate), kind="train", owner="a")
    wait_for(lambda: pool.waiting() == 0)
    pool.submit(held(gate), kind="train", owner="b")
    with pytest.raises(QueueFull, match="The server is busy"):
        run_waiting(lambda ctx: 1, kind="embed", owner="c", pool=pool)
    gate.set()


def test_the_queue_size_comes_from_the_environment_with_defaults_for_2_and_8_cores(monkeypatch):
    import cnnviz.jobs as jobs_module

    sizes = {}
    for cores in (2, 8):
        monkeypatch.setattr(jobs_module.os, "cpu_count", lambda cores=cores: cores)
        workers = jobs_module._default_workers()
        sizes[cores] = (workers, default_queue(workers))
    assert sizes == {2: (1, 16), 8: (2, 32)}
    monkeypatch.setenv("CNNVIZ_QUEUE", "3")
    assert jobs_module._env_int("CNNVIZ_QUEUE", 16) == 3
    monkeypatch.setenv("CNNVIZ_QUEUE", "many")
    assert jobs_module._env_int("CNNVIZ_QUEUE", 16) == 16  # a typo never switches the bound off
