"""Read a seminar's image collection from a zip, in memory and defensively.

A zip from a visitor is never extracted to disk: entries are read one at a time from
the uploaded bytes. Public servers receive hostile zips, so this module caps the
number of entries, the total uncompressed size and each entry's compression ratio
(a "zip bomb" squeezes gigabytes of zeros into kilobytes), and ignores paths that try
to climb out of a folder (``../``, absolute paths: "zip slip"), hidden and system
files (``__MACOSX``, ``.DS_Store``), nested zips and non-images. Every file that is
not used gets one sentence saying why; every good image is kept.

Two layouts are understood:

* the Programming Historian lesson's ``training/<class>/<image>`` (the classes) plus
  ``testing/[<class>/]<image>`` (a test set, labelled when it has class folders);
* a plain ``<class>/<image>``.

A single top folder around either (``paintings/training/…``, made by zipping a
folder) is allowed. Images are decoded by :func:`cnnviz.images.load_image`.
Never imports TensorFlow.
"""
from __future__ import annotations

import io
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Iterator

import numpy as np

from cnnviz.images import MAX_BYTES, ImageError, load_image

__all__ = [
    "ZipError",
    "ZipEntry",
    "ZipPlan",
    "ZipImage",
    "ZipContents",
    "plan_zip",
    "assign_layout",
    "iter_zip_images",
    "read_image_zip",
    "MAX_ENTRIES",
    "MAX_TOTAL_BYTES",
    "MAX_RATIO",
    "IMAGE_SUFFIXES",
]

#: Most entries read from one zip. A seminar's 5 000 images plus their folders fit;
#: more is refused before anything is read (ten thousand tiny entries cost time, not data).
MAX_ENTRIES = 6_000
#: Most bytes all used entries may expand to (5 000 photos of ~600 kB each fit).
MAX_TOTAL_BYTES = 4 * 1024**3
#: Largest accepted ratio of uncompressed to compressed size for one entry. JPEG and
#: PNG barely compress further (ratio ~1); a ratio of 1000 is zeros, i.e. a zip bomb.
MAX_RATIO = 100.0
#: Entries smaller than this are never called bombs: tiny files compress oddly.
_RATIO_FLOOR_BYTES = 64 * 1024

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
_SYSTEM_NAMES = frozenset({"__macosx", ".ds_store", "thumbs.db", "desktop.ini", ".git", ".svn"})
_ZIP_SUFFIXES = frozenset({".zip", ".jar", ".7z", ".rar", ".tar", ".gz", ".tgz", ".bz2", ".xz"})
_TRAINING = ("training", "train")
_TESTING = ("testing", "test")


class ZipError(ValueError):
    """A zip that cannot be used at all. ``str(err)`` is one sentence for the visitor."""


@dataclass(frozen=True)
class ZipEntry:
    """One image file inside the zip that will be read.

    ``part`` is ``"training"`` or ``"testing"``; ``label`` the class folder it sits in
    (``None`` for an unlabelled test image).
    """

    path: str
    part: str
    label: str | None
    size: int


@dataclass
class ZipPlan:
    """What a zip holds, worked out from its directory alone (nothing decoded yet)."""

    entries: list[ZipEntry]
    skipped: list[str] = field(default_factory=list)
    layout: str = "plain"  # "lesson" (training/ + testing/) or "plain" (<class>/)

    @property
    def classes(self) -> list[str]:
        """Training class names in first-seen order."""
        return list(dict.fromkeys(e.label for e in self.entries if e.part == "training" and e.label))


@dataclass(frozen=True)
class ZipImage:
    """A decoded image: ``image`` is ``(H, W, 3)`` RGB ``uint8``."""

    path: str
    part: str
    label: str | None
    image: np.ndarray

    @property
    def name(self) -> str:
        return PurePosixPath(self.path).name


@dataclass
class ZipContents:
    """Everything usable in a zip: training images by class, test images, and why others were skipped."""

    training: dict[str, list[ZipImage]]
    testing: list[ZipImage]
    skipped: list[str]
    layout: str


