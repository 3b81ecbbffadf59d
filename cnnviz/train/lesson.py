"""Training, validation and test as the Programming Historian lesson lays them out.

The lesson's collection is a zip (or folder) with ``training/<topic>/<image>`` and
``testing/<topic>/<image>``. The model trains on ``training/``, minus the 15 % of each
class Teachable Machine holds out for **validation** (:func:`validation_count`); the
``testing/`` images are the **test**: pictures the model never saw while training and that
nobody used to choose settings. With a test set, the test is the headline and validation
stays beside it, labelled as what it is (:func:`lesson_results`); without one, the
numbers come from the few held-out images, and :func:`lesson_results` says so.

:class:`SetResult` holds one set's accuracy, per-class accuracy, confusion matrix and
the misclassified images with file name and folder, the most confident errors first
(those are the ones a seminar should look at: the model was sure and wrong).

:func:`open_collection` reads a zip (bytes or path) or a folder with the same rules
(:func:`cnnviz.zips.assign_layout`), streaming one image at a time.

Pure numpy and Pillow; never imports TensorFlow.
"""

from __future__ import annotations

import math
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterator, Sequence

import numpy as np

from cnnviz.audit import measures
from cnnviz.images import MAX_BYTES, ImageError, load_image
from cnnviz.zips import IMAGE_SUFFIXES, ZipEntry, ZipError, ZipImage, ZipPlan, assign_layout, iter_zip_images, plan_zip

__all__ = [
    "VALIDATION_FRACTION",
    "validation_count",
    "Collection",
    "open_collection",
    "Mistake",
    "SetResult",
    "evaluate_set",
    "LessonResults",
    "lesson_results",
    "test_labels",
]

#: Teachable Machine's share of each class held out for validation.
VALIDATION_FRACTION = 0.15
_HIDDEN = frozenset({"__macosx", ".ds_store", "thumbs.db", "desktop.ini", ".git", ".svn"})


def validation_count(n_images: int, fraction: float = VALIDATION_FRACTION) -> int:
    """How many of a class's ``n_images`` are held out for validation.

    Teachable Machine rounds up: ``numValidation = Math.ceil(VALIDATION_FRACTION * classLength)``
    with ``VALIDATION_FRACTION = 0.15`` (googlecreativelab/teachablemachine-community,
    ``libraries/image/src/teachable-mobilenet.ts``, ``convertToTfDataset``). Python's float
    is the same IEEE double as JavaScript's number, so the product and its rounding match
    Teachable Machine's exactly: 5 images hold out 1, 7 hold out 2, 20 hold out 3. One
    difference, on purpose: Teachable Machine would hold out the only image of a one-image class (and
    train on none); here every class keeps at least one training image.
    """
    if n_images < 2:
        return 0
    return min(n_images - 1, math.ceil(fraction * n_images))


# --------------------------------------------------------------------------- reading a collection


@dataclass
class Collection:
    """A zip or folder of images, planned but not decoded: call :meth:`images` to stream them.

    ``entries`` are the image files with their part (``"training"``/``"testing"``) and
    class folder; ``skipped`` has one sentence per file that is not used (grows while
    :meth:`images` runs, for damaged files); ``layout`` is ``"lesson"`` or ``"plain"``.
    """

    name: str
    entries: list[ZipEntry]
    skipped: list[str]
    layout: str
    _zip: bytes | None = None
    _root: Path | None = None

    @property
    def classes(self) -> list[str]:
        """Training class names, sorted (the order of the model's outputs)."""
        return sorted({e.label for e in self.entries if e.part == "training" and e.label})

    def count(self, part: str) -> int:
        return sum(1 for e in self.entries if e.part == part)

    def images(self, max_side: int | None = 512) -> Iterator[ZipImage]:
        """Decode the images one at a time; undecodable files are added to ``skipped`` and not yielded."""
        if self._zip is not None:
            yield from iter_zip_images(self._zip, _plan_view(self), max_side=max_side, skipped=self.skipped)
            return
        # Built from a zip (_zip) or a folder (_root): never neither.
        assert self._root is not None
        for entry in self.entries:
            path = self._root / entry.path
            try:
                data = path.read_bytes()
            except OSError as exc:
                self.skipped.append(f"“{entry.path}” could not be read ({exc.strerror or exc}).")
                continue
            try:
                image = load_image(data, max_side=max_side, name=f"“{entry.path}”")
            except ImageError as err:
                self.skipped.append(str(err))
                continue
            yield ZipImage(entry.path, entry.part, entry.label, image)


def _plan_view(collection: Collection) -> ZipPlan:
    return ZipPlan(entries=collection.entries, skipped=collection.skipped, layout=collection.layout)


