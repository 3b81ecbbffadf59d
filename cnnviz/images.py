"""Safe image input: bytes from a visitor become an RGB ``uint8`` array, or one clear error.

Every page that accepts an image goes through :func:`load_image`. A public demo
server receives broken and hostile files, so the function refuses anything it
cannot decode fully and cheaply, and says why in a sentence a non-programmer
understands (:class:`ImageError`). It never imports TensorFlow.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageFile, ImageOps

from cnnviz.limits import BudgetSpent, PixelBudget, limit

__all__ = [
    "IMAGE_SUFFIXES",
    "IMAGE_TYPES",
    "ImageError",
    "load_image",
    "load_image_file",
    "decode_pixels",
    "downscale",
    "thumbnail",
    "encode_for_display",
    "THUMB_SIDE",
    "to_rgb_uint8",
    "sample_images",
    "MAX_BYTES",
    "MAX_PIXELS",
    "MAX_SIDE",
    "MIN_SIDE",
    "MAX_ASPECT",
    "WORK_SIDE",
]

#: Largest upload we try to decode (bytes). Bigger files are refused before decoding.
#: File endings of the pictures the app reads (uploads, folders, zips): one list for every page.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
#: The same, as ``st.file_uploader(type=...)`` takes them.
IMAGE_TYPES = sorted(s.lstrip(".") for s in IMAGE_SUFFIXES)

MAX_BYTES = 50 * 1024 * 1024
#: Largest decoded image (width × height). A 12 000 × 8 000 photo is 96 MP; beyond that
#: is almost always a decompression bomb aimed at the server's memory.
MAX_PIXELS = 100_000_000
#: Largest side we accept at all: a 1 × 90 000 000 "image" is no photograph.
MAX_SIDE = 20_000
#: Smallest side: a 1-pixel-wide picture loses an axis in the convolution page; 4 keeps two
#: rows even after the 10:1 limit below and its smallest working size.
MIN_SIDE = 4
#: Longest side at most this many times the shortest: a 10:1 panorama still keeps two pixel
#: rows at the convolution page's smallest working size (16 px), a 1 × 300 strip does not.
MAX_ASPECT = 10
#: Images are shrunk to at most this many pixels on their longest side for display and
#: convolution work; a projector shows no more and every later step gets faster.
WORK_SIDE = 1024

# Pillow warns past MAX_IMAGE_PIXELS and raises past twice that; we turn the warning
# into an error below, so this is the real limit.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
# Truncated files must fail loudly, never decode half an image silently.
ImageFile.LOAD_TRUNCATED_IMAGES = False
# Register every plugin now: `Image.open(formats=...)` only knows formats already loaded.
Image.init()

_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")
_FORMAT_NAMES = "PNG, JPEG, WebP, BMP, GIF or TIFF"
SAMPLES_DIR = Path(__file__).resolve().parents[1] / "data" / "samples"


class ImageError(ValueError):
    """An upload that is not a usable image. ``str(err)`` is meant for the visitor."""


def load_image(
    data: bytes, *, max_side: int | None = WORK_SIDE, name: str = "This file", budget: PixelBudget | None = None
) -> np.ndarray:
    """Decode uploaded bytes into an ``(H, W, 3)`` RGB ``uint8`` array.

    Handles PNG, JPEG, WebP, BMP, GIF (first frame) and TIFF; applies the EXIF
    orientation a phone camera writes; converts CMYK, palette, grayscale and 16-bit
    images; composites transparency on white (what a viewer shows). Images larger
    than ``max_side`` on their longest side are downscaled, keeping the aspect ratio
    (``None`` keeps full size).

    Raises :class:`ImageError` with a plain-language sentence for empty, truncated,
    unrecognised, bomb-sized or absurdly shaped files. With a visitor's ``budget``
    (:class:`cnnviz.limits.PixelBudget`), the decoding cost is charged to it first; a spent
    budget is an :class:`ImageError` too.
    """
    if budget is not None:
        try:
            budget.charge(decode_pixels(data, max_side=max_side, name=name))
        except BudgetSpent as spent:
            raise ImageError(str(spent)) from None
    if data is None or len(data) == 0:
        raise ImageError(f"{name} is empty (0 bytes). Please choose another image.")
    if len(data) > MAX_BYTES:
        raise ImageError(f"{name} is {len(data) / 1e6:.0f} MB; images up to {MAX_BYTES / 1e6:.0f} MB are accepted.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = _open_drafted(data, max_side, name)
            img.load()
            img = _exif_upright(img)
            if max_side is not None and max(img.size) > max_side:
                img = _shrink(img, max_side)
            array = to_rgb_uint8(img)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(
            f"{name} is larger than this app accepts (it claims more than "
            f"{_max_pixels() / 1e6:.0f} megapixels); it was refused to protect the server."
        ) from None
    except Image.UnidentifiedImageError:
        raise ImageError(f"{name} is not an image this app can read. Please upload a {_FORMAT_NAMES} file.") from None
    except (
        OSError,
        SyntaxError,
        ValueError,
        EOFError,
        IndexError,
        TypeError,
        KeyError,
        OverflowError,
        struct.error,
        ZeroDivisionError,
    ):
        # Pillow reports truncated and corrupt data with many exception types (a TIFF strip
        # offset past 2**63 is an OverflowError, a short EXIF field a struct.error).
        raise ImageError(
            f"{name} looks damaged or incomplete (perhaps the upload was cut off) and could not be read."
        ) from None
    except MemoryError:
        raise ImageError(f"{name} is too large to open on this server.") from None
    return array


def decode_pixels(data: bytes, *, max_side: int | None = WORK_SIDE, name: str = "This file") -> int:
    """How many pixels :func:`load_image` would decode for ``data`` (JPEG at its reduced scale).

    Reads only the file's header, so a zip reader can add up the cost of its images before
    decoding any. Raises :class:`ImageError` for the same files :func:`load_image` refuses
    by their header.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = _open_drafted(data, max_side, name)
            return int(img.width) * int(img.height)
    except ImageError:
        raise
    except Exception:  # whatever the header hides, load_image says it in a sentence later
        return 0


