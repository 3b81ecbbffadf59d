"""One process-wide, bounded pool for heavy work (training, embedding, audits), so visitors take turns.

A Streamlit script run ends (and is restarted) whenever the visitor clicks any widget; work
done inside it dies with it. Work handed to :func:`submit` runs on one of a few worker
threads instead, and the page only *polls* the :class:`Job` it got back: it reads
``job.progress`` / ``job.history``, calls ``job.touch()`` to say the tab is still open,
and ``job.stop()`` when the visitor presses Stop.

Rules (all in this module, tested in tests/test_jobs.py):

* At most :data:`WORKERS` jobs run at once (env ``CNNVIZ_WORKERS``; default 1 on a machine with
  up to 2 cores, a quarter of the cores above that: 2 on 8 cores) and at most :data:`QUEUE`
  wait (env ``CNNVIZ_QUEUE``; default 16 per worker: 16 on 2 cores, 32 on 8, so a seminar that
  loads the demo set at once queues instead of being turned away); one more raises
  :class:`QueueFull`. A visitor may hold at most :data:`PER_OWNER` unfinished jobs (env
  ``CNNVIZ_JOBS_PER_VISITOR``, default 2).
* Work a page needs before it can go on (embedding a zip) runs through :func:`run_waiting`: the
  script run waits for its job, shows its place, and a click or a closed tab cancels it.
* A waiting job knows its place (:meth:`Job.position`, 1 = next).
* :meth:`Job.stop` asks a running job to stop after its current step; what it learnt
  (its result, or the last :meth:`JobContext.partial`) is kept and its state is ``"stopped"``.
  :meth:`Job.cancel` drops a waiting job or stops a running one and drops its result.
* A job whose page has not called :meth:`Job.touch` for :data:`ORPHAN_S` seconds (env
  ``CNNVIZ_JOB_ORPHAN_S``, default 60: the tab was closed) is cancelled.
* A job that raises is ``"failed"`` with one sentence in ``job.error``; other jobs carry on.

Never imports Streamlit or TensorFlow (the Keras callback lives in :mod:`cnnviz.train.progress`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = [
    "QueueFull",
    "JobError",
    "Job",
    "JobContext",
    "Pool",
    "submit",
    "jobs_of",
    "busy",
    "default_pool",
    "WORKERS",
    "QUEUE",
    "PER_OWNER",
    "ORPHAN_S",
    "run_waiting",
    "current",
    "default_queue",
]

log = logging.getLogger(__name__)

FINISHED = frozenset({"done", "failed", "cancelled", "stopped"})


def _env_int(name: str, default: int) -> int:
    try:
        return max(1, int(os.environ.get(name, default)))
    except ValueError:
        return default


def _default_workers() -> int:
    cores = os.cpu_count() or 1
    # TensorFlow already spreads one training over every core; two at once on 2 cores only
    # make both slower, so small machines train one job at a time.
    return 1 if cores <= 2 else max(1, cores // 4)


def default_queue(workers: int) -> int:
    """Jobs that may wait: 16 per worker (a job that waits costs a sleeping thread, not a core)."""
    return 16 * workers


WORKERS = _env_int("CNNVIZ_WORKERS", _default_workers())
QUEUE = _env_int("CNNVIZ_QUEUE", default_queue(WORKERS))
PER_OWNER = _env_int("CNNVIZ_JOBS_PER_VISITOR", 2)
ORPHAN_S = float(os.environ.get("CNNVIZ_JOB_ORPHAN_S", "60"))


class QueueFull(Exception):
    """No room for another job. ``str(err)`` is one sentence for the visitor."""


class JobError(Exception):
    """Raised by a job's function with one sentence for the visitor (shown as ``job.error``)."""


class _Cancelled(Exception):
    """Raised inside a job by :meth:`JobContext.check` once it was cancelled."""