def open_collection(
    source: str | os.PathLike | bytes, *, name: str | None = None, loose_images: bool = False
) -> Collection:
    """Plan a collection from a zip (its bytes or its path) or a folder on disk.

    With ``loose_images`` (classifying a folder needs no classes), images outside any class
    folder are kept as unlabelled ``testing`` images instead of being skipped.

    Raises :class:`cnnviz.zips.ZipError` (one sentence) when the source is missing, not a
    zip or a folder, or holds no image at all.
    """
    if isinstance(source, (bytes, bytearray)):
        label = name or "The zip"
        plan = plan_zip(bytes(source), zip_name=label, loose_images=loose_images)
        collection = Collection(label, plan.entries, plan.skipped, plan.layout, _zip=bytes(source))
    else:
        path = Path(source)
        label = name or f"“{path.name}”"
        if path.is_dir():
            collection = _plan_folder(path, label, loose_images=loose_images)
        elif path.is_file():
            try:
                data = path.read_bytes()
            except OSError:
                raise ZipError(f"{label} could not be read.") from None
            plan = plan_zip(data, zip_name=label, loose_images=loose_images)
            collection = Collection(label, plan.entries, plan.skipped, plan.layout, _zip=data)
        else:
            raise ZipError(f"{label} does not exist: give a zip file or a folder of images.")
    if not collection.entries:
        raise ZipError(
            f"{label} holds no image this app can use (PNG, JPEG, WebP, BMP, GIF or TIFF inside class folders)."
        )
    return collection


def _plan_folder(root: Path, label: str, max_entries: int = 200_000, loose_images: bool = False) -> Collection:
    skipped: list[str] = []
    files: list[tuple[str, int, tuple[str, ...]]] = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d.lower() not in _HIDDEN and not d.startswith("."))
        for filename in sorted(names):
            full = Path(folder) / filename
            rel = full.relative_to(root).as_posix()
            if filename.lower() in _HIDDEN or filename.startswith("."):
                continue  # hidden and system files are not part of anyone's collection
            try:
                info = full.lstat()
            except OSError:
                skipped.append(f"“{rel}” could not be read.")
                continue
            if stat.S_ISLNK(info.st_mode):
                skipped.append(f"“{rel}” is a link, not a file, and was ignored.")
                continue
            suffix = PurePosixPath(filename).suffix.lower()
            if suffix not in IMAGE_SUFFIXES:
                skipped.append(f"“{rel}” is not an image ({suffix or 'no file extension'}) and was skipped.")
                continue
            if info.st_size > MAX_BYTES:
                skipped.append(
                    f"“{rel}” is {info.st_size / 1e6:.0f} MB; images up to {MAX_BYTES / 1e6:.0f} MB are accepted."
                )
                continue
            files.append((rel, int(info.st_size), tuple(rel.split("/"))))
            if len(files) > max_entries:
                raise ZipError(f"{label} holds more than {max_entries:,} images; please split it.")
    entries, layout = assign_layout(files, skipped, loose_images=loose_images)
    return Collection(label, entries, skipped, layout, _root=root)


# --------------------------------------------------------------------------- judging one set


@dataclass(frozen=True)
class Mistake:
    """One misclassified image: where to find it and what the model said."""

    index: int
    file: str
    folder: str
    true_class: str
    predicted_class: str
    confidence: float


