"""An audit's image sets: where each comes from, what it holds, and whether the audit can run on them.

*Sources.* A set is filled from one of :data:`SOURCE_TITLES`: generated probes (seeded, so a
link reproduces them), the demo shapes, the app's sample images, the visitor's uploads (true
classes from folder names), a zip, camera shots, or the validation images of the model the
visitor trained on page 4. Each source has one function here returning an :class:`ImageSet`
with sentences that say what was used and why; :func:`audit_sets` then says whether the audit
can run (two images in the reference, a probe set, one name per set), :func:`fingerprint`
whether a stored audit still matches the sets and settings, :func:`run_settings` what the
report lists.

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

import hashlib
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Mapping, Protocol, Sequence

import numpy as np

from cnnviz.audit import probes
from cnnviz.images import THUMB_SIDE, thumbnail
from cnnviz.text import ClassNameError, clean_class_name
from cnnviz.train.demo_data import DEMO_CLASSES, demo_dataset
from cnnviz.limits import PixelBudget
from cnnviz.zips import ZipError, ZipImage, iter_zip_images, plan_zip, read_image_zip

__all__ = [
    "MAX_SET_IMAGES",
    "MIN_SIDE",
    "MAX_SIDE",
    "set_side",
    "read_set_zip",
    "ImageSet",
    "ReferenceSet",
    "class_index",
    "reference_set_from_zip",
    "labelled_image_set",
    "SHAPES",
    "GENERATED",
    "SAMPLES",
    "TRAINER",
    "UPLOAD",
    "ZIP",
    "CAMERA",
    "SOURCE_TITLES",
    "sources",
    "SetDefaults",
    "REFERENCE_DEFAULTS",
    "MAX_PROBE_SETS",
    "probe_defaults",
    "GENERATED_COUNT",
    "SHAPES_PER_CLASS",
    "with_true_classes",
    "generated_set",
    "shapes_set",
    "samples_set",
    "uploaded_set",
    "zip_set",
    "camera_set",
    "trainer_set",
    "set_name",
    "KEPT_SOURCES",
    "reopened_set",
    "audit_sets",
    "fingerprint",
    "run_settings",
    "set_thumbnails",
]

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


def read_set_zip(
    data: bytes,
    *,
    zip_name: str = "The zip",
    side: int = MIN_SIDE,
    max_images: int = MAX_SET_IMAGES,
    budget: PixelBudget | None = None,
) -> tuple[list[ZipImage], list[str]]:
    """The images of a probe or reference zip, ``(items, skipped)``.

    ``items``: at most ``max_images`` :class:`cnnviz.zips.ZipImage` (class folders first, then
    loose images), each ``(h, w, 3)`` ``uint8`` with ``max(h, w) <= side``; ``skipped``: one
    sentence per file not used, and one for the images beyond ``max_images`` left unread.
    Raises :class:`cnnviz.zips.ZipError` for a zip that cannot be read at all.
    """
    contents = read_image_zip(
        data, zip_name=zip_name, max_side=side, loose_images=True, max_images=max_images, budget=budget
    )
    items = [item for group in contents.training.values() for item in group] + contents.testing
    return items[:max_images], contents.skipped


def class_index(name: str | None, class_names: Sequence[str]) -> int | None:
    """Index of a folder name among the model's classes, ignoring case; ``None`` when it names none."""
    if not name:
        return None
    lower = [str(c).lower() for c in class_names]
    return lower.index(name.lower()) if name.lower() in lower else None


@dataclass
class ImageSet:
    """One image set of an audit: ``N`` images ``(h, w, 3)`` ``uint8`` with their file names.

    ``labels``: ``(N,)`` true class indices into the model's classes, or ``None`` when the true
    classes are unknown (then no accuracy is measured on the set). ``sentences``: what was used
    and why, for the visitor (plain text; they may quote file names). ``skipped``: one sentence
    per file that was not used. ``seed``: the seed of generated pictures (for the report).
    """

    files: list[str] = field(default_factory=list)
    images: list[np.ndarray] = field(default_factory=list)
    labels: np.ndarray | None = None
    sentences: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seed: int | None = None

    def __len__(self) -> int:
        return len(self.images)

    def as_image_set(self) -> dict:
        """``{"files", "images", "labels"}``, the shape :func:`~cnnviz.audit.run.run_audit` takes."""
        return {"files": list(self.files), "images": list(self.images), "labels": self.labels}


