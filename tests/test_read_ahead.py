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


def test_the_next_items_are_produced_while_this_one_is_consumed_in_order():
    made: list[int] = []
    got = []
    ahead = []
    for x in read_ahead(slow(10, 0.01, made), depth=4):
        time.sleep(0.3)  # stands for the network: meanwhile the worker decodes the next pictures
        ahead.append(len(made) - (x + 1))
        got.append(x)
    assert got == list(range(10))
    assert ahead[0] >= 2, "nothing was produced while the first item was consumed"


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