def load_image_file(path: str | os.PathLike[str], *, max_side: int | None = WORK_SIDE) -> np.ndarray:
    """Read an image file from disk through the same checks as an upload."""
    path = Path(path)
    return load_image(path.read_bytes(), max_side=max_side, name=path.name)


def to_rgb_uint8(img: Image.Image) -> np.ndarray:
    """Convert any Pillow image mode to an ``(H, W, 3)`` RGB ``uint8`` array.

    Transparent pixels are composited on white; 16-bit, 32-bit and float grayscale is scaled
    by its real range (see :func:`_eight_bit`), never clipped, which would turn most 16-bit
    scans white and a 0–1 float image black.
    """
    img = _eight_bit(img)
    if img.mode in ("LA", "RGBA"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))


def _eight_bit(img: Image.Image) -> Image.Image:
    """The same picture in an 8-bit mode (``L``, ``LA``, ``RGB`` or ``RGBA``), scaled by its real range.

    ``I;16*`` is scaled by its bit depth (0–65535 → 0–255). ``I`` (32-bit) and ``F`` (float)
    keep 0–255 data as is, scale 0–1 floats and 0–65535 integers by that range, and stretch any
    other range from its minimum to its maximum. Palette images keep their transparency.
    """
    mode = img.mode
    if mode in ("L", "LA", "RGB", "RGBA"):
        return img
    if mode.startswith("I;16") or mode in ("I", "F"):
        values = np.asarray(img, dtype=np.float32)
        finite = values[np.isfinite(values)]
        lo = float(finite.min()) if finite.size else 0.0
        hi = float(finite.max()) if finite.size else 0.0
        if mode.startswith("I;16"):
            bottom, top = 0.0, 65535.0
        elif lo >= 0 and hi <= 1 and mode == "F":
            bottom, top = 0.0, 1.0
        elif lo >= 0 and hi <= 255:
            bottom, top = 0.0, 255.0
        elif lo >= 0 and hi <= 65535 and mode == "I":
            bottom, top = 0.0, 65535.0
        else:
            bottom, top = lo, (hi if hi > lo else lo + 1.0)
        values = np.nan_to_num(values, nan=bottom, posinf=top, neginf=bottom)
        gray = np.clip(np.rint((values - bottom) / (top - bottom) * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L")
    if mode == "P":
        return img.convert("RGBA" if "transparency" in img.info else "RGB")
    if mode in ("PA", "La", "RGBa") or "A" in img.getbands() or "transparency" in img.info:
        return img.convert("RGBA")
    if mode == "1":
        return img.convert("L")
    return img.convert("RGB")  # CMYK, YCbCr, LAB, HSV


def downscale(image: np.ndarray, max_side: int = WORK_SIDE) -> np.ndarray:
    """Shrink an ``(H, W[, C])`` array so its longest side is at most ``max_side``.

    Uses area averaging (no aliasing). Images already small enough are returned as is.
    """
    height, width = image.shape[:2]
    if max(height, width) <= max_side:
        return image
    import cv2  # local: keeps `import cnnviz.images` light for tests of pure decoding

    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


#: Longest side of the app's thumbnails (pixels): the trainer's store, the audit's gallery and
#: report. Enough for a gallery; small enough that 5 000 of them take under 140 MB.
THUMB_SIDE = 96


def thumbnail(image: np.ndarray, side: int = THUMB_SIDE) -> np.ndarray:
    """A small copy of an ``(H, W, 3)`` ``uint8`` image: longest side at most ``side`` pixels, aspect kept.

    Area-averaged (OpenCV's ``INTER_AREA``, no aliasing; a third of the CPU time of Pillow's
    Lanczos, which counts when a 5 000-picture collection is read); an image already that small
    comes back as an equal copy, never enlarged. Always a new array, so the thumbnail never pins
    the full picture.

    >>> thumbnail(np.zeros((300, 200, 3), np.uint8)).shape
    (96, 64, 3)
    """
    pixels = np.asarray(image, dtype=np.uint8)
    height, width = pixels.shape[:2]
    if max(height, width) <= side:
        return pixels.copy()
    import cv2  # local, as in downscale

    scale = side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.ascontiguousarray(cv2.resize(pixels, size, interpolation=cv2.INTER_AREA))


def encode_for_display(image: np.ndarray, *, quality: int = 95) -> tuple[bytes, Literal["JPEG", "PNG"]]:
    """A ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA ``uint8`` picture as file bytes.

    Returns ``(data, format)``: JPEG for grey and RGB (the format Streamlit picks for such an array),
    PNG when there is an alpha channel. OpenCV's encoder takes about half the CPU time of Pillow's,
    and a page that redraws fifteen pictures on every click spends most of its time encoding them.

    >>> data, fmt = encode_for_display(np.zeros((4, 6, 3), np.uint8))
    >>> fmt, data[:2] == b"\\xff\\xd8"
    ('JPEG', True)
    """
    import cv2  # local, as in downscale

    pixels = np.asarray(image)
    if pixels.dtype != np.uint8:
        raise ValueError(f"encode_for_display takes uint8 pixels, not {pixels.dtype}.")
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        ok, data = cv2.imencode(".png", cv2.cvtColor(pixels, cv2.COLOR_RGBA2BGRA), [cv2.IMWRITE_PNG_COMPRESSION, 1])
        fmt: Literal["JPEG", "PNG"] = "PNG"
    elif pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3):
        bgr = pixels if pixels.ndim == 2 else pixels[..., ::-1]
        ok, data = cv2.imencode(".jpg", np.ascontiguousarray(bgr), [cv2.IMWRITE_JPEG_QUALITY, quality])
        fmt = "JPEG"
    else:
        raise ValueError(
            f"encode_for_display takes (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) pixels, not {pixels.shape}."
        )
    if not ok:
        raise ValueError("OpenCV could not encode this picture.")
    return data.tobytes(), fmt


#: Where the project's shared folder lies (real, openly licensed images; read in place, never copied).
SHARED_DIR = Path(os.environ.get("CNNVIZ_SHARED", Path(__file__).resolve().parents[2] / "shared"))
#: Photographs from ``../shared/images`` offered as samples when that folder is there (scikit-image, CC0).
SHARED_PHOTOS = {
    "Chelsea the cat": "non-paintings/chelsea-the-cat-photo.png",
    "Cup of coffee": "non-paintings/coffee-cup-photo.png",
}


def sample_images() -> dict[str, np.ndarray]:
    """The offline sample images: those in ``data/samples`` (generated by ``scripts/make_samples.py``)
    and, where ``../shared/images`` is there, the photographs of :data:`SHARED_PHOTOS`.

    Keys are human titles ("Geometric shapes"), derived from the file names.
    """
    samples: dict[str, np.ndarray] = {}
    for path in sorted(SAMPLES_DIR.glob("*.png")):
        title = path.stem.split("-", 1)[-1].replace("_", " ").capitalize()
        samples[title] = load_image_file(path)
    for title, relative in SHARED_PHOTOS.items():
        photo = SHARED_DIR / "images" / relative
        if photo.is_file():
            samples[title] = load_image_file(photo)
    return samples


def _max_pixels() -> int:
    return min(limit("CNNVIZ_MAX_IMAGE_PIXELS"), MAX_PIXELS)


def _open_drafted(data: bytes, max_side: int | None, name: str) -> Image.Image:
    """Open ``data`` (header only), check its size, and set JPEG to decode at a reduced scale."""
    img = Image.open(io.BytesIO(data), formats=_FORMATS)
    width, height = img.size
    _check_dimensions(width, height, name)
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)
    if max_side is not None and img.format == "JPEG":
        # Decode big JPEGs at 1/2, 1/4 or 1/8 scale straight away: far less memory and time.
        img.draft("RGB", (max_side, max_side))
    decoded = img.width * img.height
    budget = limit("CNNVIZ_MAX_DECODE_PIXELS")
    if decoded > budget:
        raise ImageError(
            f"{name} is {width} × {height} pixels; this server decodes at most {budget / 1e6:.0f} megapixels "
            "of a PNG, WebP, TIFF, BMP or GIF (a network looks at far fewer). "
            "Please shrink it or save it as JPEG."
        )
    return img


