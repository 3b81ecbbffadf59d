"""Writes to the store in one background thread per process, in the order they were asked for.

A page run hands its changes over and ends at once; the slow part (a model saved as ``.keras``
takes seconds) happens here, so it is neither interrupted by the visitor's next click (Streamlit
stops a script run at its next call) nor lost when the tab reloads before it finished: the new
session waits for :meth:`Writer.flush` of its workspace before it reads it.

Never imports Streamlit.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from typing import Callable

from cnnviz.workspace.store import Store, StoreError

__all__ = ["Writer", "Change"]

#: An item's bytes, or a function that makes them (run in the writer's thread).
Data = bytes | Callable[[], bytes]


@dataclass
class Change:
    """One run's changes to workspace ``ws``; ``done(error)`` is called after the write (``None``: written)."""

    ws: str
    puts: list[tuple[str, str, Data]]
    deletes: list[tuple[str, str]] = field(default_factory=list)
    done: Callable[[StoreError | None], None] | None = None


class Writer:
    """One thread that writes :class:`Change` s to ``store`` one at a time (each one transaction)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._queue: queue.Queue[Change] = queue.Queue()
        self._pending: dict[str, int] = {}
        self._idle = threading.Condition()
        self._thread = threading.Thread(target=self._work, name="cnnviz-workspace-writer", daemon=True)
        self._thread.start()

    def submit(self, change: Change) -> None:
        with self._idle:
            self._pending[change.ws] = self._pending.get(change.ws, 0) + 1
        self._queue.put(change)

    def flush(self, ws: str, timeout: float = 60.0) -> bool:
        """Wait until every change asked for ``ws`` is written (or failed); False after ``timeout`` seconds."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._pending.get(ws), timeout=timeout)

    def _work(self) -> None:
        while True:
            change = self._queue.get()
            error: StoreError | None = None
            try:
                puts = []
                for kind, key, data in change.puts:
                    try:
                        puts.append((kind, key, data() if callable(data) else data))
                    except (TypeError, ValueError, OSError):
                        continue  # an item that cannot be kept (a model Keras cannot save) stays in its tab only
                self.store.write(change.ws, puts, change.deletes)
            except StoreError as err:
                error = err
            except Exception as err:  # never let one bad change stop every later write
                error = StoreError(f"Your work could not be saved ({type(err).__name__}).")
            finally:
                if change.done is not None:
                    try:
                        change.done(error)
                    except Exception:
                        pass
                with self._idle:
                    self._pending[change.ws] -= 1
                    if not self._pending[change.ws]:
                        del self._pending[change.ws]
                    self._idle.notify_all()
