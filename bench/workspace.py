"""Benchmark the workspace store: save and reopen a trainer session with 500 images and one model.

Data: 500 demo shapes (``cnnviz.train.demo_data``, 5 classes of 100) as the trainer keeps them
(96-pixel thumbnails plus one 1 280-number embedding each, seeded non-negative numbers shaped
like EfficientNet-Lite0's pooled features), a finished run (real head trained on them), and its
full model: the real EfficientNet-Lite0 base + head (4.7 M parameters), as page 4 registers it.

- ``save_500_s``: everything the router writes after that run (outline, 500 image items, the
  run, the model as ``.keras`` with its card), made and written in one SQLite transaction.
- ``restore_500_s``: reading it all back and rebuilding the session with its judged run (what a
  reload costs before the page draws); ``model_load_s``: loading the model when a page first
  uses it (lazily, through the upload checks).
- ``disk_mb``: the database file(s) on disk afterwards.
- ``save_vs_files``: ``save_500_s`` / the same bytes written as one file per item with
  ``fsync`` at the end (the baseline in this run: a store can hardly be faster than that).

Run:  .venv/bin/python -m bench.workspace   (last line: one JSON object)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from bench._setup import temporary_keras_home

temporary_keras_home()  # before Keras is imported, as tests and CI do
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from cnnviz.model import registry
from cnnviz.train import transfer
from cnnviz.train.demo_data import demo_dataset
from cnnviz.train.session import TrainingSession
from cnnviz.workspace import contents, ids
from cnnviz.workspace.store import SQLiteStore

N_IMAGES, DIM, BASE = 500, 1280, "efficientnet_lite0"


def session_with_500(embedder) -> TrainingSession:
    rng = np.random.default_rng(0)
    trainer = TrainingSession()
    shapes = demo_dataset(N_IMAGES // 5, seed=0)
    names = list(shapes) + ["ring", "cross"]
    per_class = N_IMAGES // 5
    images = [im for ims in shapes.values() for im in ims]
    images += [np.ascontiguousarray(im[::-1]) for im in images[: 2 * per_class]]  # two more "classes": flipped
    centres = rng.gamma(1.0, 1.0, (5, DIM)).astype(np.float32)

    def embed(batch, on_progress=None):
        keys: list[str] = []
        for image in batch:
            key = transfer.image_key(image)
            label = len(keys) // per_class
            trainer.store.put(key, BASE, np.maximum(centres[label] + rng.normal(0, 0.5, DIM), 0), image)
            keys.append(key)
        return keys

    keys = embed(images[:N_IMAGES])
    for c in range(5):
        cls = trainer.class_named(names[c])
        trainer._attach(
            cls, [f"{names[c]}-{i:03d}.png" for i in range(per_class)], keys[c * per_class : (c + 1) * per_class]
        )
    run = trainer.start_run(BASE, {"epochs": 5, "batch_size": 16, "learning_rate": 0.001})
    TrainingSession.train(run)
    trainer.finish_run(run, embedder, base_title="EfficientNet-Lite0", stopped=False)
    return trainer


def reader(store: SQLiteStore, ws: str, name: str):
    return lambda: store.read(ws, "model", name)


def main() -> None:
    embedder = transfer.embedding_model_for(registry.load_model(BASE))
    trainer = session_with_500(embedder)
    run = trainer.run
    assert run is not None and run.model is not None and run.card is not None
    folder = Path(tempfile.mkdtemp(prefix="cnnviz-bench-ws-"))
    try:
        store = SQLiteStore(folder / "workspaces.sqlite3")
        ws = ids.new_id()
        store.create(ws)

        start = time.perf_counter()
        items = [
            ("trainer", "session", contents.trainer_outline(trainer, run.name)),
            ("run", "head", contents.run_item(run)),
            ("model", run.name, contents.model_bytes(run.model, run.classes)),
            ("card", run.name, json.dumps(run.card).encode()),
        ]
        items += [("image", k, contents.image_item(t, e)) for k, (t, e) in trainer.store.entries().items()]
        store.write(ws, items)
        save_s = time.perf_counter() - start

        files = folder / "files"
        files.mkdir()
        start = time.perf_counter()
        for i, (_, _, data) in enumerate(items):
            (files / f"{i}.bin").write_bytes(data)
        fd = os.open(files, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
        files_s = time.perf_counter() - start

        store.close()
        store = SQLiteStore(folder / "workspaces.sqlite3")  # as a restarted server opens it
        start = time.perf_counter()
        cards = store.read_kind(ws, "card")
        models = {n: contents.ModelEntry(json.loads(c), reader(store, ws, n)) for n, c in cards.items()}
        back = contents.restore_trainer(
            store.read(ws, "trainer", "session") or b"",
            store.read_kind(ws, "image"),
            run=store.read(ws, "run", "head"),
            models=models,
        )
        restore_s = time.perf_counter() - start
        assert back.run is not None and back.run.results is not None and run.results is not None
        assert len(back.store) == N_IMAGES and back.run.results.validation is not None
        assert back.run.results.validation.accuracy == run.results.validation.accuracy  # type: ignore[union-attr]
        start = time.perf_counter()
        model = back.run.model
        model_s = time.perf_counter() - start
        probe = np.zeros((1, 224, 224, 3), np.float32) + 120
        same = float(np.abs(model.predict(probe, verbose=0) - run.model.predict(probe, verbose=0)).max())
        disk = sum(p.stat().st_size for p in folder.glob("workspaces.sqlite3*"))
        sizes = {
            k: sum(len(d) for kind, _, d in items if kind == k) / 2**20 for k in ("image", "model", "run", "trainer")
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"saved {len(items)} items ({', '.join(f'{k} {v:.1f} MB' for k, v in sizes.items())}) in {save_s:.2f} s")
    print(
        f"same bytes as files + fsync: {files_s:.2f} s; reopened in {restore_s:.2f} s; model loaded in {model_s:.2f} s"
    )
    print(f"reloaded model's largest difference in probability: {same:.2e}")
    print(
        json.dumps(
            {
                "save_500_s": round(save_s, 3),
                "restore_500_s": round(restore_s, 3),
                "model_load_s": round(model_s, 3),
                "disk_mb": round(disk / 2**20, 2),
                "save_vs_files": round(save_s / max(files_s, 1e-9), 2),
                "max_prob_diff": same,
            }
        )
    )


if __name__ == "__main__":
    main()