@dataclass(eq=False)
class Job:
    """One piece of work in the pool, as the page sees it.

    ``state`` is ``"queued"``, ``"running"``, ``"done"``, ``"failed"``, ``"cancelled"`` or
    ``"stopped"``. ``progress`` is the latest :meth:`JobContext.report`, ``history`` all of
    them in order; ``result`` what the function returned (or its last partial result);
    ``error`` one sentence when it failed.
    """

    id: str
    kind: str
    owner: str
    state: str = "queued"
    progress: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    result: Any = None
    error: str | None = None
    submitted_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    finished_at: float | None = None
    label: str = ""  # what the page calls it ("Run 2 · Carpentries CNN")
    _pool: "Pool | None" = field(default=None, repr=False)
    _fn: Callable[["JobContext"], Any] | None = field(default=None, repr=False)
    _stop: bool = field(default=False, repr=False)
    _cancel: bool = field(default=False, repr=False)
    _touched: float = field(default_factory=time.monotonic, repr=False)
    _done: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def elapsed_s(self) -> float:
        """Seconds it has been running (0 while queued); frozen once finished."""
        if self.started_at is None:
            return 0.0
        return (self.finished_at or time.monotonic()) - self.started_at

    def position(self) -> int | None:
        """1-based place in the queue while queued (1 = starts next), else ``None``."""
        return self._pool._position(self) if self._pool is not None and self.state == "queued" else None

    def rows(self, event: str) -> list[dict]:
        """The reports whose ``event`` is ``event`` (e.g. ``"epoch"``), in order."""
        return [row for row in list(self.history) if row.get("event") == event]

    def stop(self) -> None:
        """Ask the job to stop after its current step; what it learnt is kept (state ``"stopped"``)."""
        if self.state == "queued":
            self.cancel()  # nothing learnt yet: stopping a waiting job is dropping it
            return
        self._stop = True

    def cancel(self) -> None:
        """Drop a waiting job, or stop a running one and drop its result (state ``"cancelled"``)."""
        self._cancel = True
        if self._pool is not None:
            self._pool._drop_queued(self)

    def touch(self) -> None:
        """Heartbeat from the visitor's page: the tab is still open."""
        self._touched = time.monotonic()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has finished (or ``timeout`` seconds passed); whether it has finished."""
        return self._done.wait(timeout)

    def _orphaned(self, orphan_s: float) -> bool:
        return time.monotonic() - self._touched > orphan_s


class JobContext:
    """What a job's function gets: report progress, ask whether to stop, keep a partial result."""

    def __init__(self, job: Job, pool: "Pool") -> None:
        self._job = job
        self._pool = pool

    @property
    def job_id(self) -> str:
        return self._job.id

    def report(self, **progress: Any) -> None:
        """Publish the latest progress (``job.progress``) and append it to ``job.history``."""
        row = dict(progress)
        self._job.history.append(row)
        self._job.progress = row

    def partial(self, result: Any) -> None:
        """Keep ``result`` as what was learnt so far (the job's result if it is stopped or fails later)."""
        self._job.result = result

    def should_stop(self) -> bool:
        """``True`` once the visitor pressed Stop, cancelled, or closed the tab (orphaned job)."""
        job = self._job
        if not job._cancel and job._orphaned(self._pool.orphan_s):
            log.info("job %s orphaned (not touched for %.0f s): cancelled", job.id, self._pool.orphan_s)
            job._cancel = True
        return job._stop or job._cancel

    def check(self) -> None:
        """Raise (ending the function) if the job was cancelled; for loops without a result worth keeping."""
        if self.should_stop() and self._job._cancel:
            raise _Cancelled()


