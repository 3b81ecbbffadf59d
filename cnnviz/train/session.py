"""One visitor's training session on page 4: classes and their images, runs and their results.

The page only draws widgets and calls these methods; every rule lives here, with tests:

- a class is a card with a unique, non-empty name and the images added to it (kept as
  embedding-store keys: the embedding and a thumbnail, never the full picture);
- images arrive from files, a folder, the webcam, a zip in the lesson's layout
  (``training/<class>/…`` + ``testing/…``) or the generated demo shapes; the same picture
  twice in a class is kept once;
- a run freezes the data it trains on (embeddings, labels, the validation split), trains a
  head, and when it ends (finished, stopped, or interrupted after at least one epoch) is
  judged and turned into one full Keras model with a visitor model card.

Embedding is passed in as a function ``embed(images, on_progress) -> keys`` so that this
module needs no particular base network (the page gives it the cached EfficientNet-Lite0).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import keras
import numpy as np

from cnnviz.model.registry import visitor_card
from cnnviz.train import transfer
from cnnviz.train.demo_data import demo_dataset
from cnnviz.zips import iter_zip_images, plan_zip

__all__ = ["ClassImages", "TestImage", "Run", "TrainingSession", "Embed", "model_slug"]

#: ``embed(images, on_progress)`` → one embedding-store key per image (embeddings cached in the store).
Embed = Callable[[Sequence[np.ndarray], Callable[[int, int], None] | None], list[str]]

DEFAULT_NAME = re.compile(r"Class \d+")


@dataclass
class ClassImages:
    """One class card: its id (stable while the name changes), name and images (store keys + file names)."""

    id: int
    name: str
    keys: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


@dataclass
class TestImage:
    """An image held back for testing (a zip's ``testing/`` folder, the demo's test shapes)."""

    file: str
    key: str
    label: str | None


@dataclass
class Run:
    """One training run: the data it froze, its settings, and (once ended) its judged result."""

    name: str
    base: str
    classes: list[str]
    keys: list[str]
    x: np.ndarray
    y: np.ndarray
    train_idx: np.ndarray
    val_idx: np.ndarray
    settings: dict[str, Any]
    head: keras.Model
    history: transfer.History = field(default_factory=transfer.History)
    evaluation: transfer.Evaluation | None = None
    judged_on: str = ""  # "validation", or "training" when no class could hold an image out
    judged_keys: list[str] = field(default_factory=list)
    model: keras.Model | None = None
    card: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        return self.model is not None


def model_slug(name: str) -> str:
    """A model/file name from a visitor's run name: ``"My classifier 1"`` → ``"My_classifier_1"``."""
    return re.sub(r"\W+", "_", name).strip("_") or "classifier"


