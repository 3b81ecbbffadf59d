"""Decode the next pictures while the network embeds these: an iterator read ahead by a thread.

A zip or a folder of JPEGs is read picture by picture (:func:`cnnviz.zips.iter_zip_images`,
:meth:`cnnviz.train.lesson.Collection.images`), and each batch then goes through the frozen base
network. Done one after the other, one of the two cores waits. Pillow and the network both
release the GIL, so a worker thread that decodes the next pictures while this batch is in the
network keeps both cores busy. At most ``depth`` decoded pictures wait between the two, so a
5 000-picture collection never sits in memory at once.
"""

from __future__ import annotations

import queue
import threading
from typing import Generator, Iterable, TypeVar

__all__ = ["read_ahead"]

T = TypeVar("T")

_DONE = object()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def read_ahead(items: Iterable[T], depth: int = 64, *, name: str = "cnnviz-read-ahead") -> Generator[T, None, None]:
    """Yield ``items`` in order, produced by a worker thread up to ``depth`` ahead of the consumer.

    An exception raised while producing an item is raised here, at that item's place. Closing
    the generator (breaking out of the loop, or an exception in the consumer) stops the worker
    (the thread ``name``) at its next item and waits for it to end.

    >>> list(read_ahead(range(5), depth=2))
    [0, 1, 2, 3, 4]
    >>> def broken():
    ...     yield 1
    ...     raise ValueError("the zip ends early")
    >>> out = []
    >>> try:
    ...     for x in read_ahead(broken()):
    ...         out.append(x)
    ... except ValueError as err:
    ...     print(out, err)
    [1] the zip ends early
    """
    waiting: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(thing: object) -> bool:
        while not stop.is_set():
            try:
                waiting.put(thing, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as err:  # handed to the consumer, who raises it in order
            put(_Failed(err))

    worker = threading.Thread(target=work, name=name, daemon=True)
    worker.start()
    try:
        while True:
            got = waiting.get()
            if got is _DONE:
                return
            if isinstance(got, _Failed):
                raise got.error
            yield got
    finally:
        stop.set()
        while worker.is_alive():  # free a worker blocked on a full queue, then let it end
            try:
                waiting.get_nowait()
            except queue.Empty:
                pass
            worker.join(timeout=0.05)
