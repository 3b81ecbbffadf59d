"""One visitor's training session on page 4: classes and their images, runs and their results.

The page only draws widgets and calls these methods; every rule lives here, with tests:

- a class is a card with a unique, non-empty name and the images added to it (kept as
  embedding-store keys: the embedding and a thumbnail, never the full picture);
- images arrive from files, a folder, the webcam, a zip in the lesson's layout
  (``training/<class>/…`` + ``testing/…``) or the generated demo shapes; the same picture
  twice in a class is kept once;
- facts for the dataset check (:func:`cnnviz.train.dataset_check.image_facts`) are kept
  per image as it arrives, so :meth:`TrainingSession.dataset_check` can run before training;
- a run freezes the data it trains on (embeddings, labels, the validation split, the test
  set), trains a head, and when it ends (finished, stopped, or interrupted after at least
  one epoch) is judged with :func:`cnnviz.train.pipeline.judge_head` (the test set is the
  headline when there is one) and turned into one full Keras model with a visitor model card.

Embedding is passed in as a function ``embed(images, on_progress) -> keys`` so that this
module needs no particular base network (the page gives it the cached EfficientNet-Lite0).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import keras
import numpy as np

from cnnviz import predictions
from cnnviz.model.registry import visitor_card
from cnnviz.train import dataset_check, lesson, pipeline, transfer
from cnnviz.train.demo_data import demo_dataset
from cnnviz.limits import PixelBudget, limit
from cnnviz.read_ahead import read_ahead
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


class _LaterModel:
    """``Run.model`` as a descriptor: a run reopened from a workspace loads its Keras model on first use.

    A dataclass field whose default is a descriptor goes through it (``Run(model=m)`` still works);
    :meth:`Run.load_model_later` gives it a loader instead of a model.
    """

    def __get__(self, run: Any, owner: Any = None) -> Any:
        if run is None:
            return None  # the field's default
        model = run.__dict__.get("_model")
        loader = run.__dict__.get("_model_loader")
        if model is None and loader is not None:
            run.__dict__["_model_loader"] = None
            model = run.__dict__["_model"] = loader()
        return model

    def __set__(self, run: Any, model: Any) -> None:
        run.__dict__["_model"] = model


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
    model: keras.Model | None = _LaterModel()
    card: dict[str, Any] | None = None
    #: The test set frozen at the start (``x_test`` ``(T, D)``, row-aligned with ``test``).
    test: list[TestImage] = field(default_factory=list)
    x_test: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    #: Test (headline when there is one) and validation results, once judged.
    results: lesson.LessonResults | None = None

    @property
    def finished(self) -> bool:
        # Without loading a model that waits for :meth:`load_model_later`.
        return self.__dict__.get("_model") is not None or self.__dict__.get("_model_loader") is not None

    def load_model_later(self, loader: Callable[[], keras.Model]) -> None:
        """Give this (finished, reopened) run its model only when ``run.model`` is first read."""
        self.__dict__["_model_loader"] = loader


def model_slug(name: str) -> str:
    """A model/file name from a visitor's run name: ``"My classifier 1"`` → ``"My_classifier_1"``."""
    return re.sub(r"\W+", "_", name).strip("_") or "classifier"