def plan_zip(data: bytes, *, zip_name: str = "The zip", max_entries: int = MAX_ENTRIES,
             max_total_bytes: int = MAX_TOTAL_BYTES, max_ratio: float = MAX_RATIO,
             loose_images: bool = False) -> ZipPlan:
    """List the image files of a zip and the reasons other entries are skipped.

    With ``loose_images`` (an audit's probe set needs no classes), images outside any class
    folder are kept as unlabelled ``testing`` entries instead of being skipped.

    Reads only the zip's central directory. Raises :class:`ZipError` (one sentence)
    when the bytes are not a zip, are damaged, or hold more than ``max_entries``
    entries. Per-file problems never raise: they become lines in ``plan.skipped``.
    """
    with _open(data, zip_name) as archive:
        infos = archive.infolist()
    files = [info for info in infos if not info.is_dir()]
    if len(infos) > max_entries:
        raise ZipError(
            f"{zip_name} holds {len(infos):,} entries; at most {max_entries:,} are accepted. "
            "Please split it into smaller zips."
        )

    skipped: list[str] = []
    candidates: list[tuple[zipfile.ZipInfo, tuple[str, ...]]] = []
    total = 0
    for info in files:
        name = info.filename
        reason = _entry_problem(info, max_ratio)
        if reason:
            skipped.append(f"“{name}” {reason}")
            continue
        parts = _clean_parts(name)
        if total + info.file_size > max_total_bytes:
            skipped.append(
                f"“{name}” was not read: the zip's files add up to more than "
                f"{max_total_bytes / 1024**3:.0f} GB uncompressed."
            )
            continue
        total += info.file_size
        candidates.append((info, parts))

    entries, layout = assign_layout([(info.filename, info.file_size, parts) for info, parts in candidates],
                                    skipped, loose_images=loose_images)
    return ZipPlan(entries=entries, skipped=skipped, layout=layout)


def assign_layout(files: list[tuple[str, int, tuple[str, ...]]], skipped: list[str], *,
                  loose_images: bool = False) -> tuple[list[ZipEntry], str]:
    """Work out the layout (lesson or plain) of image files and give each its part and class.

    ``files`` are ``(name, size in bytes, path parts)``; the same rules serve a zip and a
    folder on disk. Files outside the layout get a line in ``skipped``. Returns
    ``(entries, "lesson" | "plain")``.
    """
    parts_list = _strip_common_root([parts for _, _, parts in files])
    lesson = any(parts[0].lower() in _TRAINING + _TESTING for parts in parts_list if len(parts) > 1)
    entries: list[ZipEntry] = []
    for (name, size, _), parts in zip(files, parts_list):
        if lesson:
            top = parts[0].lower()
            if top in _TRAINING:
                if len(parts) < 3:
                    skipped.append(f"“{name}” is not inside a class folder (training/<class>/<image>).")
                    continue
                entries.append(ZipEntry(name, "training", parts[1], size))
            elif top in _TESTING:
                label = parts[1] if len(parts) >= 3 else None
                entries.append(ZipEntry(name, "testing", label, size))
            else:
                skipped.append(f"“{name}” is outside the training/ and testing/ folders.")
        else:
            if len(parts) < 2:
                if loose_images:
                    entries.append(ZipEntry(name, "testing", None, size))
                    continue
                skipped.append(f"“{name}” is not inside a class folder (<class>/<image>).")
                continue
            entries.append(ZipEntry(name, "training", parts[-2], size))
    return entries, "lesson" if lesson else "plain"


def iter_zip_images(data: bytes, plan: ZipPlan, *, max_side: int | None = 512,
                    skipped: list[str] | None = None) -> Iterator[ZipImage]:
    """Decode the planned images one at a time (memory stays at one image plus what the caller keeps).

    Files that turn out to be damaged or not images are appended to ``skipped``
    (default: ``plan.skipped``) with their reason and not yielded.
    """
    skipped = plan.skipped if skipped is None else skipped
    with _open(data, "The zip") as archive:
        for entry in plan.entries:
            try:
                with archive.open(entry.path) as handle:
                    raw = handle.read(MAX_BYTES + 1)
            except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError, ValueError) as exc:
                skipped.append(f"“{entry.path}” is damaged inside the zip and was skipped ({str(exc)[:80]}).")
                continue
            if raw[:4] == b"PK\x03\x04":
                skipped.append(f"“{entry.path}” is a zip inside the zip; nested zips are not opened.")
                continue
            try:
                image = load_image(raw, max_side=max_side, name=f"“{entry.path}”")
            except ImageError as err:
                skipped.append(str(err))
                continue
            yield ZipImage(entry.path, entry.part, entry.label, image)


