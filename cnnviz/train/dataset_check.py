"""Check a collection before training: what a seminar should know about its images first.

:func:`check_dataset` looks at facts about each image (:func:`image_facts`: its content
hash, size, grayscale or colour) and, when given, the embeddings the trainer computes
anyway, and reports

* images per class and how unbalanced the classes are (a model trained on 40 portraits
  and 5 seascapes learns that "portrait" is usually the right answer);
* exact duplicates: the same picture twice in one class (it counts double), in two
  classes (the labels contradict each other), or in both ``training/`` and ``testing/``
  (**leakage**: the test then measures memory, not learning);
* near-duplicates between ``training/`` and ``testing/`` (another scan or crop of the
  same work), found by the cosine similarity of their embeddings;
* grayscale images mixed with colour ones, very small images, and files skipped and why.

It warns; it never blocks: the result is a short table (``rows``) and plain sentences
(``sentences``; ``warnings`` are the ones worth acting on). Never imports TensorFlow.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

__all__ = [
    "ImageFacts",
    "image_facts",
    "DatasetCheck",
    "check_dataset",
    "NEAR_DUPLICATE_COSINE",
    "SMALL_SIDE",
    "IMBALANCE_RATIO",
]

#: Cosine similarity of embeddings at or above which a training and a testing image are
#: called near-duplicates. Measured with EfficientNet-Lite0's 1 280 pooled features on the
#: 22 paintings of ../shared/images: against a 60 % downscaled, JPEG-quality-70 copy of
#: itself a painting scores 0.875–0.98 (median 0.94); against a 90 % centre crop 0.67–0.95
#: (median 0.85); two different works of all 36 images at most 0.63. So 0.80 flags every
#: recompressed copy and most crops, and no pair of different works there.
NEAR_DUPLICATE_COSINE = 0.80
#: Images whose shorter side is below this many pixels are called very small (the model
#: looks at 224 × 224 pixels, so they are blown up and their details are invented blur).
SMALL_SIDE = 100
#: Largest/smallest training class at or above this ratio is called unbalanced.
IMBALANCE_RATIO = 2.0
#: Channels differing by at most this much (0–255) everywhere count as grayscale (JPEG noise).
_GRAY_TOLERANCE = 3


@dataclass(frozen=True)
class ImageFacts:
    """What the check needs to know about one image (the image itself is not kept).

    ``part`` is ``"training"`` or ``"testing"``, ``label`` its class folder (``None`` when
    it has none), ``key`` a hash of its decoded pixels, ``height``/``width`` as decoded.
    """

    path: str
    part: str
    label: str | None
    key: str
    height: int
    width: int
    grayscale: bool


def image_facts(path: str, part: str, label: str | None, image: np.ndarray) -> ImageFacts:
    """Facts about an ``(H, W, 3)`` RGB ``uint8`` image: pixel hash, size, grayscale or colour."""
    image = np.asarray(image)
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr((image.shape, str(image.dtype))).encode())
    digest.update(np.ascontiguousarray(image).data)
    rgb = image.astype(np.int16)
    gray = bool(
        image.ndim == 2
        or image.shape[-1] == 1
        or (
            np.abs(rgb[..., 0] - rgb[..., 1]).max(initial=0) <= _GRAY_TOLERANCE
            and np.abs(rgb[..., 1] - rgb[..., 2]).max(initial=0) <= _GRAY_TOLERANCE
        )
    )
    return ImageFacts(path, part, label, digest.hexdigest(), int(image.shape[0]), int(image.shape[1]), gray)


@dataclass
class DatasetCheck:
    """The check's findings. ``rows``: one per class (``class``, ``training images``,
    ``testing images``, ``grayscale``, ``very small``); ``sentences``: everything in plain
    words; ``warnings``: the subset worth acting on before training."""

    rows: list[dict]
    sentences: list[str]
    warnings: list[str]
    imbalance: float
    duplicates_within_class: list[list[str]] = field(default_factory=list)
    duplicates_across_classes: list[list[str]] = field(default_factory=list)
    leaks: list[list[str]] = field(default_factory=list)
    near_leaks: list[tuple[str, str, float]] = field(default_factory=list)
    grayscale: list[str] = field(default_factory=list)
    small: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _names(paths: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(f"“{p}”" for p in paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def check_dataset(
    facts: Sequence[ImageFacts],
    skipped: Sequence[str] = (),
    embeddings: np.ndarray | None = None,
    *,
    near_cosine: float = NEAR_DUPLICATE_COSINE,
    small_side: int = SMALL_SIDE,
    imbalance_ratio: float = IMBALANCE_RATIO,
) -> DatasetCheck:
    """Check the images of a collection; ``embeddings`` ``(N, D)`` row-aligned with ``facts`` (optional).

    Without embeddings the near-duplicate check is left out (and a sentence says so).
    Never raises for odd data: an empty collection gives an empty table and a sentence.
    """
    facts = list(facts)
    sentences: list[str] = []
    warnings: list[str] = []

    def warn(text: str) -> None:
        warnings.append(text)
        sentences.append(text)

    training = [f for f in facts if f.part == "training"]
    testing = [f for f in facts if f.part == "testing"]
    classes = sorted({f.label for f in training if f.label})
    test_only = sorted({f.label for f in testing if f.label and f.label not in classes})
    rows: list[dict[str, Any]] = []
    for name in classes + test_only:
        members = [f for f in facts if f.label == name]
        rows.append(
            {
                "class": name,
                "training images": sum(1 for f in members if f.part == "training"),
                "testing images": sum(1 for f in members if f.part == "testing"),
                "grayscale": sum(1 for f in members if f.grayscale),
                "very small": sum(1 for f in members if min(f.height, f.width) < small_side),
            }
        )
    unlabelled_tests = sum(1 for f in testing if not f.label)
    if unlabelled_tests:
        rows.append(
            {
                "class": "(no class folder)",
                "training images": 0,
                "testing images": unlabelled_tests,
                "grayscale": sum(1 for f in testing if not f.label and f.grayscale),
                "very small": sum(1 for f in testing if not f.label and min(f.height, f.width) < small_side),
            }
        )

    counts = {r["class"]: r["training images"] for r in rows if r["class"] in classes}
    imbalance = float("nan")
    if not facts:
        sentences.append("There are no images to check yet.")
    elif counts:
        largest, smallest = max(counts, key=counts.__getitem__), min(counts, key=counts.__getitem__)
        imbalance = counts[largest] / max(counts[smallest], 1)
        sentences.append(
            f"{len(training)} training images in {len(classes)} classes and {len(testing)} testing images."
        )
        if imbalance >= imbalance_ratio:
            warn(
                f"The classes are unbalanced: “{largest}” has {counts[largest]} training images and "
                f"“{smallest}” only {counts[smallest]} ({imbalance:.1f} times fewer). A model learns that the "
                "big class is usually right; add images to the small class or judge it by per-class accuracy."
            )
        else:
            sentences.append(
                f"The classes are about balanced ({counts[smallest]} to {counts[largest]} training images each)."
            )
    if test_only:
        warn(
            f"testing/ has folders no training class has ({_names(test_only)}): the model cannot answer "
            "with those classes, so their images are classified but not scored."
        )
    if facts and not testing:
        sentences.append(
            "There is no testing/ folder: the results will come only from the 15 % of each "
            "class held out for validation."
        )

    groups: dict[str, list[ImageFacts]] = defaultdict(list)
    for f in facts:
        groups[f.key].append(f)
    within, across, leaks = [], [], []
    for members in groups.values():
        if len(members) < 2:
            continue
        train_members = [m for m in members if m.part == "training"]
        test_members = [m for m in members if m.part == "testing"]
        by_class: dict[str | None, list[str]] = defaultdict(list)
        for m in train_members:
            by_class[m.label].append(m.path)
        for paths in by_class.values():
            if len(paths) > 1:
                within.append(paths)
        if len(by_class) > 1:
            across.append([m.path for m in train_members])
        if train_members and test_members:
            leaks.append([m.path for m in members])
    if within:
        warn(
            f"{len(within)} picture(s) appear more than once in the same class ({_names([p[0] for p in within])}): "
            "each copy counts again in training, and a copy may land in validation."
        )
    if across:
        warn(
            f"{len(across)} picture(s) appear in two or more classes ({_names([' = '.join(p) for p in across], 2)}): "
            "the labels contradict each other, and no model can get both right."
        )
    if leaks:
        warn(
            f"Leakage: {len(leaks)} testing image(s) are also in training/ ({_names([' = '.join(p) for p in leaks], 2)}). "
            "The test then checks memory, not learning; remove them from one of the two folders."
        )
    if facts and not (within or across or leaks):
        sentences.append("No picture appears twice.")

    near: list[tuple[str, str, float]] = []
    if embeddings is not None and training and testing:
        emb = np.asarray(embeddings, dtype=np.float64)
        if emb.shape[0] != len(facts):
            raise ValueError("embeddings must have one row per image in facts.")
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        unit = emb / np.where(norms > 0, norms, 1.0)
        train_idx = [i for i, f in enumerate(facts) if f.part == "training"]
        test_idx = [i for i, f in enumerate(facts) if f.part == "testing"]
        cosine = unit[test_idx] @ unit[train_idx].T
        for t, row in zip(test_idx, cosine):
            j = int(np.argmax(row))
            tr = train_idx[j]
            if row[j] >= near_cosine and facts[tr].key != facts[t].key:
                near.append((facts[tr].path, facts[t].path, float(row[j])))
        near.sort(key=lambda item: -item[2])
        if near:
            # Worded as what was measured: pictures of one simple kind (the demo shapes) can be this close
            # without being copies, so the sentence does not call them the same picture.
            warn(
                f"{len(near)} testing image(s) look almost the same as a training image to the network (cosine "
                f"similarity of their embeddings {near_cosine:.2f} or more): "
                f"{_names([f'{b} ≈ {a} ({c:.2f})' for a, b, c in near], 2)}. Check them: if one is another copy, "
                "scan or crop of the same work, the test is easier than it looks."
            )
        else:
            sentences.append(
                f"No testing image is a near-copy of a training image (cosine similarity of their "
                f"embeddings below {near_cosine:.2f})."
            )
    elif embeddings is None and training and testing:
        sentences.append("Near-copies between training/ and testing/ are checked once the images are embedded.")

    grays = [f.path for f in facts if f.grayscale]
    if grays and len(grays) < len(facts):
        gray_classes = sorted({f.label or "(no class)" for f in facts if f.grayscale})
        warn(
            f"{len(grays)} of {len(facts)} images are grayscale and the rest in colour (grayscale in: "
            f"{', '.join(gray_classes)}). If one class is mostly grayscale, the model may learn “grey” instead of the topic."
        )
    small = [f.path for f in facts if min(f.height, f.width) < small_side]
    if small:
        warn(
            f"{len(small)} image(s) are smaller than {small_side} pixels on a side ({_names(small)}); the model "
            "looks at 224 × 224 pixels, so they are blown up and their details are lost."
        )
    skipped = list(skipped)
    if skipped:
        sentences.append(f"{len(skipped)} file(s) were skipped, each with its reason in the list of skipped files.")
    return DatasetCheck(rows, sentences, warnings, imbalance, within, across, leaks, near, grays, small, skipped)
