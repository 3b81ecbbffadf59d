"""An audit's image sets from a visitor's zip: kept at the size the model sees, and honest about what they are.

*Memory.* An audit runs each image through the model once (at its input size, 224 × 224 for the
ImageNet networks), shows a Grad-CAM gallery and keeps 96-pixel thumbnails for the report. A probe
zip of 5 990 small 512 × 512 PNGs decoded in full held 4.5 GB; read here, at most
:data:`MAX_SET_IMAGES` images are decoded, each shrunk to :func:`set_side` pixels on its longest
side as it is read, so one set costs at most ``500 × 224² × 3`` bytes ≈ 75 MB whatever the zip holds.

*Honesty.* Given the lesson's zip (``training/<class>/`` + ``testing/<class>/``),
:func:`reference_set_from_zip` takes ``testing/`` only: the model was trained on ``training/``,
so those images would make it look more confident (and more accurate) than it is on new
pictures. The true class of each image is its folder name (matched to the model's classes
ignoring case), so the audit measures accuracy, per-class accuracy and calibration on it.
Images in a folder named after no class are left out of the reference (and the sentences say
how many). A zip without ``testing/`` is used whole, with a sentence saying that training
images, if these were the training images, inflate confidence.

Never imports TensorFlow.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from cnnviz.zips import ZipImage, iter_zip_images, plan_zip, read_image_zip

__all__ = ["MAX_SET_IMAGES", "MIN_SIDE", "MAX_SIDE", "set_side", "read_set_zip",
           "ReferenceSet", "class_index", "reference_set_from_zip", "labelled_image_set"]

#: Images per set: an audit of a seminar's sample, not of a whole archive.
MAX_SET_IMAGES = 500
#: Smallest kept side: the gallery shows the picture beside its Grad-CAM; 224 still reads on a slide.
MIN_SIDE = 224
#: Largest kept side, for a visitor's model that takes big pictures.
MAX_SIDE = 512


def set_side(card: Mapping[str, Any]) -> int:
    """Longest side to keep a set's images at for the model on ``card``: its input size, 224…512 pixels."""
    size = card.get("input_size") or []
    sides = [int(v) for v in size if isinstance(v, (int, float)) and v]
    return max(MIN_SIDE, min(MAX_SIDE, max(sides, default=MIN_SIDE)))


def read_set_zip(data: bytes, *, zip_name: str = "The zip", side: int = MIN_SIDE,
                 max_images: int = MAX_SET_IMAGES) -> tuple[list[ZipImage], list[str]]:
    """The images of a probe or reference zip, ``(items, skipped)``.

    ``items``: at most ``max_images`` :class:`cnnviz.zips.ZipImage` (class folders first, then
    loose images), each ``(h, w, 3)`` ``uint8`` with ``max(h, w) <= side``; ``skipped``: one
    sentence per file not used, and one for the images beyond ``max_images`` left unread.
    Raises :class:`cnnviz.zips.ZipError` for a zip that cannot be read at all.
    """
    contents = read_image_zip(data, zip_name=zip_name, max_side=side, loose_images=True, max_images=max_images)
    items = [item for group in contents.training.values() for item in group] + contents.testing
    return items[:max_images], contents.skipped


def class_index(name: str | None, class_names: Sequence[str]) -> int | None:
    """Index of a folder name among the model's classes, ignoring case; ``None`` when it names none."""
    if not name:
        return None
    lower = [str(c).lower() for c in class_names]
    return lower.index(name.lower()) if name.lower() in lower else None


@dataclass
class ReferenceSet:
    """An image set for :func:`cnnviz.audit.run.run_audit`, with where it came from.

    ``part`` is ``"testing"`` (the lesson's test images), ``"training"`` (a zip without
    ``testing/``) or ``"all"`` (a plain ``<class>/`` zip); ``labels`` are true class indices
    (``None`` when no image's folder names a class); ``sentences`` say what was used and why.
    """

    files: list[str]
    images: list[np.ndarray]
    labels: np.ndarray | None
    part: str
    sentences: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def as_image_set(self) -> dict:
        """``{"files", "images", "labels"}``, the shape :func:`~cnnviz.audit.run.run_audit` takes."""
        return {"files": list(self.files), "images": list(self.images), "labels": self.labels}


def labelled_image_set(files: Sequence[str], images: Sequence[np.ndarray], folders: Sequence[str | None],
                       class_names: Sequence[str]) -> tuple[list[str], list[np.ndarray], np.ndarray | None, int]:
    """Keep the images whose folder names a class: ``(files, images, labels, n_left_out)``.

    When no folder names a class, every image is kept unlabelled (``labels`` is ``None``,
    ``n_left_out`` 0): the audit then measures confidence and distances, not accuracy.
    """
    idx = [class_index(f, class_names) for f in folders]
    known = [i for i, k in enumerate(idx) if k is not None]
    if not known:
        return list(files), list(images), None, 0
    return ([files[i] for i in known], [images[i] for i in known],
            np.array([idx[i] for i in known], dtype=np.int64), len(files) - len(known))


def reference_set_from_zip(data: bytes, class_names: Sequence[str], *, zip_name: str = "The zip",
                           max_side: int | None = MIN_SIDE, max_images: int | None = MAX_SET_IMAGES) -> ReferenceSet:
    """The reference set a zip gives (see the module docstring). Raises :class:`cnnviz.zips.ZipError`.

    ``max_images`` caps the images decoded (a page's memory budget); the sentences say so.
    """
    plan = plan_zip(data, zip_name=zip_name, loose_images=True)
    n_testing = sum(1 for e in plan.entries if e.part == "testing")
    n_training = len(plan.entries) - n_testing
    sentences: list[str] = []
    if plan.layout == "lesson" and n_testing:
        plan.entries = [e for e in plan.entries if e.part == "testing"]
        part = "testing"
        sentences.append(
            f"{zip_name} has the lesson's layout: its {n_testing} testing/ images are the reference set. "
            f"The {n_training} training/ images were left out: a model is more confident on the pictures it "
            "was trained on, so they would make it look surer and more accurate than it is on new images.")
    elif plan.layout == "lesson":
        part = "training"
        sentences.append(
            f"{zip_name} has no testing/ images, so its training/ images are the reference set. If the model was "
            "trained on them, its confidence and accuracy here are higher than on new images.")
    else:
        part = "all"
        sentences.append(f"{zip_name} has no training/ and testing/ folders; all its images are the reference set. "
                         "If the model was trained on them, its confidence here is higher than on new images.")
    if max_images is not None and len(plan.entries) > max_images:
        sentences.append(f"Only the first {max_images} of its {len(plan.entries)} images were used.")
        plan.entries = plan.entries[:max_images]
    items = list(iter_zip_images(data, plan, max_side=max_side))
    files, images, labels, left_out = labelled_image_set(
        [i.path for i in items], [i.image for i in items], [i.label for i in items], class_names)
    if labels is None:
        sentences.append("No folder is named after one of the model's classes, so the true classes are unknown: "
                         "accuracy and calibration cannot be measured, only confidence and distances.")
    else:
        sentences.append(f"The true class of each image is its folder name: accuracy, per-class accuracy and "
                         f"calibration are measured on {len(files)} images.")
        if left_out:
            sentences.append(f"{left_out} image(s) are not in a folder named after one of the model's classes "
                             "and were left out of the reference set.")
    return ReferenceSet(files, images, labels, part, sentences, list(plan.skipped))