@dataclass
class ReferenceSet(ImageSet):
    """An :class:`ImageSet` from a reference zip, with the part of the zip it came from.

    ``part`` is ``"testing"`` (the lesson's test images), ``"training"`` (a zip without
    ``testing/``) or ``"all"`` (a plain ``<class>/`` zip).
    """

    part: str = "all"


def labelled_image_set(
    files: Sequence[str], images: Sequence[np.ndarray], folders: Sequence[str | None], class_names: Sequence[str]
) -> tuple[list[str], list[np.ndarray], np.ndarray | None, int]:
    """Keep the images whose folder names a class: ``(files, images, labels, n_left_out)``.

    When no folder names a class, every image is kept unlabelled (``labels`` is ``None``,
    ``n_left_out`` 0): the audit then measures confidence and distances, not accuracy.
    """
    idx = [class_index(f, class_names) for f in folders]
    known = [i for i, k in enumerate(idx) if k is not None]
    if not known:
        return list(files), list(images), None, 0
    return (
        [files[i] for i in known],
        [images[i] for i in known],
        np.array([idx[i] for i in known], dtype=np.int64),
        len(files) - len(known),
    )


def reference_set_from_zip(
    data: bytes,
    class_names: Sequence[str],
    *,
    zip_name: str = "The zip",
    max_side: int | None = MIN_SIDE,
    max_images: int | None = MAX_SET_IMAGES,
    budget: PixelBudget | None = None,
) -> ReferenceSet:
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
            "was trained on, so they would make it look surer and more accurate than it is on new images."
        )
    elif plan.layout == "lesson":
        part = "training"
        sentences.append(
            f"{zip_name} has no testing/ images, so its training/ images are the reference set. If the model was "
            "trained on them, its confidence and accuracy here are higher than on new images."
        )
    else:
        part = "all"
        sentences.append(
            f"{zip_name} has no training/ and testing/ folders; all its images are the reference set. "
            "If the model was trained on them, its confidence here is higher than on new images."
        )
    if max_images is not None and len(plan.entries) > max_images:
        sentences.append(f"Only the first {max_images} of its {len(plan.entries)} images were used.")
        plan.entries = plan.entries[:max_images]
    items = list(iter_zip_images(data, plan, max_side=max_side, budget=budget))
    files, images, labels, left_out = labelled_image_set(
        [i.path for i in items], [i.image for i in items], [i.label for i in items], class_names
    )
    if labels is None:
        sentences.append(
            "No folder is named after one of the model's classes, so the true classes are unknown: "
            "accuracy and calibration cannot be measured, only confidence and distances."
        )
    else:
        sentences.append(
            f"The true class of each image is its folder name: accuracy, per-class accuracy and "
            f"calibration are measured on {len(files)} images."
        )
        if left_out:
            sentences.append(
                f"{left_out} image(s) are not in a folder named after one of the model's classes "
                "and were left out of the reference set."
            )
    return ReferenceSet(
        files=files, images=images, labels=labels, part=part, sentences=sentences, skipped=list(plan.skipped)
    )


# --------------------------------------------------------------------------- sources
SHAPES, GENERATED, SAMPLES, TRAINER, UPLOAD, ZIP, CAMERA = (
    "shapes",
    "generated",
    "samples",
    "trainer",
    "upload",
    "zip",
    "camera",
)
#: What the visitor reads for each source (the URL holds the short id).
SOURCE_TITLES = {
    SHAPES: "Generated shapes (squares, triangles, circles)",
    GENERATED: "Generated pictures (seeded)",
    SAMPLES: "The app's sample images",
    TRAINER: "My trainer's validation images",
    UPLOAD: "Upload images or a folder",
    ZIP: "Upload a zip (class folders)",
    CAMERA: "Camera",
}
#: Generated pictures per set (slider range); demo shapes per shape.
GENERATED_COUNT = (4, 100)
SHAPES_PER_CLASS = (2, 40)
MAX_PROBE_SETS = 3
ABSTRACT = ("Mondrian grid", "Rothko colour fields", "Kandinsky circles and lines", "Pollock drips")
NOT_PICTURES = ("Printed text", "Blank page", "Noise")