class Pool:
    """A bounded job queue served by ``workers`` daemon threads (the process has one: :func:`default_pool`)."""

    def __init__(
        self,
        workers: int = WORKERS,
        queue: int = QUEUE,
        *,
        per_owner: int = PER_OWNER,
        orphan_s: float = ORPHAN_S,
        name: str = "cnnviz-job",
    ) -> None:
        self.workers = workers
        self.queue_size = queue
        self.per_owner = per_owner
        self.orphan_s = orphan_s
        self._queue: deque[Job] = deque()
        self._jobs: dict[str, Job] = {}
        self._cond = threading.Condition()
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(workers)]
        for thread in self._threads:
            thread.start()

    # ------------------------------------------------------------------ the page's side

    def submit(self, fn: Callable[[JobContext], Any], *, kind: str, owner: str) -> Job:
        """Queue ``fn(context)``; returns its :class:`Job` at once. Raises :class:`QueueFull`."""
        with self._cond:
            self._reap()
            mine = [j for j in self._jobs.values() if j.owner == owner and not j.finished]
            if len(mine) >= self.per_owner:
                raise QueueFull(
                    f"You already have {len(mine)} jobs waiting or running; "
                    "stop one or let it finish before starting another."
                )
            if len(self._queue) >= self.queue_size:
                raise QueueFull(
                    f"The server is busy: {len(self._queue)} jobs are already waiting, so please try again in a minute."
                )
            job = Job(id=uuid.uuid4().hex[:12], kind=kind, owner=owner, _pool=self, _fn=fn)
            self._jobs[job.id] = job
            self._queue.append(job)
            self._cond.notify()
        return job

    def jobs_of(self, owner: str) -> list[Job]:
        """This owner's jobs the pool still knows, oldest first (finished ones until they are orphaned)."""
        with self._cond:
            self._reap()
            return [j for j in self._jobs.values() if j.owner == owner]

    def waiting(self) -> int:
        """Jobs in the queue now."""
        with self._cond:
            return len(self._queue)

    def busy(self) -> bool:
        """Whether any job is running or waiting."""
        with self._cond:
            return bool(self._queue) or any(j.state == "running" for j in self._jobs.values())

    def _position(self, job: Job) -> int | None:
        with self._cond:
            self._reap()
            try:
                return self._queue.index(job) + 1
            except ValueError:
                return None

    def _drop_queued(self, job: Job) -> None:
        with self._cond:
            if job in self._queue:
                self._queue.remove(job)
                self._finish(job, "cancelled")

    # ------------------------------------------------------------------ bookkeeping (lock held)

    def _reap(self) -> None:
        """Cancel waiting jobs nobody watches; forget finished ones nobody watches."""
        for job in list(self._queue):
            if job._orphaned(self.orphan_s):
                self._queue.remove(job)
                self._finish(job, "cancelled")
        for job_id, job in list(self._jobs.items()):
            if job.finished and job._orphaned(self.orphan_s):
                del self._jobs[job_id]

    def _finish(self, job: Job, state: str) -> None:
        job.state = state
        job.finished_at = time.monotonic()
        job._fn = None
        if state == "cancelled":
            job.result = None  # nobody will look at it (closed tab) or the visitor threw it away
        job._done.set()

    # ------------------------------------------------------------------ the workers' side

    def _work(self) -> None:
        while True:
            with self._cond:
                while True:
                    self._reap()
                    if self._queue:
                        job = self._queue.popleft()
                        break
                    self._cond.wait(timeout=1.0)
                if job._cancel:
                    self._finish(job, "cancelled")
                    continue
                job.state = "running"
                job.started_at = time.monotonic()
                fn = job._fn
                # Only _finish clears it, and a finished job has left the queue.
                assert fn is not None
            self._run(job, fn)

    def _run(self, job: Job, fn: Callable[[JobContext], Any]) -> None:
        context = JobContext(job, self)
        state, error = "done", None
        _CURRENT.context = context
        try:
            result = fn(context)
            if result is not None:
                job.result = result
        except _Cancelled:
            state = "cancelled"
        except JobError as err:
            state, error = "failed", str(err)
        except MemoryError:
            state, error = "failed", "The server ran out of memory for this job; try fewer images or a smaller network."
        except Exception:  # noqa: BLE001 - one visitor's broken job must not take the worker down
            log.exception("job %s (%s) failed", job.id, job.kind)
            state, error = "failed", "Something went wrong on the server while running this job, so it was stopped."
        finally:
            _CURRENT.context = None
        if state == "done" and job._cancel:
            state = "cancelled"
        elif state == "done" and job._stop:
            state = "stopped"
        job.error = error
        with self._cond:
            self._finish(job, state)


_CURRENT = threading.local()  # the JobContext of the job this worker thread runs


def current() -> JobContext | None:
    """The :class:`JobContext` of the job running on this thread (``None`` outside the pool).

    For code deep inside a job (an embedding loop) to report progress and notice a cancel without
    every caller passing the context down.
    """
    return getattr(_CURRENT, "context", None)


def run_waiting(
    fn: Callable[[JobContext], Any],
    *,
    kind: str,
    owner: str,
    label: str = "",
    on_wait: Callable[[Job], None] | None = None,
    poll_s: float = 0.25,
    settle_s: float = 30.0,
    pool: "Pool | None" = None,
) -> Job:
    """Run ``fn`` as a job and wait for it here, calling ``on_wait(job)`` every ``poll_s`` seconds.

    For work a page needs before it can go on: the pool bounds how many run at once, and this
    thread (the visitor's script run) only waits. Anything raised while waiting (``on_wait``
    drawing on a page whose visitor clicked elsewhere or closed the tab raises Streamlit's
    rerun or stop signal) cancels the job, waits up to ``settle_s`` for it to reach its next
    check so it no longer touches what the caller owns, and is raised again. Returns the
    finished job (look at ``state``, ``result``, ``error``); raises :class:`QueueFull`.
    """
    job = (pool or default_pool()).submit(fn, kind=kind, owner=owner)
    job.label = label
    try:
        while not job.wait(poll_s):
            job.touch()
            if on_wait is not None:
                on_wait(job)
    except BaseException:
        job.cancel()
        job.wait(settle_s)
        raise
    return job


_DEFAULT: Pool | None = None
_DEFAULT_LOCK = threading.Lock()


def default_pool() -> Pool:
    """The process-wide pool, started on first use."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = Pool()
        return _DEFAULT


def busy() -> bool:
    """Whether the process-wide pool is running or holding any job (False before its first use)."""
    return _DEFAULT is not None and _DEFAULT.busy()


def submit(fn: Callable[[JobContext], Any], *, kind: str, owner: str) -> Job:
    """Queue ``fn(context)`` on the process-wide pool (:meth:`Pool.submit`). Raises :class:`QueueFull`."""
    return default_pool().submit(fn, kind=kind, owner=owner)


def jobs_of(owner: str) -> list[Job]:
    """This owner's jobs in the process-wide pool (:meth:`Pool.jobs_of`)."""
    return default_pool().jobs_of(owner)