_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _exif_upright(img: Image.Image) -> Image.Image:
    """Turn the picture as the camera's EXIF orientation says, even when other EXIF fields are broken."""
    try:
        return ImageOps.exif_transpose(img)
    except (struct.error, ValueError, TypeError, KeyError, IndexError, OverflowError, SyntaxError, OSError):
        # Phones write EXIF fields of unexpected types; Pillow fails rewriting them, not reading
        # the orientation, so turn the pixels here and leave the broken block behind.
        try:
            orientation = img.getexif().get(0x0112)
        except Exception:  # an unreadable EXIF block: the pixels are still the picture
            orientation = None
        method = _ORIENTATION.get(orientation) if isinstance(orientation, int) else None
        return img.transpose(method) if method is not None else img


def _check_dimensions(width: int, height: int, name: str) -> None:
    if width < 1 or height < 1:
        raise ImageError(f"{name} has no pixels.")
    max_pixels = _max_pixels()
    if max(width, height) > MAX_SIDE or width * height > max_pixels:
        raise ImageError(
            f"{name} is {width} × {height} pixels, larger than this app accepts "
            f"(at most {MAX_SIDE} pixels per side and {max_pixels / 1e6:.0f} megapixels)."
        )
    if min(width, height) < MIN_SIDE:
        raise ImageError(
            f"{name} is only {width} × {height} pixels; a picture needs at least {MIN_SIDE} pixels "
            "on each side to be convolved and classified."
        )
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise ImageError(
            f"{name} is {width} × {height} pixels, a strip more than {MAX_ASPECT} times longer than it is "
            "wide; please crop it to a picture closer to a square."
        )


def _shrink(img: Image.Image, max_side: int) -> Image.Image:
    scale = max_side / max(img.size)
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    img = _eight_bit(img)  # before resizing: Pillow's own conversion of 16-bit data clips it
    if img.mode == "LA":
        img = img.convert("RGBA")  # resized with premultiplied alpha, so no dark fringes
    return img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