class TrainingSession:
    """Everything one visitor does on page 4 (lives in their ``st.session_state``)."""

    def __init__(self, *, max_images: int | None = None) -> None:
        # Images held (embeddings + thumbnails): CNNVIZ_MAX_VISITOR_IMAGES, 6 000 by default.
        self.store = transfer.EmbeddingStore(
            max_images=limit("CNNVIZ_MAX_VISITOR_IMAGES") if max_images is None else max_images
        )
        self._next_id = 0
        self.classes: list[ClassImages] = [self._new_class("Class 1"), self._new_class("Class 2")]
        self.testset: list[TestImage] = []
        self.skipped: list[str] = []  # sentences for files of the last zip or upload that were not used
        self.zip_summary = ""
        self.run: Run | None = None
        self.runs_started = 0
        self.facts: dict[str, dataset_check.ImageFacts] = {}  # by store key: size, grayscale, pixel hash
        self.paths: dict[str, str] = {}  # by store key: the path inside a zip (for the folder column)
        self.example: np.ndarray | None = None  # one test image (else a training one) for the exported sketch
        self._example_is_test = False

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
    def add_images(
        self,
        cls: ClassImages,
        named: Sequence[tuple[str, np.ndarray]],
        embed: Embed,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Embed and add ``(file name, image)`` pairs to a card; returns how many were new to it."""
        if not named:
            return 0
        keys = embed([image for _, image in named], on_progress)
        self._remember([image for _, image in named], keys, [name for name, _ in named])
        return self._attach(cls, [name for name, _ in named], keys)

    def _remember(
        self, images: Sequence[np.ndarray], keys: Sequence[str], paths: Sequence[str], *, testing: bool = False
    ) -> None:
        """Keep the dataset check's facts (not the image) and the path of each arriving image."""
        for image, key, path in zip(images, keys, paths):
            if key not in self.facts:
                self.facts[key] = dataset_check.image_facts(path, "training", None, image)
            if not testing:  # a test image's path is its TestImage.file (the same picture may also be in training/)
                self.paths.setdefault(key, path)
        if len(images) and (self.example is None or (testing and not self._example_is_test)):
            self.example = np.asarray(images[0])
            self._example_is_test = testing

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

    def add_zip(
        self,
        data: bytes,
        zip_name: str,
        embed: Embed,
        *,
        max_side: int = 512,
        on_progress: Callable[[int, int], None] | None = None,
        batch: int = 32,
        budget: PixelBudget | None = None,
    ) -> str:
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
            for part in ("training", "testing"):
                mine = [(item, key) for item, key in zip(chunk, keys) if item.part == part]
                self._remember(
                    [i.image for i, _ in mine],
                    [k for _, k in mine],
                    [i.path for i, _ in mine],
                    testing=part == "testing",
                )
            for item, key in zip(chunk, keys):
                if item.part == "training":
                    self._attach(self.class_named(item.label), [item.name], [key])
                else:
                    tests.append(TestImage(item.path, key, item.label))

        # Decoding the next pictures overlaps with embedding these (both release the GIL).
        for item in read_ahead(iter_zip_images(data, plan, max_side=max_side, budget=budget), depth=2 * batch):
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
        self.zip_summary = (
            f"Read “{zip_name}” ({plan.layout} layout): {n_training} training images in "
            f"{len(plan.classes)} classes, {len(tests)} test images; {len(plan.skipped)} files skipped."
        )
        return self.zip_summary

    def load_demo(self, embed: Embed, *, per_class: int = 30, tests_per_class: int = 4) -> None:
        """The generated shapes: ``per_class`` training images per shape and a labelled test set."""
        for name, images in demo_dataset(per_class, seed=0).items():
            self.add_images(self.class_named(name), [(f"{name}-{i:02d}.png", im) for i, im in enumerate(images)], embed)
        named = [
            (f"testing/{name}/test-{name}-{i}.png", im, name)
            for name, ims in demo_dataset(tests_per_class, seed=1).items()
            for i, im in enumerate(ims)
        ]
        keys = embed([im for _, im, _ in named], None)
        self._remember([im for _, im, _ in named], keys, [f for f, _, _ in named], testing=True)
        self.testset = [TestImage(f, k, label) for (f, _, label), k in zip(named, keys)]

    def check_facts(self) -> list[dataset_check.ImageFacts]:
        """Facts of every image as it stands now: training images under their card's current name, then the test set."""
        found = []
        for cls in self.classes:
            for key, file in zip(cls.keys, cls.files):
                if key in self.facts:
                    found.append(
                        dataclasses.replace(
                            self.facts[key], path=self.paths.get(key, file), part="training", label=cls.name
                        )
                    )
        for t in self.testset:
            if t.key in self.facts:
                found.append(dataclasses.replace(self.facts[t.key], path=t.file, part="testing", label=t.label))
        return found

    def dataset_check(self, base: str) -> dataset_check.DatasetCheck:
        """The dataset check of the current classes and test set (near-copies by the ``base`` embeddings when all are in memory)."""
        facts = self.check_facts()
        found = [e for f in facts if (e := self.store.embedding(f.key, base)) is not None]
        embeddings = np.stack(found) if found and len(found) == len(facts) else None
        return dataset_check.check_dataset(facts, self.skipped, embeddings)

    def test_embeddings(self, base: str) -> np.ndarray:
        """``(N, D)`` embeddings of the test images under ``base`` (``ValueError`` if some were dropped)."""
        found = [e for t in self.testset if (e := self.store.embedding(t.key, base)) is not None]
        if len(found) < len(self.testset):
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
        found = [e for k in keys if (e := self.store.embedding(k, base)) is not None]
        if len(found) < len(keys):
            raise ValueError(
                f"{len(keys) - len(found)} images are no longer in memory (at most "
                f"{self.store.max_images:,} are kept); please add them again."
            )
        labels = np.array([i for i, c in enumerate(usable) for _ in c.keys])
        x = np.stack(found)
        seed = transfer.DEFAULTS["seed"]
        train_idx, val_idx = transfer.stratified_split(labels, transfer.DEFAULTS["validation_fraction"], seed)
        # A test image the store has dropped is left out of the run (training goes on without it),
        # and the list of files not used says so, rather than the test set shrinking silently.
        test_pairs = [(t, e) for t in self.testset if (e := self.store.embedding(t.key, base)) is not None]
        test = [t for t, _ in test_pairs]
        if len(test) < len(self.testset):
            lost = (
                f"{len(self.testset) - len(test)} of the {len(self.testset)} test images are no longer in memory "
                f"(at most {self.store.max_images:,} images are kept), so this run is tested without them; "
                "add them again to test on them."
            )
            if lost not in self.skipped:  # a second run with the same loss says it once
                self.skipped.append(lost)
        x_test = np.stack([e for _, e in test_pairs]) if test_pairs else np.zeros((0, x.shape[1]), np.float32)
        self.runs_started += 1
        self.run = Run(
            name=f"My classifier {self.runs_started}",
            base=base,
            classes=[c.name for c in usable],
            keys=keys,
            x=x,
            y=labels,
            train_idx=train_idx,
            val_idx=val_idx,
            settings=dict(settings),
            head=transfer.build_head(x.shape[1], len(usable), seed=seed),
            test=test,
            x_test=x_test,
        )
        return self.run

    @staticmethod
    def train(run: Run, *, on_epoch: Callable[[dict], bool | None] | None = None) -> transfer.History:
        """Train the run's head (blocking; a background job calls this). ``on_epoch`` returning True stops it."""
        return transfer.train_head(
            run.head,
            run.x[run.train_idx],
            run.y[run.train_idx],
            run.x[run.val_idx],
            run.y[run.val_idx],
            **run.settings,
            seed=transfer.DEFAULTS["seed"],
            on_epoch=on_epoch,
            history=run.history,
        )

    def finish_run(self, run: Run, embedder: keras.Model, *, base_title: str, stopped: bool) -> Run | None:
        """Judge a run and build its full model and card; a run without a finished epoch is dropped."""
        if not run.history.rows:
            if self.run is run:
                self.run = None
            return None
        judged = run.val_idx if len(run.val_idx) else run.train_idx
        run.evaluation = transfer.evaluate(
            transfer.head_probabilities(run.head, run.x[judged]), run.y[judged], run.classes
        )
        run.judged_on = "validation" if len(run.val_idx) else "training"
        run.judged_keys = [run.keys[i] for i in judged]
        run.results = self.judge(run)
        run.history.stopped = stopped or run.history.stopped
        run.model = transfer.full_model(embedder, run.head, name=model_slug(run.name))
        test = run.results.test
        run.card = visitor_card(
            run.name,
            run.model,
            run.classes,
            base=run.base,
            validation_accuracy=run.results.validation.accuracy if run.results.validation else None,
            test_accuracy=test.accuracy if test else None,
            description=f"Trained here on {len(run.train_idx)} images ({base_title} base + a small head, "
            f"{len(run.history.rows)} epochs).",
        )
        return run

    def _file_and_folder(self, key: str, file: str) -> tuple[str, str]:
        path = self.paths.get(key, file)
        return path.rsplit("/", 1)[-1], pipeline.folder_of(path)

    def judge(self, run: Run) -> lesson.LessonResults:
        """Test and validation results of a run's head (:func:`cnnviz.train.pipeline.judge_head`)."""
        files = dict(zip((k for c in self.classes for k in c.keys), (f for c in self.classes for f in c.files)))
        val = [self._file_and_folder(run.keys[i], files.get(run.keys[i], f"image {i + 1}")) for i in run.val_idx]
        test = [(t.file.rsplit("/", 1)[-1], pipeline.folder_of(t.file)) for t in run.test]
        results, _ = pipeline.judge_head(
            run.head,
            run.classes,
            x_val=run.x[run.val_idx],
            y_val=run.y[run.val_idx],
            val_files=[f for f, _ in val],
            val_folders=[d for _, d in val],
            x_test=run.x_test,
            test_classes=[t.label for t in run.test],
            test_files=[f for f, _ in test],
            test_folders=[d for _, d in test],
            n_training=len(run.train_idx),
        )
        return results  # the CSV rows come from test_rows(), at the threshold the visitor chooses

    def test_rows(self, run: Run, threshold: float = predictions.UNSURE_THRESHOLD) -> list[dict]:
        """The CSV rows (:func:`cnnviz.predictions.prediction_rows`) of the run's test images at ``threshold``."""
        if not run.test:
            return []
        test = [(t.file.rsplit("/", 1)[-1], pipeline.folder_of(t.file)) for t in run.test]
        probs = transfer.head_probabilities(run.head, run.x_test)
        return transfer.prediction_rows(
            [f for f, _ in test],
            probs,
            run.classes,
            folders=[d for _, d in test],
            true_classes=[t.label if t.label in run.classes else None for t in run.test],
            threshold=threshold,
        )

    def training_info(self, run: Run) -> dict[str, Any]:
        """What the export's metadata says about a finished run (settings, image counts, validation and test accuracy)."""
        res = run.results
        return {
            **run.settings,
            "epochs_run": len(run.history.rows),
            "training_images": int(len(run.train_idx)),
            "validation_images": int(len(run.val_idx)),
            "validation_accuracy": res.validation.accuracy if res and res.validation else None,
            "test_accuracy": res.test.accuracy if res and res.test else None,
            "test_images": res.test.n_images if res and res.test else 0,
        }

    def validation_images(self) -> tuple[list[str], list[np.ndarray], np.ndarray] | None:
        """The last run's held-out images as ``(names, thumbnails, labels)`` for the audit, or ``None``."""
        run = self.run
        if run is None or not run.finished:
            return None
        judged = run.val_idx if len(run.val_idx) else run.train_idx
        pairs = [
            (thumb, int(run.y[i]))
            for k, i in zip(run.judged_keys, judged)
            if (thumb := self.store.thumbnail(k)) is not None
        ]
        if not pairs:
            return None
        names = [f"validation {i + 1} ({run.classes[y]})" for i, (_, y) in enumerate(pairs)]
        return names, [thumb for thumb, _ in pairs], np.array([y for _, y in pairs])
