"""Benchmark the transfer-learning trainer against the naive way, on real paintings.

Data: 200 images in 4 classes (landscape, portrait, seascape, still life), made from the
real paintings in ``../shared/images/paintings`` by seeded augmentation (random crop,
flip, small rotation, brightness and contrast) to reach 50 per class. Augmented copies
of one painting can land in both the training and the validation part, so the accuracies
are optimistic; they are here to show both ways learn, not to judge the classifier.

1. The trainer's way at the defaults (50 epochs, batch 16, lr 0.001, 15 % per class held
   out): embed the 200 images once with EfficientNet-Lite0 on LiteRT (converted once per
   machine before the clock starts, like loading the model; ``embed_keras_s`` is the same
   embedding on Keras under ``tf.function``, the path LiteRT replaced), train the head on embeddings with the compiled epoch
   loop, building the live chart every epoch as the page does, evaluate and build the full
   model. ``end_to_end_s`` is all of it; target ≤ 8 s on 2 cores. ``peak_rss_mb`` is the
   process's peak resident memory at that point (TensorFlow and the base model included);
   target ≤ 1.5 GB.
2. The naive way (the baseline, in the same run): the frozen base plus the same head as
   one Keras model trained with ``model.fit`` on the images, with the same split, batch
   size and learning rate. A few epochs are timed and scaled to 50;
   ``speedup_vs_fit`` = estimated naive 50-epoch time / ``end_to_end_s`` (target ≥ 20).

Run:  .venv/bin/python -m bench.trainer   (last line: one JSON object)
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
from bench._setup import SHARED as SHARED_ROOT, temporary_keras_home  # noqa: E402

temporary_keras_home()  # before Keras is imported, as tests and CI do
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
SHARED = SHARED_ROOT / "images"
CLASSES = ("landscape", "portrait", "seascape", "still-life")
PER_CLASS = 50
FIT_EPOCHS = int(os.environ.get("BENCH_FIT_EPOCHS", "3"))
BASE = "efficientnet_lite0"


def augmented(images, n, rng):
    """``n`` seeded variations of the source paintings (crop, flip, rotation, light)."""
    import numpy as np
    from PIL import Image, ImageEnhance

    out = []
    for i in range(n):
        pil = Image.fromarray(images[i % len(images)])
        w, h = pil.size
        scale = rng.uniform(0.6, 1.0)
        cw, ch = int(w * scale), int(h * scale)
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        pil = pil.crop((x, y, x + cw, y + ch)).rotate(
            float(rng.uniform(-12, 12)), resample=Image.Resampling.BILINEAR, expand=False
        )
        if rng.random() < 0.5:
            pil = pil.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        pil = ImageEnhance.Brightness(pil).enhance(float(rng.uniform(0.75, 1.25)))
        pil = ImageEnhance.Contrast(pil).enhance(float(rng.uniform(0.75, 1.25)))
        pil.thumbnail((320, 320))
        out.append(np.asarray(pil.convert("RGB")))
    return out


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports kB


def main() -> None:
    if not SHARED.is_dir():
        sys.exit(f"No shared images at {SHARED}; set CNNVIZ_SHARED to the folder that holds images/.")
    import numpy as np

    from cnnviz.images import load_image_file

    rng = np.random.default_rng(0)
    images, labels = [], []
    for label, topic in enumerate(CLASSES):
        sources = [
            load_image_file(p, max_side=512)
            for p in sorted((SHARED / "paintings" / topic).glob("*"))
            if p.suffix.lower() in {".png", ".jpg", ".jpeg"}
        ]
        images += augmented(sources, PER_CLASS, rng)
        labels += [label] * PER_CLASS
    targets = np.array(labels)
    print(f"{len(images)} images in {len(CLASSES)} classes ({', '.join(CLASSES)}), from {SHARED / 'paintings'}")

    import keras

    from cnnviz.model import registry
    from cnnviz.train import transfer as training
    from cnnviz.charts.training import training_curves, with_rows

    t = time.perf_counter()
    base = registry.load_model(BASE)
    print(f"{BASE} loaded in {time.perf_counter() - t:.1f} s (once per server process; not counted)")
    from cnnviz.model import fast_embed

    t = time.perf_counter()
    fast = fast_embed.embedder(training.embedding_model_for(base), persist=True)
    backend = "litert" if fast_embed.is_fast(fast) else "keras"
    print(
        f"base network on {backend} ({fast_embed.THREADS} threads); converted in {time.perf_counter() - t:.1f} s "
        "(once per machine, kept in Keras's cache; not counted)"
    )
    defaults = training.DEFAULTS

    # ---- the trainer's way
    load_before = os.getloadavg()[0]
    c0 = time.process_time()
    t0 = time.perf_counter()
    embedder = training.embedding_model_for(base)
    store = training.EmbeddingStore()
    _, x = training.embed_images(images, embedder, BASE, store=store)
    embed_s = time.perf_counter() - t0
    embed_cpu = time.process_time() - c0
    train_idx, val_idx = training.stratified_split(targets, defaults.validation_fraction, defaults.seed)
    head = training.build_head(x.shape[1], len(CLASSES))
    history = training.History()
    c1 = time.process_time()
    t1 = time.perf_counter()

    curves = training_curves([], epochs=defaults.epochs).to_dict()

    def on_epoch(row: dict) -> None:  # what the page does every epoch: the live chart's spec with all rows so far
        json.dumps(with_rows(curves, history.rows))

    training.train_head(
        head,
        x[train_idx],
        targets[train_idx],
        x[val_idx],
        targets[val_idx],
        epochs=defaults.epochs,
        batch_size=defaults.batch_size,
        learning_rate=defaults.learning_rate,
        seed=defaults.seed,
        on_epoch=on_epoch,
        history=history,
    )
    head_train_s = time.perf_counter() - t1
    head_cpu = time.process_time() - c1
    evaluation = training.evaluate(training.head_probabilities(head, x[val_idx]), targets[val_idx], list(CLASSES))
    model = training.full_model(embedder, head)
    end_to_end_s = time.perf_counter() - t0
    end_cpu = time.process_time() - c0
    rss = peak_rss_mb()
    val_acc = evaluation.accuracy
    print(
        f"trainer: embed {embed_s:.2f} s, head {head_train_s:.2f} s for {len(history.rows)} epochs "
        f"(live chart spec refreshed every epoch), end to end {end_to_end_s:.2f} s, val acc {val_acc:.3f}, "
        f"peak RSS {rss:.0f} MB, full model {model.count_params():,} parameters"
    )
    print(
        f"CPU time of this process (all threads): embed {embed_cpu:.2f} s, head {head_cpu:.2f} s, "
        f"end to end {end_cpu:.2f} s; 1-minute load average {load_before:.1f} on {os.cpu_count()} cores "
        "(a load above the core count means other processes stretched the wall-clock figures)"
    )
    t2 = time.perf_counter()
    _, x_again = training.embed_images(images, embedder, BASE, store=store)
    print(
        f"retrain with other settings: embeddings from the cache in {time.perf_counter() - t2:.3f} s "
        f"({store.hits} hits)"
    )
    # The same embedding the old way (Keras under tf.function, batches of 32), for comparison.
    keras_call = fast_embed.embedder(embedder, fast=False)
    size = tuple(embedder.input_shape[1:3])
    keras_call(training.to_model_input(images[:2], size))  # tracing, as the first call above included
    t2 = time.perf_counter()
    x_keras = np.concatenate(
        [keras_call(training.to_model_input(images[i : i + 32], size)) for i in range(0, len(images), 32)]
    )
    embed_keras_s = time.perf_counter() - t2
    print(
        f"embedding on Keras instead: {embed_keras_s:.2f} s ({embed_keras_s / embed_s:.2f}× the {backend} time); "
        f"largest feature difference {float(np.abs(x_keras - x).max()):.1e}"
    )

    # ---- the naive way: frozen base + head as one model, model.fit on the images
    for layer in embedder.layers:
        layer.trainable = False
    naive_head = training.build_head(x.shape[1], len(CLASSES))
    naive = training.full_model(embedder, naive_head, name="naive")
    naive.compile(
        optimizer=keras.optimizers.Adam(defaults.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    pixels = training.to_model_input(images, tuple(naive.input_shape[1:3]))
    epoch_times = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.began = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            epoch_times.append(time.perf_counter() - self.began)

    t3 = time.perf_counter()
    fit = naive.fit(
        pixels[train_idx],
        targets[train_idx],
        validation_data=(pixels[val_idx], targets[val_idx]),
        epochs=FIT_EPOCHS,
        batch_size=defaults.batch_size,
        shuffle=True,
        verbose=0,
        callbacks=[Timer()],
    )
    fit_measured_s = time.perf_counter() - t3
    steady = float(np.mean(epoch_times[1:])) if len(epoch_times) > 1 else epoch_times[0]
    fit_total_s = epoch_times[0] + steady * (defaults.epochs - 1)
    fit_val_acc = float(fit.history["val_accuracy"][-1])
    speedup = fit_total_s / end_to_end_s
    print(
        f"naive model.fit: {FIT_EPOCHS} epochs in {fit_measured_s:.1f} s (first {epoch_times[0]:.1f} s, then "
        f"{steady:.2f} s/epoch) -> {defaults.epochs} epochs ≈ {fit_total_s:.0f} s; val acc after "
        f"{FIT_EPOCHS} epochs {fit_val_acc:.3f}"
    )
    print(
        f"targets: end_to_end_s ≤ 8 ({'met' if end_to_end_s <= 8 else 'MISSED'}), speedup ≥ 20 "
        f"({'met' if speedup >= 20 else 'MISSED'}), peak RSS ≤ 1536 MB ({'met' if rss <= 1536 else 'MISSED'})"
    )
    print(
        json.dumps(
            {
                "embed_s": round(embed_s, 3),
                "embed_keras_s": round(embed_keras_s, 3),
                "embed_backend": backend,
                "head_train_s": round(head_train_s, 3),
                "end_to_end_s": round(end_to_end_s, 3),
                "speedup_vs_fit": round(speedup, 1),
                "val_acc": round(val_acc, 4),
                "fit_val_acc": round(fit_val_acc, 4),
                "peak_rss_mb": round(rss, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