def sources(card: Mapping[str, Any], *, reference: bool) -> list[str]:
    """The sources a set can come from, the default first.

    A reference set is what the model was made for: shapes, generated pictures, samples, uploads,
    a zip, and for a model the visitor trained or uploaded (``kind == "visitor"``) first of all
    the trainer's validation images. A probe set is what it was not made for: generated probes,
    uploads, a zip or camera shots.
    """
    if not reference:
        return [GENERATED, UPLOAD, ZIP, CAMERA]
    return ([TRAINER] if card.get("kind") == "visitor" else []) + [SHAPES, GENERATED, SAMPLES, UPLOAD, ZIP]


@dataclass(frozen=True)
class SetDefaults:
    """What a set starts as before the visitor changes it: its name, generated kinds, seed and count."""

    name: str
    kinds: tuple[str, ...]
    seed: int
    count: int = 24
    per_class: int = 8


REFERENCE_DEFAULTS = SetDefaults("Reference", ("Geometric shapes",), seed=1)


def probe_defaults(i: int) -> SetDefaults:
    """Defaults of probe set ``i`` (0-based): the first holds abstract paintings, the others non-pictures."""
    if i == 0:
        return SetDefaults("Abstract probes", ABSTRACT, seed=100)
    return SetDefaults(f"Probe set {i + 1}", NOT_PICTURES, seed=100 * (i + 1))


def with_true_classes(
    files: Sequence[str], images: Sequence[np.ndarray], names: Sequence[str | None], class_names: Sequence[str]
) -> ImageSet:
    """A set whose true classes are ``names`` (folders, kinds) matched to the model's classes ignoring case.

    Accuracy and calibration only mean something when every image's true class is one of the
    model's, so ``labels`` is ``None`` unless all of them are; all images are kept either way.
    """
    idx = [class_index(n, class_names) for n in names]
    known = sum(i is not None for i in idx)
    sentences = []
    if 0 < known < len(idx):
        sentences.append(
            f"{known} of these {len(idx)} images are of one of the model's classes and the others are "
            "not, so this set has no true classes: accuracy cannot be measured on it."
        )
    labels = np.array(idx, dtype=np.int64) if idx and known == len(idx) else None
    return ImageSet(list(files), list(images), labels, sentences)


def generated_set(
    kinds: Sequence[str], count: int, *, seed: int, class_names: Sequence[str], size: tuple[int, int] = (224, 224)
) -> ImageSet:
    """``count`` pictures from :data:`cnnviz.audit.probes.GENERATORS`, cycling through ``kinds``.

    Same kinds, count and seed, same pictures. A kind named like a class of the model is that
    image's true class. Unknown kinds are ignored; none left gives an empty set with a sentence.
    """
    kinds = [k for k in kinds if k in probes.GENERATORS]
    if not kinds:
        return ImageSet(sentences=["Choose at least one kind of picture."])
    made = probes.probe_set(kinds, int(count), size=size, seed=int(seed))
    found = with_true_classes(list(made), list(made.values()), [n.rsplit(" #", 1)[0] for n in made], class_names)
    found.seed = int(seed)
    return found


def shapes_set(per_class: int, class_names: Sequence[str], *, size: int = 128, seed: int = 0) -> ImageSet:
    """The trainer's demo shapes, ``per_class`` of each of squares, triangles and circles ("square 1", …)."""
    data = demo_dataset(int(per_class), size=size, seed=seed)
    files = [f"{shape} {i + 1}" for shape in DEMO_CLASSES for i in range(len(data[shape]))]
    images = [img for shape in DEMO_CLASSES for img in data[shape]]
    return with_true_classes(files, images, [f.rsplit(" ", 1)[0] for f in files], class_names)


def samples_set(samples: Mapping[str, np.ndarray]) -> ImageSet:
    """The app's sample images by title; their true classes are unknown."""
    return ImageSet(list(samples), list(samples.values()))


def camera_set(photos: Sequence[np.ndarray]) -> ImageSet:
    """Photos taken for this set ("photo 1", …), true classes unknown."""
    if not photos:
        return ImageSet(sentences=["Take a photo to add it to this set."])
    return ImageSet(
        [f"photo {i + 1}" for i in range(len(photos))], list(photos), sentences=[f"{len(photos)} photos in this set."]
    )