def read_image_zip(data: bytes, *, zip_name: str = "The zip", max_side: int | None = 512,
                   max_entries: int = MAX_ENTRIES, max_total_bytes: int = MAX_TOTAL_BYTES,
                   max_ratio: float = MAX_RATIO, loose_images: bool = False) -> ZipContents:
    """Read every usable image of a zip into memory (small collections, tests).

    For large collections use :func:`plan_zip` + :func:`iter_zip_images` and keep only
    what you need of each image (the trainer keeps an embedding and a thumbnail).
    """
    plan = plan_zip(data, zip_name=zip_name, max_entries=max_entries,
                    max_total_bytes=max_total_bytes, max_ratio=max_ratio, loose_images=loose_images)
    training: dict[str, list[ZipImage]] = {}
    testing: list[ZipImage] = []
    for item in iter_zip_images(data, plan, max_side=max_side):
        if item.part == "training":
            training.setdefault(item.label or "", []).append(item)
        else:
            testing.append(item)
    return ZipContents(training=training, testing=testing, skipped=plan.skipped, layout=plan.layout)


def _open(data: bytes, zip_name: str) -> zipfile.ZipFile:
    if not data:
        raise ZipError(f"{zip_name} is empty (0 bytes).")
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except zipfile.LargeZipFile:
        raise ZipError(f"{zip_name} is too large to open on this server.") from None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError):
        raise ZipError(f"{zip_name} is not a readable zip file (it may be damaged or incomplete).") from None


def _entry_problem(info: zipfile.ZipInfo, max_ratio: float) -> str | None:
    """Why an entry is not read, as the end of a sentence, or ``None`` when it may be an image."""
    raw = info.filename
    path = raw.replace("\\", "/")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if path.startswith("/") or (len(path) > 1 and path[1] == ":") or raw.startswith("\\"):
        return "has an absolute path and was ignored (it could point anywhere on a computer)."
    if ".." in parts:
        return "tries to climb out of its folder (“..”) and was ignored."
    if not parts:
        return "has no name and was ignored."
    if any(p.lower() in _SYSTEM_NAMES or p.startswith(".") or p.startswith("._") for p in parts):
        return "is a hidden or system file and was ignored."
    if stat.S_ISLNK(info.external_attr >> 16):
        return "is a link, not a file, and was ignored."
    if info.flag_bits & 0x1:
        return "is password-protected and was skipped."
    suffix = PurePosixPath(parts[-1]).suffix.lower()
    if suffix in _ZIP_SUFFIXES:
        return "is an archive inside the zip; nested archives are not opened."
    if suffix not in IMAGE_SUFFIXES:
        return f"is not an image ({suffix or 'no file extension'}) and was skipped."
    if info.file_size > MAX_BYTES:
        return f"is {info.file_size / 1e6:.0f} MB; images up to {MAX_BYTES / 1e6:.0f} MB are accepted."
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > _RATIO_FLOOR_BYTES and ratio > max_ratio:
        return (f"expands {ratio:,.0f} times when unpacked (a “zip bomb” pattern) "
                "and was refused to protect the server.")
    return None


def _clean_parts(name: str) -> tuple[str, ...]:
    return tuple(p for p in name.replace("\\", "/").split("/") if p not in ("", "."))


def _strip_common_root(paths: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Drop one folder every file shares (``collection/training/…`` → ``training/…``)."""
    if not paths:
        return paths
    first = paths[0][0]
    if all(len(p) > 2 and p[0] == first for p in paths) and first.lower() not in _TRAINING + _TESTING:
        return [p[1:] for p in paths]
    return paths
