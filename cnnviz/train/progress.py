"""A Keras callback that reports training to a :class:`cnnviz.jobs.JobContext` and obeys its Stop.

``model.fit(..., callbacks=[JobProgress(ctx, epochs=5)])`` makes a background job's page see

* ``event="batch"`` reports within an epoch (at most every ``every_s`` seconds, so a big
  epoch still moves the progress bar and a small one costs nothing): ``epoch`` (1-based),
  ``batch`` (batches done in this epoch), ``batches``, ``loss``, ``accuracy``, ``seconds``;
* ``event="epoch"`` reports, one per finished epoch: ``epoch``, ``loss``, ``accuracy``,
  ``val_loss``, ``val_accuracy`` (``None`` without validation data), ``seconds`` — the
  rows :func:`cnnviz.charts.training.training_curves` draws;
* with ``filters=True``, a copy of the first convolution's kernel ``(kh, kw, in, out)`` in
  every report (``filters``), the picture of what the first layer learnt so far.

After every batch it asks ``ctx.should_stop()`` and sets ``model.stop_training`` (Keras
then ends the epoch at once, validates and returns: the model keeps what it learnt).
The model itself is kept as the job's partial result from the start.
"""

from __future__ import annotations

import time
from typing import Any

import keras
import numpy as np

from cnnviz.jobs import JobContext

__all__ = ["JobProgress", "first_conv", "fraction_done", "seconds_left"]


def first_conv(model: keras.Model) -> keras.layers.Layer | None:
    """The model's first ``Conv2D`` layer (the one whose filters look at pixels), or ``None``."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            return layer
    return None


class JobProgress(keras.callbacks.Callback):
    """Report batches and epochs to ``ctx``; stop when the job is asked to stop."""

    def __init__(
        self, ctx: JobContext, *, epochs: int, every_s: float = 0.5, filters: bool = True, extra: dict | None = None
    ) -> None:
        super().__init__()
        self.ctx = ctx
        self.epochs = epochs
        self.every_s = every_s
        self.want_filters = filters
        self.extra = dict(extra or {})
        self._began = 0.0
        self._last = 0.0
        self._epoch = 0
        self._conv = None

    def _filters(self) -> np.ndarray | None:
        if self._conv is None:
            return None
        return np.array(self._conv.kernel.numpy(), dtype=np.float32, copy=True)

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._began = time.perf_counter()
        self._last = self._began
        self._conv = first_conv(self.model) if self.want_filters else None
        self.ctx.partial(self.model)
        self.ctx.report(
            event="start",
            epoch=0,
            epochs=self.epochs,
            seconds=0.0,
            batches=self.params.get("steps"),
            filters=self._filters(),
            **self.extra,
        )

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = epoch + 1

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.ctx.should_stop():
            self.model.stop_training = True
        now = time.perf_counter()
        if now - self._last < self.every_s:
            return
        self._last = now
        logs = logs or {}
        self.ctx.report(
            event="batch",
            epoch=self._epoch,
            epochs=self.epochs,
            batch=batch + 1,
            batches=self.params.get("steps"),
            loss=_num(logs.get("loss")),
            accuracy=_num(logs.get("accuracy")),
            seconds=now - self._began,
            filters=self._filters(),
            **self.extra,
        )

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        now = time.perf_counter()
        self._last = now
        self.ctx.report(
            event="epoch",
            epoch=epoch + 1,
            epochs=self.epochs,
            loss=_num(logs.get("loss")),
            accuracy=_num(logs.get("accuracy")),
            val_loss=_num(logs.get("val_loss")),
            val_accuracy=_num(logs.get("val_accuracy")),
            seconds=now - self._began,
            filters=self._filters(),
            stopped=bool(self.model.stop_training),
            **self.extra,
        )


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def fraction_done(progress: dict) -> float:
    """Share of the training done (0–1) from a report: finished epochs plus the current epoch's batches."""
    epochs = progress.get("epochs") or 0
    if not epochs:
        return 0.0
    if progress.get("event") in ("epoch", "judging"):
        return min(1.0, progress.get("epoch", 0) / epochs)
    batches = progress.get("batches") or 0
    within = (progress.get("batch", 0) / batches) if batches else 0.0
    return min(1.0, (max(progress.get("epoch", 1), 1) - 1 + within) / epochs)


def seconds_left(progress: dict, elapsed_s: float) -> float | None:
    """Estimated seconds left at the pace so far, or ``None`` before there is a pace to go by."""
    done = fraction_done(progress)
    if done <= 0.02 or elapsed_s <= 0:
        return None
    return elapsed_s * (1 - done) / done