def uploaded_set(
    named: Sequence[tuple[str, np.ndarray]],
    class_names: Sequence[str],
    *,
    problems: Sequence[str] = (),
    offered: int | None = None,
    max_images: int = MAX_SET_IMAGES,
) -> ImageSet:
    """Uploaded ``(file name, image)`` pairs; a folder upload's folder names are the true classes.

    ``problems``: one sentence per file that could not be read (kept as ``skipped``).
    ``offered``: how many files the visitor uploaded, when only the first were read; at most
    ``max_images`` images are used, and a sentence says when some were not.
    """
    named = list(named)
    offered = len(named) + len(problems) if offered is None else offered
    used = named[:max_images]
    files = [n for n, _ in used]
    found = with_true_classes(
        files, [im for _, im in used], [PurePosixPath(f).parent.name or None for f in files], class_names
    )
    if offered > len(used) + len(problems):
        found.sentences.append(
            f"Only {len(used)} of the {offered} files are used: a set holds at most {max_images} images."
        )
    found.skipped = list(problems)
    return found


def zip_set(
    data: bytes,
    class_names: Sequence[str],
    *,
    zip_name: str = "The zip",
    side: int = MIN_SIDE,
    reference: bool = False,
    max_images: int = MAX_SET_IMAGES,
    budget: PixelBudget | None = None,
) -> ImageSet:
    """The images of a zip: class folders give the true classes. Raises :class:`cnnviz.zips.ZipError`.

    As a reference set, a zip in the lesson's layout (``training/`` + ``testing/``) gives its
    ``testing/`` images only (:func:`reference_set_from_zip`, whose sentences say why). A zip with
    no usable image at all is refused with one sentence.
    """
    if reference and plan_zip(data, zip_name=zip_name, loose_images=True).layout == "lesson":
        found: ImageSet = reference_set_from_zip(
            data, class_names, zip_name=zip_name, max_side=side, max_images=max_images, budget=budget
        )
    else:
        items, skipped = read_set_zip(data, zip_name=zip_name, side=side, max_images=max_images, budget=budget)
        found = with_true_classes(
            [i.path for i in items], [i.image for i in items], [i.label for i in items], class_names
        )
        found.skipped = list(skipped)
    if not len(found):
        unused = f" ({len(found.skipped)} files were not used)" if found.skipped else ""
        raise ZipError(
            f"{zip_name} holds no usable images{unused}: the audit reads PNG, JPEG, WebP, BMP, GIF and TIFF files."
        )
    return found


class _Run(Protocol):
    name: str
    judged_on: str

    @property
    def finished(self) -> bool: ...


class _Training(Protocol):
    """What the audit reads of page 4's :class:`cnnviz.train.session.TrainingSession`."""

    # Read-only here (a property), so a session whose ``run`` is the richer ``Run`` satisfies it:
    # a plain attribute would be invariant and ask for exactly ``_Run | None``.
    @property
    def run(self) -> _Run | None: ...

    def validation_images(self) -> tuple[list[str], list[np.ndarray], np.ndarray] | None: ...


def trainer_set(training: _Training | None, model_name: str) -> ImageSet:
    """The held-out images of the visitor's last training run, labelled, when ``model_name`` is its model.

    Empty, with the sentence that says why, when nothing was trained yet, another model is
    chosen, or the images are no longer in memory.
    """
    run = training.run if training is not None else None
    if training is None or run is None or not run.finished:
        return ImageSet(sentences=["Train a model on page 4 first; its validation images then appear here."])
    if run.name != model_name:
        return ImageSet(
            sentences=[f"These are the validation images of “{run.name}”; choose that model above to use them."]
        )
    found = training.validation_images()
    if found is None:
        return ImageSet(sentences=["The trainer's images are no longer in memory; please add them again on page 4."])
    files, images, labels = found
    if run.judged_on == "training":
        what = (
            f"{len(files)} images the model was trained on (no class had enough images to hold any out), so "
            "its confidence and accuracy here are higher than on new images"
        )
    else:
        what = f"{len(files)} images the model never trained on"
    return ImageSet(
        list(files),
        list(images),
        np.asarray(labels, dtype=np.int64),
        sentences=[f"{what}; kept as {THUMB_SIDE}-pixel thumbnails, so the model sees them a little blurred."],
    )


