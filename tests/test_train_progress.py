"""The Keras callback that links model.fit to a background job: reports, filters, Stop after a batch."""

from __future__ import annotations

import time

import pytest

import keras
import numpy as np

from cnnviz.jobs import Pool
from cnnviz.train.progress import JobProgress


def tiny_cnn() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(seed=1)),
            keras.layers.Flatten(),
            keras.layers.Dense(2, activation="softmax", kernel_initializer=keras.initializers.GlorotUniform(seed=2)),
        ]
    )


def data(n: int = 256):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, n)
    x = rng.normal(0, 1, (n, 8, 8, 1)).astype("float32")
    x[y == 1, 2:6, 2:6] += 2.0  # a bright square marks class 1
    return x, y


def wait(job, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not job.finished and time.monotonic() < deadline:
        job.touch()
        time.sleep(0.01)
    assert job.finished


def fit_job(epochs: int, stop_at_batch: int | None = None):
    x, y = data()

    def fn(ctx):
        model = tiny_cnn()
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        cb = JobProgress(ctx, epochs=epochs, every_s=0.0)
        if stop_at_batch is not None:

            class StopAt(keras.callbacks.Callback):
                def on_train_batch_end(self, batch, logs=None):
                    if batch + 1 == stop_at_batch:
                        ctx._job.stop()  # what the visitor's Stop button does

            cbs = [StopAt(), cb]
        else:
            cbs = [cb]
        model.fit(x, y, validation_data=(x[:64], y[:64]), epochs=epochs, batch_size=16, verbose=0, callbacks=cbs)
        return model

    pool = Pool(workers=1, queue=1)
    job = pool.submit(fn, kind="fit", owner="t")
    wait(job)
    return job


@pytest.mark.slow
def test_reports_every_batch_and_epoch_with_the_first_layers_filters():
    job = fit_job(epochs=2)
    assert job.state == "done" and isinstance(job.result, keras.Model)
    epochs = job.rows("epoch")
    assert [r["epoch"] for r in epochs] == [1, 2]
    assert all(r["val_loss"] is not None and 0 <= r["val_accuracy"] <= 1 for r in epochs)
    batches = job.rows("batch")
    assert [r["batch"] for r in batches if r["epoch"] == 1] == list(range(1, 17))
    assert epochs[0]["filters"].shape == (3, 3, 1, 4)
    assert not np.allclose(job.history[0]["filters"], epochs[-1]["filters"])  # the filters learnt something
    np.testing.assert_allclose(epochs[-1]["filters"], job.result.layers[0].kernel.numpy())


def test_stop_ends_training_after_the_current_batch_and_keeps_the_model():
    job = fit_job(epochs=50, stop_at_batch=5)
    assert job.state == "stopped"
    batches = job.rows("batch")
    assert batches[-1]["epoch"] == 1 and batches[-1]["batch"] == 5
    assert [r["epoch"] for r in job.rows("epoch")] == [1]
    assert job.rows("epoch")[-1]["stopped"] is True
    assert isinstance(job.result, keras.Model)
    np.testing.assert_allclose(job.rows("epoch")[-1]["filters"], job.result.layers[0].kernel.numpy())


@pytest.mark.slow
def test_a_training_job_on_demo_shapes_learns_reports_and_is_judged_on_the_test_set():
    from cnnviz.train import scratch as S

    data = S.demo_shapes(60, size=32, colour=False)
    run = S.Run(S.PRESETS["carpentries"].layers, data, epochs=3, batch_size=16, subset=150)
    job = Pool(workers=1, queue=1).submit(S.training_job(run), kind="scratch", owner="t")
    wait(job, 120)
    assert job.state == "done", job.error
    result = job.result
    assert (result.train_images, result.val_images) == (134, 16)  # Teachable Machine rounds the 15 % up, per class
    assert [r["epoch"] for r in result.rows] == [1, 2, 3] and "filters" not in result.rows[0]
    ev = result.evaluation
    assert ev.confusion.sum() == len(data.x_test) == len(result.test_x)
    probs = result.model.predict(data.x_test.astype("float32"), verbose=0)
    assert ev.accuracy == float((probs.argmax(1) == data.y_test).mean())
    assert job.progress["event"] == "judging"


def test_fraction_done_and_time_left():
    from cnnviz.train.progress import fraction_done, seconds_left

    assert fraction_done({"event": "batch", "epoch": 2, "epochs": 4, "batch": 50, "batches": 100}) == 0.375
    assert fraction_done({"event": "epoch", "epoch": 3, "epochs": 4}) == 0.75
    assert fraction_done({"event": "start", "epoch": 0, "epochs": 4}) == 0.0
    assert seconds_left({"event": "epoch", "epoch": 1, "epochs": 4}, 10.0) == 30.0
    assert seconds_left({"event": "start", "epoch": 0, "epochs": 4}, 1.0) is None