@dataclass
class SetResult:
    """How the model did on one labelled set (``name``: ``"test"`` or ``"validation"``).

    ``probabilities`` ``(N, C)``, ``labels`` ``(N,)`` true class indices,
    ``confusion[i, j]`` counts images of true class ``i`` predicted as ``j``,
    ``per_class_accuracy`` ``(C,)`` (NaN for a class without images), ``mistakes`` the
    misclassified images sorted by confidence, most confident first.
    """

    name: str
    class_names: list[str]
    files: list[str]
    folders: list[str]
    labels: np.ndarray
    probabilities: np.ndarray
    accuracy: float
    per_class_accuracy: np.ndarray
    confusion: np.ndarray
    mistakes: list[Mistake] = field(default_factory=list)

    @property
    def n_images(self) -> int:
        return int(len(self.labels))

    @property
    def n_correct(self) -> int:
        return int(np.trace(self.confusion))

    @property
    def predictions(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    def sentence(self) -> str:
        """E.g. "Test: 7 of 13 images right (54 %)."."""
        if not self.n_images:
            return f"{self.name.capitalize()}: no images."
        return f"{self.name.capitalize()}: {self.n_correct} of {self.n_images} images right ({self.accuracy:.0%})."

    def per_class_rows(self) -> list[dict]:
        """One row per class: ``class``, ``images``, ``right``, ``accuracy`` (``None`` without images)."""
        totals = self.confusion.sum(axis=1)
        return [
            {
                "class": name,
                "images": int(totals[i]),
                "right": int(self.confusion[i, i]),
                "accuracy": None if np.isnan(self.per_class_accuracy[i]) else float(self.per_class_accuracy[i]),
            }
            for i, name in enumerate(self.class_names)
        ]


def evaluate_set(
    name: str,
    probabilities: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    class_names: Sequence[str],
    files: Sequence[str],
    folders: Sequence[str] | None = None,
) -> SetResult:
    """A :class:`SetResult` from ``(N, C)`` probabilities and true class indices.

    Counts with :func:`cnnviz.audit.measures.confusion_matrix` and
    :func:`~cnnviz.audit.measures.per_class_accuracy` (the audit's implementation).
    Ties in confidence keep the images' order.
    """
    n_classes = len(class_names)
    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(-1, n_classes)
    truth = np.asarray(labels, dtype=np.int64).ravel()
    files = [str(f) for f in files]
    folders = [str(f) for f in folders] if folders is not None else [""] * len(files)
    if not len(probabilities) == len(truth) == len(files) == len(folders):
        raise ValueError("probabilities, labels, files and folders must have one entry per image.")
    predicted = probabilities.argmax(axis=1) if len(truth) else np.zeros(0, dtype=np.int64)
    confusion = measures.confusion_matrix(truth, predicted, n_classes)
    per_class = measures.per_class_accuracy(truth, predicted, n_classes)
    accuracy = float(np.mean(predicted == truth)) if len(truth) else float("nan")
    wrong = np.flatnonzero(predicted != truth)
    confidence = probabilities.max(axis=1) if len(truth) else np.zeros(0)
    order = wrong[np.argsort(-confidence[wrong], kind="stable")]
    mistakes = [
        Mistake(
            int(i),
            files[i],
            folders[i],
            str(class_names[truth[i]]),
            str(class_names[predicted[i]]),
            float(confidence[i]),
        )
        for i in order
    ]
    return SetResult(
        name, list(class_names), files, folders, truth, probabilities, accuracy, per_class, confusion, mistakes
    )


def test_labels(true_classes: Sequence[str | None], class_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, known)`` for test images: class index per image and which ones can be scored.

    An image without a class folder (``None``) or in a folder named after no training
    class cannot be right or wrong; ``known`` is ``False`` for it and its label ``-1``.
    """
    index = {name: i for i, name in enumerate(class_names)}
    labels = np.array([index.get(t, -1) if t is not None else -1 for t in true_classes], dtype=np.int64)
    return labels, labels >= 0


test_labels.__test__ = False  # type: ignore[attr-defined]  # pytest reads it: a library function, not a test


@dataclass
class LessonResults:
    """The test set (``None`` without a labelled ``testing/``) and validation, with sentences to show."""

    test: SetResult | None
    validation: SetResult | None
    sentences: list[str]

    @property
    def headline(self) -> SetResult | None:
        """The set to show first: the test set when there is one, else validation."""
        return self.test if self.test is not None and self.test.n_images else self.validation


def lesson_results(
    test: SetResult | None, validation: SetResult | None, *, n_unscored_test: int = 0, n_training: int | None = None
) -> LessonResults:
    """Put the test and validation results side by side, with plain sentences saying what each is.

    ``n_unscored_test`` counts test images without a known class (no class folder, or a
    folder named after no training class); ``n_training`` the images trained on.
    """
    sentences: list[str] = []
    has_test = test is not None and test.n_images > 0
    if test is not None and has_test:
        sentences.append(
            f"Test: {test.n_correct} of {test.n_images} images in testing/ right ({test.accuracy:.0%}). "
            "These are pictures the model never saw while training: this is the number to report."
        )
    if validation is not None and validation.n_images:
        what = "Validation" if has_test else "Validation (the only measure here)"
        sentences.append(
            f"{what}: {validation.n_correct} of {validation.n_images} images held out of training/ right "
            f"({validation.accuracy:.0%}). Teachable Machine holds out 15 % of each class (rounded up); "
            + (
                f"with so few images, one more error moves this number by {1 / validation.n_images:.0%}."
                if validation.n_images < 30
                else "they were not trained on, but settings were chosen while watching them."
            )
        )
    elif not has_test:
        sentences.append(
            "No image could be held out (every class needs at least two images), so there is "
            "no honest measure of accuracy yet."
        )
    if not has_test:
        sentences.append(
            "There is no testing/ folder with class folders, so the numbers above come only from the few "
            "images held out of training/. Put some images of each class into testing/<class>/ for a real test."
        )
    if n_unscored_test:
        sentences.append(
            f"{n_unscored_test} test image(s) are not in a folder named after a training class, so they "
            "are classified but not counted as right or wrong."
        )
    if n_training is not None:
        sentences.append(f"The model was trained on {n_training} images.")
    return LessonResults(test if has_test else None, validation, sentences)