# --------------------------------------------------------------------------- kept in the workspace
#: Sources whose pictures exist only in the visitor's browser (an uploader or the camera is empty
#: after a reload), so the workspace keeps the set's pictures to rebuild it.
KEPT_SOURCES = (UPLOAD, ZIP, CAMERA)


def reopened_set(found: ImageSet, kept_classes: Sequence[str], class_names: Sequence[str]) -> ImageSet:
    """A set kept in the workspace, as the audit gets it again: the same files and pixels.

    True classes come from the files' folder names, as when the set was read, so they are
    matched again when the model's classes differ from ``kept_classes`` (those it was read for).
    Files that were not used then are not repeated; the sentences say where the pictures came from.
    """
    if list(kept_classes) == list(class_names):
        again = ImageSet(list(found.files), list(found.images), found.labels, list(found.sentences))
    else:
        again = with_true_classes(
            found.files, found.images, [PurePosixPath(f).parent.name or None for f in found.files], class_names
        )
    again.sentences.insert(
        0,
        f"{len(again)} pictures kept in your workspace from your last visit; clear the set to choose others.",
    )
    return again


# --------------------------------------------------------------------------- can the audit run?
def set_name(typed: object, default: str) -> str:
    """The name the visitor typed for a set, on one line and at most 60 characters; blank → ``default``."""
    try:
        return clean_class_name(typed)
    except ClassNameError:
        return default


def audit_sets(
    reference: tuple[str, ImageSet | None], probe_sets: Sequence[tuple[str, ImageSet | None]]
) -> tuple[dict[str, ImageSet], list[str]]:
    """The sets to audit (the reference first, then every probe set with images) and what stops the audit.

    The audit can run when the list of problems is empty: the reference set has at least two
    images (its distances compare each image with the others), at least one probe set has
    images, and no two sets share a name (results, the CSV and the report are by name).
    """
    problems: list[str] = []
    names = [reference[0]] + [name for name, _ in probe_sets]
    for name in dict.fromkeys(n for n in names if names.count(n) > 1):
        problems.append(f"Two sets are called “{name}”; please give every set its own name.")
    ref_name, ref = reference
    chosen: dict[str, ImageSet] = {}
    if ref is None or len(ref) < 2:
        problems.append("The reference set needs at least two images.")
    else:
        chosen[ref_name] = ref
    for name, found in probe_sets:
        if found is not None and len(found) and name not in chosen:
            chosen[name] = found
    if not any(len(found) for _, found in probe_sets if found is not None):
        problems.append("Add images to at least one probe set.")
    return chosen, problems


def fingerprint(image_sets: Mapping[str, ImageSet], settings: object) -> str:
    """A short digest of the sets (names, files, labels, pixels) and ``settings`` (its ``repr``).

    Equal digests mean a stored audit still shows these sets and settings. Every 16th pixel row
    and column is hashed: a rerun of the page hashes 500 images in milliseconds, and a changed
    picture changes far more than one pixel.
    """
    digest = hashlib.blake2b(repr(settings).encode(), digest_size=16)
    for name, found in image_sets.items():
        digest.update(repr((name, list(found.files), None if found.labels is None else found.labels.tolist())).encode())
        for image in found.images:
            digest.update(repr(image.shape).encode())
            digest.update(np.ascontiguousarray(image[::16, ::16]).tobytes())
    return digest.hexdigest()


def run_settings(
    model_title: str, reference: str, image_sets: Mapping[str, ImageSet], *, threshold: float, k: int
) -> dict[str, Any]:
    """The settings the report lists: model, sets, threshold, neighbours, images per set, seeds of generated sets."""
    settings: dict[str, Any] = {
        "model": model_title,
        "reference set": reference,
        "probe sets": ", ".join(n for n in image_sets if n != reference),
        "abstain threshold": threshold,
        "kNN neighbours": k,
    }
    settings.update({f"{name} · images": len(found) for name, found in image_sets.items()})
    settings.update({f"seed ({name})": found.seed for name, found in image_sets.items() if found.seed is not None})
    return settings


def set_thumbnails(image_sets: Mapping[str, ImageSet], side: int = THUMB_SIDE) -> dict[str, list[np.ndarray]]:
    """``{set name: [thumbnail, …]}`` in file order, kept with a finished audit for the page and the report."""
    return {name: [thumbnail(img, side) for img in found.images] for name, found in image_sets.items()}
