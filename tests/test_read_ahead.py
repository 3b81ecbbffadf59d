"""The read-ahead worker overlaps producing with consuming, keeps order, bounds memory, stops when told."""

import threading
import time

import pytest

from cnnviz.read_ahead import read_ahead


def slow(n, seconds, made):
    for i in range(n):
        time.sleep(seconds)  # stands for Pillow decoding: releases the GIL
        made.append(i)
        yield i


def test_producing_overlaps_consuming_in_order():
    made: list[int] = []
    started = time.perf_counter()
    got = []
    for x in read_ahead(slow(10, 0.05, made), depth=4):
        time.sleep(0.05)  # stands for the network
        got.append(x)
    elapsed = time.perf_counter() - started
    assert got == list(range(10))
    assert elapsed < 0.8, f"{elapsed:.2f} s: one after the other would take 1.0 s, overlapped about 0.55 s"


def test_at_most_depth_items_wait_and_breaking_out_stops_the_worker():
    made: list[int] = []
    stream = read_ahead(slow(1000, 0.001, made), depth=3)
    assert next(stream) == 0
    time.sleep(0.3)
    assert len(made) <= 1 + 3 + 1  # the one consumed, the queue, the one waiting to be put
    stream.close()
    time.sleep(0.3)
    assert len(made) <= 6
    assert not [t for t in threading.enumerate() if t.name == "cnnviz-read-ahead" and t.is_alive()]


def test_an_error_is_raised_at_its_place():
    def broken():
        yield "a"
        yield "b"
        raise OSError("the disk went away")

    seen = []
    with pytest.raises(OSError, match="disk went away"):
        for x in read_ahead(broken()):
            seen.append(x)
    assert seen == ["a", "b"]
