"""The lesson from start to finish on a whole collection: read, check, train, test, export, classify.

The command line (:mod:`cnnviz.cli`) runs exactly this; the trainer page does the same
steps with its own widgets in between. Memory stays small for thousands of images: each
image is decoded, embedded in a batch of 32, and only its embedding, facts
(:func:`cnnviz.train.dataset_check.image_facts`) and file name are kept.

Defaults are the trainer page's (:data:`cnnviz.train.transfer.DEFAULTS`: Teachable
Machine's 50 epochs, batch 16, learning rate 0.001, 15 % validation rounded up).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Callable, Iterable, Sequence

import keras
import numpy as np

from cnnviz import predictions
from cnnviz.read_ahead import read_ahead
from cnnviz.train import dataset_check, lesson
from cnnviz.train import transfer as training

__all__ = [
    "EmbeddedCollection",
    "TrainedCollection",
    "embed_collection",
    "train_collection",
    "export_trained",
    "classify_images",
    "folder_of",
    "judge_head",
]

Progress = Callable[[str, int, int], None]  # (stage, done, total)
BATCH = 32


def folder_of(path: str) -> str:
    """The folder part of a path inside a collection (``testing/portrait/a.jpg`` → ``testing/portrait``)."""
    parent = str(PurePosixPath(path).parent)
    return "" if parent == "." else parent


@dataclass
class EmbeddedCollection:
    """Every usable image of a collection as facts + embedding (row-aligned), plus what was skipped."""

    collection: lesson.Collection
    facts: list[dataset_check.ImageFacts]
    embeddings: np.ndarray
    example: np.ndarray | None  # one testing image (else a training one), for the exported sketch
    seconds: float

    def rows(self, part: str) -> list[int]:
        return [i for i, f in enumerate(self.facts) if f.part == part]


@dataclass
class TrainedCollection:
    """A trained classifier and everything measured on the way."""

    model: keras.Model
    head: keras.Model
    base: str
    class_names: list[str]
    history: training.History
    check: dataset_check.DatasetCheck
    results: lesson.LessonResults
    settings: dict
    test_rows: list[dict]  # prediction rows (:mod:`cnnviz.predictions`) of every testing/ image
    embedded: EmbeddedCollection
    timings: dict = field(default_factory=dict)


def embed_collection(
    collection: lesson.Collection,
    embedder: keras.Model,
    base: str,
    *,
    max_side: int = 512,
    on_progress: Progress | None = None,
) -> EmbeddedCollection:
    """Decode and embed every image of ``collection`` (batches of 32), keeping facts and embeddings only."""
    started = time.perf_counter()
    facts: list[dataset_check.ImageFacts] = []
    chunks: list[np.ndarray] = []
    batch: list[np.ndarray] = []
    example, example_part = None, ""
    total = len(collection.entries)
    seen = 0

    def flush() -> None:
        if batch:
            chunks.append(training.embed_images(batch, embedder, base, batch_size=BATCH)[1])
            batch.clear()

    if on_progress:
        on_progress("Reading and embedding images", 0, total)
    for item in read_ahead(collection.images(max_side=max_side), depth=2 * BATCH):  # decode while embedding
        facts.append(dataset_check.image_facts(item.path, item.part, item.label, item.image))
        batch.append(item.image)
        if example is None or (item.part == "testing" and example_part != "testing"):
            example, example_part = item.image, item.part  # the sketch shows a test image when there is one
        seen += 1
        if len(batch) == BATCH:
            flush()
            if on_progress:
                on_progress("Reading and embedding images", seen, total)
    flush()
    if on_progress:
        on_progress("Reading and embedding images", total, total)
    dim = int(embedder.output_shape[-1])
    embeddings = np.concatenate(chunks) if chunks else np.zeros((0, dim), np.float32)
    return EmbeddedCollection(collection, facts, embeddings, example, time.perf_counter() - started)


def train_collection(
    collection: lesson.Collection,
    embedder: keras.Model,
    *,
    base: str = "efficientnet_lite0",
    epochs: int = training.DEFAULTS.epochs,
    batch_size: int = training.DEFAULTS.batch_size,
    learning_rate: float = training.DEFAULTS.learning_rate,
    seed: int = training.DEFAULTS.seed,
    threshold: float = predictions.UNSURE_THRESHOLD,
    model_name: str = "classifier",
    on_progress: Progress | None = None,
    embedded: EmbeddedCollection | None = None,
) -> TrainedCollection:
    """Read, check, split, train and test: the lesson's steps on ``collection``.

    Trains on ``training/`` minus Teachable Machine's validation split; tests on the
    labelled ``testing/`` images. Raises ``ValueError`` (one sentence) with fewer than two
    classes to train on.
    """
    embedded = embedded or embed_collection(collection, embedder, base, on_progress=on_progress)
    facts, x_all = embedded.facts, embedded.embeddings
    check = dataset_check.check_dataset(facts, collection.skipped, x_all)
    train_rows = embedded.rows("training")
    classes = sorted({label for i in train_rows if (label := facts[i].label)})
    if len(classes) < 2:
        raise ValueError(
            f"{collection.name} has {len(classes)} class folder(s) with images; at least two are needed "
            "to train (training/<class>/<image> or <class>/<image>)."
        )
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[facts[i].label or ""] for i in train_rows], dtype=np.int64)
    x = x_all[train_rows]
    tr, va = training.stratified_split(y, lesson.VALIDATION_FRACTION, seed)
    head = training.build_head(x.shape[1], len(classes), seed=seed)
    began = time.perf_counter()
    history = training.train_head(
        head,
        x[tr],
        y[tr],
        x[va],
        y[va],
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        on_epoch=(lambda row: on_progress("Training", row["epoch"], epochs)) if on_progress else None,
    )
    train_seconds = time.perf_counter() - began
    files = [PurePosixPath(f.path).name for f in facts]
    folders = [folder_of(f.path) for f in facts]
    val_rows = [train_rows[i] for i in va]
    test_idx = embedded.rows("testing")
    results, test_rows = judge_head(
        head,
        classes,
        x_val=x[va],
        y_val=y[va],
        val_files=[files[i] for i in val_rows],
        val_folders=[folders[i] for i in val_rows],
        x_test=x_all[test_idx],
        test_classes=[facts[i].label for i in test_idx],
        test_files=[files[i] for i in test_idx],
        test_folders=[folders[i] for i in test_idx],
        n_training=len(tr),
        threshold=threshold,
    )
    model = training.full_model(embedder, head, name=model_name)
    settings = {
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "seed": seed,
        "validation_fraction": lesson.VALIDATION_FRACTION,
    }
    return TrainedCollection(
        model,
        head,
        base,
        classes,
        history,
        check,
        results,
        settings,
        test_rows,
        embedded,
        {"embed_seconds": embedded.seconds, "train_seconds": train_seconds},
    )


def judge_head(
    head: keras.Model,
    class_names: Sequence[str],
    *,
    x_val: np.ndarray,
    y_val: np.ndarray,
    val_files: Sequence[str],
    val_folders: Sequence[str],
    x_test: np.ndarray,
    test_classes: Sequence[str | None],
    test_files: Sequence[str],
    test_folders: Sequence[str],
    n_training: int | None = None,
    threshold: float = predictions.UNSURE_THRESHOLD,
) -> tuple[lesson.LessonResults, list[dict]]:
    """Test and validation results of a trained head from embeddings: ``(LessonResults, test prediction rows)``.

    ``x_val``/``y_val``: validation embeddings ``(V, D)`` and class indices; ``x_test``: the
    ``testing/`` images' embeddings ``(T, D)`` with their folder classes (``None`` or a name
    no class has: classified, not scored). ``Mistake.index`` of the test result is the position
    in ``test_files``; of the validation result, the position in ``x_val``. The rows are :func:`cnnviz.predictions.prediction_rows`
    for every test image (the CSV). The trainer page calls this with the embeddings it keeps.
    """
    classes = list(class_names)
    validation = lesson.evaluate_set(
        "validation", training.head_probabilities(head, x_val), y_val, classes, val_files, val_folders
    )
    test_probs = training.head_probabilities(
        head,
        np.asarray(x_test, dtype=np.float32).reshape(len(test_files), -1)
        if len(test_files)
        else np.zeros((0, int(head.input_shape[-1])), np.float32),
    )
    labels, known = lesson.test_labels(list(test_classes), classes)
    test = None
    if known.any():
        keep = np.flatnonzero(known)
        test = lesson.evaluate_set(
            "test",
            test_probs[keep],
            labels[keep],
            classes,
            [test_files[int(k)] for k in keep],
            [test_folders[int(k)] for k in keep],
        )
        # Mistake.index points into the test images as given (unscored ones included), for thumbnails.
        test.mistakes = [dataclasses.replace(m, index=int(keep[m.index])) for m in test.mistakes]
    results = lesson.lesson_results(test, validation, n_unscored_test=int((~known).sum()), n_training=n_training)
    rows = predictions.prediction_rows(
        list(test_files),
        test_probs,
        classes,
        folders=list(test_folders),
        true_classes=[t if t in classes else None for t in test_classes],
        threshold=threshold,
    )
    return results, rows


def export_trained(
    trained: TrainedCollection, *, model_name: str = "cnnviz classifier", include_tflite: bool = True
) -> bytes:
    """The export zip (:func:`cnnviz.train.export.export_zip`) with test and validation accuracy in its metadata."""
    from cnnviz.train.export import export_zip

    res = trained.results
    info = {
        **trained.settings,
        "epochs_run": len(trained.history.rows),
        "training_images": int(sum(1 for f in trained.embedded.facts if f.part == "training")),
        "validation_accuracy": res.validation.accuracy if res.validation else None,
        "test_accuracy": res.test.accuracy if res.test else None,
        "test_images": res.test.n_images if res.test else 0,
    }
    return export_zip(
        trained.model,
        trained.class_names,
        base_model=trained.base,
        model_name=model_name,
        training=info,
        include_tflite=include_tflite,
        example_image=trained.embedded.example,
    )


def classify_images(
    model: keras.Model,
    class_names: Sequence[str],
    items: Iterable,
    *,
    threshold: float = predictions.UNSURE_THRESHOLD,
    known_classes: bool = True,
    on_progress: Progress | None = None,
    total: int | None = None,
) -> list[dict]:
    """Prediction rows for ``items`` (objects with ``path``, ``label``, ``image``, e.g. :class:`cnnviz.zips.ZipImage`).

    Images go through the full model in batches of 32. A ``label`` that names one of
    ``class_names`` becomes the row's true class (so ``correct`` is filled in).
    """
    rows: list[dict] = []
    batch: list = []
    names = set(class_names)
    done = 0

    def flush() -> None:
        nonlocal done
        if not batch:
            return
        probs = training.predict_probabilities(model, [b.image for b in batch], batch_size=BATCH)
        rows.extend(
            predictions.prediction_rows(
                [PurePosixPath(b.path).name for b in batch],
                probs,
                class_names,
                folders=[folder_of(b.path) for b in batch],
                true_classes=[b.label if known_classes and b.label in names else None for b in batch],
                threshold=threshold,
            )
        )
        done += len(batch)
        batch.clear()
        if on_progress:
            on_progress("Classifying", done, total or done)

    for item in items:
        batch.append(item)
        if len(batch) == BATCH:
            flush()
    flush()
    return rows
