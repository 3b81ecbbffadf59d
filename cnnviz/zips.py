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
import zlib
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Iterator

import numpy as np

from cnnviz.images import IMAGE_SUFFIXES, MAX_BYTES, ImageError, decode_pixels, load_image
from cnnviz.limits import BudgetSpent, PixelBudget, limit
from cnnviz.text import ClassNameError, clean_class_name

__all__ = [
    "assign_layout",
    "ZipError",
    "ZipEntry",
    "ZipPlan",
    "ZipImage",
    "ZipContents",
    "plan_zip",
    "iter_zip_images",
    "read_image_zip",
    "MAX_ENTRIES",
    "MAX_TOTAL_BYTES",
    "MAX_RATIO",
    "IMAGE_SUFFIXES",
]

#: Most entries read from one zip (default of ``CNNVIZ_MAX_ZIP_ENTRIES``). A seminar's 5 000
#: images plus their folders fit; more is refused before anything is read.
MAX_ENTRIES = 6_000
#: Most bytes all used entries may expand to (5 000 photos of ~600 kB each fit).
MAX_TOTAL_BYTES = 4 * 1024**3
#: Largest accepted ratio of uncompressed to compressed size for one entry. JPEG and
#: PNG barely compress further (ratio ~1); a ratio of 1000 is zeros, i.e. a zip bomb.
MAX_RATIO = 100.0
#: Entries smaller than this are never called bombs: tiny files compress oddly.
_RATIO_FLOOR_BYTES = 64 * 1024

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
    #: Position in the zip's directory: two entries may share a path, and each must be read.
    index: int = -1


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


def plan_zip(
    data: bytes,
    *,
    zip_name: str = "The zip",
    max_entries: int | None = None,
    max_total_bytes: int = MAX_TOTAL_BYTES,
    max_ratio: float = MAX_RATIO,
    loose_images: bool = False,
) -> ZipPlan:
    """List the image files of a zip and the reasons other entries are skipped.

    With ``loose_images`` (an audit's probe set needs no classes), images outside any class
    folder are kept as unlabelled ``testing`` entries instead of being skipped.

    Reads only the zip's central directory. Raises :class:`ZipError` (one sentence)
    when the bytes are not a zip, are damaged, or hold more than ``max_entries``
    (default ``CNNVIZ_MAX_ZIP_ENTRIES``) entries. Per-file problems never raise: they become
    lines in ``plan.skipped``. A path that occurs twice (the same name written twice, or
    ``a/x.png`` and ``a\\x.png``) is read twice; the later copy is shown as ``… (copy 2)``.
    """
    max_entries = limit("CNNVIZ_MAX_ZIP_ENTRIES") if max_entries is None else max_entries
    with _open(data, zip_name) as archive:
        infos = archive.infolist()
    # `ZipInfo.is_dir` indexes the last character, which an entry with an empty name lacks.
    files = [(i, info) for i, info in enumerate(infos) if not info.filename.endswith("/")]
    if len(infos) > max_entries:
        raise ZipError(
            f"{zip_name} holds {len(infos):,} entries; at most {max_entries:,} are accepted. "
            "Please split it into smaller zips."
        )

    skipped: list[str] = []
    candidates: list[tuple[int, zipfile.ZipInfo, tuple[str, ...]]] = []
    total = 0
    for index, info in files:
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
        candidates.append((index, info, parts))

    entries, layout = assign_layout(
        [("/".join(_clean_parts(info.filename)), info.file_size, parts, index) for index, info, parts in candidates],
        skipped,
        loose_images=loose_images,
    )
    return ZipPlan(entries=entries, skipped=skipped, layout=layout)


def assign_layout(files: list[tuple], skipped: list[str], *, loose_images: bool = False) -> tuple[list[ZipEntry], str]:
    """Work out the layout (lesson or plain) of image files and give each its part and class.

    ``files`` are ``(name, size in bytes, path parts)`` or ``(name, size, parts, index in the zip)``;
    the same rules serve a zip and a folder on disk. Folder names become class names (cleaned
    with :func:`cnnviz.text.clean_class_name`); a name that occurs twice is read twice, the later
    copy shown as ``… (copy 2)``. Files outside the layout get a line in ``skipped``. Returns
    ``(entries, "lesson" | "plain")``.
    """
    parts_list = _strip_common_root([f[2] for f in files])
    lesson = any(parts[0].lower() in _TRAINING + _TESTING for parts in parts_list if len(parts) > 1)
    entries: list[ZipEntry] = []
    seen: dict[str, int] = {}
    for file, parts in zip(files, parts_list):
        name, size = file[0], file[1]
        index = file[3] if len(file) > 3 else -1
        try:
            # Folder names become class names: one line each, never blank (see clean_class_name).
            parts = tuple(clean_class_name(p) for p in parts[:-1]) + parts[-1:]
        except ClassNameError:
            skipped.append(
                f"“{name}” is in a folder whose name is blank or only invisible characters; please rename the folder."
            )
            continue
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = f"{name} (copy {seen[name]})"
        if lesson:
            top = parts[0].lower()
            if top in _TRAINING:
                if len(parts) < 3:
                    skipped.append(f"“{name}” is not inside a class folder (training/<class>/<image>).")
                    continue
                entries.append(ZipEntry(name, "training", parts[1], size, index))
            elif top in _TESTING:
                label = parts[1] if len(parts) >= 3 else None
                entries.append(ZipEntry(name, "testing", label, size, index))
            else:
                skipped.append(f"“{name}” is outside the training/ and testing/ folders.")
        else:
            if len(parts) < 2:
                if loose_images:
                    entries.append(ZipEntry(name, "testing", None, size, index))
                    continue
                skipped.append(f"“{name}” is not inside a class folder (<class>/<image>).")
                continue
            entries.append(ZipEntry(name, "training", parts[-2], size, index))
    return entries, "lesson" if lesson else "plain"