class TrainingSession:
    """Everything one visitor does on page 4 (lives in their ``st.session_state``)."""

    def __init__(self, *, max_images: int = 6_000) -> None:
        self.store = transfer.EmbeddingStore(max_images=max_images)
        self._next_id = 0
        self.classes: list[ClassImages] = [self._new_class("Class 1"), self._new_class("Class 2")]
        self.testset: list[TestImage] = []
        self.skipped: list[str] = []  # sentences for files of the last zip or upload that were not used
        self.zip_summary = ""
        self.run: Run | None = None
        self.runs_started = 0

    # ------------------------------------------------------------------ classes
    def _new_class(self, name: str) -> ClassImages:
        self._next_id += 1
        return ClassImages(self._next_id, name)

    def add_class(self) -> ClassImages:
        """A new empty card named "Class N" with the first free N."""
        taken = {c.name for c in self.classes}
        n = len(self.classes) + 1
        while f"Class {n}" in taken:
            n += 1
        cls = self._new_class(f"Class {n}")
        self.classes.append(cls)
        return cls

    def delete_class(self, class_id: int) -> None:
        """Remove a card (at least two stay)."""
        if len(self.classes) > 2:
            self.classes = [c for c in self.classes if c.id != class_id]

    def rename(self, class_id: int, new_name: str) -> str | None:
        """Rename a card; returns a sentence when the name cannot be used (empty, or another card's)."""
        cls = self._by_id(class_id)
        new_name = " ".join(new_name.split())  # no line breaks or runs of spaces in a class name
        if not new_name:
            return "Each class needs a name."
        if any(c.name == new_name for c in self.classes if c is not cls):
            return f"Another class is already called “{new_name}”; each class needs its own name."
        cls.name = new_name
        return None

    def class_named(self, name: str) -> ClassImages:
        """The card called ``name``: an existing one, an empty "Class N" card renamed, or a new one."""
        for cls in self.classes:
            if cls.name == name:
                return cls
        for cls in self.classes:
            if not cls.keys and DEFAULT_NAME.fullmatch(cls.name):
                cls.name = name
                return cls
        cls = self._new_class(name)
        self.classes.append(cls)
        return cls

    def _by_id(self, class_id: int) -> ClassImages:
        return next(c for c in self.classes if c.id == class_id)

    # ------------------------------------------------------------------ images
    def add_images(self, cls: ClassImages, named: Sequence[tuple[str, np.ndarray]], embed: Embed,
                   on_progress: Callable[[int, int], None] | None = None) -> int:
        """Embed and add ``(file name, image)`` pairs to a card; returns how many were new to it."""
        if not named:
            return 0
        keys = embed([image for _, image in named], on_progress)
        return self._attach(cls, [name for name, _ in named], keys)

    @staticmethod
    def _attach(cls: ClassImages, files: Sequence[str], keys: Sequence[str]) -> int:
        added = 0
        for file, key in zip(files, keys):
            if key not in cls.keys:
                cls.keys.append(key)
                cls.files.append(file)
                added += 1
        return added

    def remove_images(self, cls: ClassImages, keys: set[str]) -> None:
        kept = [(k, f) for k, f in zip(cls.keys, cls.files) if k not in keys]
        cls.keys, cls.files = [k for k, _ in kept], [f for _, f in kept]

    def thumbnails(self, cls: ClassImages) -> list[tuple[str, str, np.ndarray]]:
        """``(key, file, thumbnail)`` of a card's images still in memory."""
        found = []
        for key, file in zip(cls.keys, cls.files):
            thumb = self.store.thumbnail(key)
            if thumb is not None:
                found.append((key, file, thumb))
        return found

    def add_zip(self, data: bytes, zip_name: str, embed: Embed, *, max_side: int = 512,
                on_progress: Callable[[int, int], None] | None = None, batch: int = 32) -> str:
        """Read a zip (lesson or plain layout) into cards and the test set; returns a summary sentence.

        Raises :class:`cnnviz.zips.ZipError` (one sentence) for a zip that cannot be used. Images
        are decoded and embedded ``batch`` at a time, so memory stays bounded for a big collection.
        """
        plan = plan_zip(data, zip_name=f"“{zip_name}”")
        tests: list[TestImage] = []
        chunk: list = []
        done = 0

        def flush() -> None:
            keys = embed([item.image for item in chunk], None)
            for item, key in zip(chunk, keys):
                if item.part == "training":
                    self._attach(self.class_named(item.label), [item.name], [key])
                else:
                    tests.append(TestImage(item.path, key, item.label))

        for item in iter_zip_images(data, plan, max_side=max_side):
            chunk.append(item)
            if len(chunk) == batch:
                flush()
                done += len(chunk)
                chunk = []
                if on_progress is not None:
                    on_progress(done, len(plan.entries))
        flush()
        if tests:
            self.testset = tests
        self.skipped = list(plan.skipped)
        n_training = sum(1 for e in plan.entries if e.part == "training")
        self.zip_summary = (f"Read “{zip_name}” ({plan.layout} layout): {n_training} training images in "
                            f"{len(plan.classes)} classes, {len(tests)} test images; {len(plan.skipped)} files skipped.")
        return self.zip_summary

    def load_demo(self, embed: Embed, *, per_class: int = 30, tests_per_class: int = 4) -> None:
        """The generated shapes: ``per_class`` training images per shape and a labelled test set."""
        for name, images in demo_dataset(per_class, seed=0).items():
            self.add_images(self.class_named(name), [(f"{name}-{i:02d}.png", im) for i, im in enumerate(images)], embed)
        named = [(f"test-{name}-{i}.png", im, name) for name, ims in demo_dataset(tests_per_class, seed=1).items()
                 for i, im in enumerate(ims)]
        keys = embed([im for _, im, _ in named], None)
        self.testset = [TestImage(f, k, label) for (f, _, label), k in zip(named, keys)]

    def test_embeddings(self, base: str) -> np.ndarray:
        """``(N, D)`` embeddings of the test images under ``base`` (``ValueError`` if some were dropped)."""
        found = [self.store.embedding(t.key, base) for t in self.testset]
        if any(f is None for f in found):
            raise ValueError("Some test images are no longer in memory; please add them again.")
        return np.stack(found) if found else np.zeros((0, 0), np.float32)

    # ------------------------------------------------------------------ training
    @property
    def has_images(self) -> bool:
        return any(c.keys for c in self.classes)

    def usable_classes(self) -> list[ClassImages]:
        return [c for c in self.classes if c.keys]

    def problems(self) -> list[str]:
        """Why training cannot start yet, one sentence each (empty when it can)."""
        usable = self.usable_classes()
        found = []
        if len(usable) < 2:
            found.append("Add images to at least two classes.")
        if any(len(c.keys) < 2 for c in usable):
            found.append("Every class with images needs at least two (one to train on, one to check).")
        return found

    def start_run(self, base: str, settings: dict[str, Any]) -> Run:
        """Freeze the current classes into a new :class:`Run` (raises ``ValueError`` with a sentence)."""
        if self.problems():
            raise ValueError(" ".join(self.problems()))
        usable = self.usable_classes()
        keys = [k for c in usable for k in c.keys]
        missing = [k for k in keys if self.store.embedding(k, base) is None]
        if missing:
            raise ValueError(f"{len(missing)} images are no longer in memory (at most {self.store.max_images:,} "
                             "are kept); please add them again.")
        labels = np.array([i for i, c in enumerate(usable) for _ in c.keys])
        x = np.stack([self.store.embedding(k, base) for k in keys])
        seed = transfer.DEFAULTS["seed"]
        train_idx, val_idx = transfer.stratified_split(labels, transfer.DEFAULTS["validation_fraction"], seed)
        self.runs_started += 1
        self.run = Run(
            name=f"My classifier {self.runs_started}", base=base, classes=[c.name for c in usable], keys=keys,
            x=x, y=labels, train_idx=train_idx, val_idx=val_idx, settings=dict(settings),
            head=transfer.build_head(x.shape[1], len(usable), seed=seed),
        )
        return self.run

    @staticmethod
    def train(run: Run, *, on_epoch: Callable[[dict], bool | None] | None = None) -> transfer.History:
        """Train the run's head (blocking; a background job calls this). ``on_epoch`` returning True stops it."""
        return transfer.train_head(
            run.head, run.x[run.train_idx], run.y[run.train_idx], run.x[run.val_idx], run.y[run.val_idx],
            **run.settings, seed=transfer.DEFAULTS["seed"], on_epoch=on_epoch, history=run.history,
        )

    def finish_run(self, run: Run, embedder: keras.Model, *, base_title: str, stopped: bool) -> Run | None:
        """Judge a run and build its full model and card; a run without a finished epoch is dropped."""
        if not run.history.rows:
            if self.run is run:
                self.run = None
            return None
        judged = run.val_idx if len(run.val_idx) else run.train_idx
        run.evaluation = transfer.evaluate(transfer.head_probabilities(run.head, run.x[judged]), run.y[judged],
                                           run.classes)
        run.judged_on = "validation" if len(run.val_idx) else "training"
        run.judged_keys = [run.keys[i] for i in judged]
        run.history.stopped = stopped or run.history.stopped
        run.model = transfer.full_model(embedder, run.head, name=model_slug(run.name))
        run.card = visitor_card(
            run.name, run.model, run.classes, base=run.base, validation_accuracy=run.evaluation.accuracy,
            description=f"Trained here on {len(run.x)} images ({base_title} base + a small head, "
                        f"{len(run.history.rows)} epochs).",
        )
        return run

    def validation_images(self) -> tuple[list[str], list[np.ndarray], np.ndarray] | None:
        """The last run's held-out images as ``(names, thumbnails, labels)`` for the audit, or ``None``."""
        run = self.run
        if run is None or not run.finished:
            return None
        judged = run.val_idx if len(run.val_idx) else run.train_idx
        pairs = [(k, int(run.y[i])) for k, i in zip(run.judged_keys, judged) if self.store.thumbnail(k) is not None]
        if not pairs:
            return None
        names = [f"validation {i + 1} ({run.classes[y]})" for i, (_, y) in enumerate(pairs)]
        return names, [self.store.thumbnail(k) for k, _ in pairs], np.array([y for _, y in pairs])