def iter_zip_images(
    data: bytes,
    plan: ZipPlan,
    *,
    max_side: int | None = 512,
    skipped: list[str] | None = None,
    max_images: int | None = None,
    max_pixels: int | None = None,
    budget: PixelBudget | None = None,
) -> Iterator[ZipImage]:
    """Decode the planned images one at a time (memory stays at one image plus what the caller keeps).

    Files that turn out to be damaged or not images are appended to ``skipped``
    (default: ``plan.skipped``) with their reason and not yielded. Reading stops after
    ``max_images`` images, or when the pixels decoded so far would pass ``max_pixels``
    (default ``CNNVIZ_MAX_ZIP_PIXELS``; a JPEG counts at its reduced decoding size), with one
    sentence saying how many files were left unread; with a visitor's ``budget``
    (:class:`cnnviz.limits.PixelBudget`) also when that budget is spent.
    """
    skipped = plan.skipped if skipped is None else skipped
    allowed = limit("CNNVIZ_MAX_ZIP_PIXELS") if max_pixels is None else max_pixels
    visitor = budget
    used = yielded = 0
    with _open(data, "The zip") as archive:
        infos = archive.infolist()
        for position, entry in enumerate(plan.entries):
            if max_images is not None and yielded >= max_images:
                skipped.append(
                    f"{len(plan.entries) - position:,} more images were not read: "
                    f"{max_images:,} images are enough for this step."
                )
                return
            info = infos[entry.index] if 0 <= entry.index < len(infos) else entry.path
            try:
                with archive.open(info) as handle:
                    raw = handle.read(MAX_BYTES + 1)
            except (
                zipfile.BadZipFile,
                zlib.error,
                OSError,
                EOFError,
                RuntimeError,
                NotImplementedError,
                ValueError,
                KeyError,
            ):
                # zlib.error: damaged compressed data (bit rot, a cut-off download) with intact headers.
                skipped.append(
                    f"“{entry.path}” is damaged inside the zip (its compressed data cannot be "
                    "unpacked) and was skipped."
                )
                continue
            if raw[:4] == b"PK\x03\x04":
                skipped.append(f"“{entry.path}” is a zip inside the zip; nested zips are not opened.")
                continue
            try:
                cost = decode_pixels(raw, max_side=max_side, name=f"“{entry.path}”")
                if used + cost > allowed:
                    skipped.append(
                        f"{len(plan.entries) - position:,} images from “{entry.path}” on were not read: the zip's "
                        f"images add up to more than {allowed / 1e9:.1f} billion pixels, this server's limit per zip."
                    )
                    return
                if visitor is not None:
                    try:
                        visitor.charge(cost)
                    except BudgetSpent as spent:
                        skipped.append(
                            f"{len(plan.entries) - position:,} images from “{entry.path}” on were not read: {spent}"
                        )
                        return
                used += cost
                image = load_image(raw, max_side=max_side, name=f"“{entry.path}”")
            except ImageError as err:
                skipped.append(str(err))
                continue
            yielded += 1
            yield ZipImage(entry.path, entry.part, entry.label, image)


def read_image_zip(
    data: bytes,
    *,
    zip_name: str = "The zip",
    max_side: int | None = 512,
    max_entries: int | None = None,
    max_total_bytes: int = MAX_TOTAL_BYTES,
    max_ratio: float = MAX_RATIO,
    loose_images: bool = False,
    max_images: int | None = None,
    budget: PixelBudget | None = None,
) -> ZipContents:
    """Read the usable images of a zip into memory (small collections, an audit's sets, tests).

    Each image is kept at most ``max_side`` pixels on its longest side, and at most
    ``max_images`` are decoded (the rest are named in ``skipped``), so memory is bounded by
    ``max_images × max_side² × 3`` bytes whatever the zip holds. For large collections use
    :func:`plan_zip` + :func:`iter_zip_images` and keep only what you need of each image (the
    trainer keeps an embedding and a thumbnail).
    """
    plan = plan_zip(
        data,
        zip_name=zip_name,
        max_entries=max_entries,
        max_total_bytes=max_total_bytes,
        max_ratio=max_ratio,
        loose_images=loose_images,
    )
    training: dict[str, list[ZipImage]] = {}
    testing: list[ZipImage] = []
    for item in iter_zip_images(data, plan, max_side=max_side, max_images=max_images, budget=budget):
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
        return f"expands {ratio:,.0f} times when unpacked (a “zip bomb” pattern) and was refused to protect the server."
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
