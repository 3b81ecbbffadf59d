"""Safe image input: bytes from a visitor become an RGB ``uint8`` array, or one clear error.

Every page that accepts an image goes through :func:`load_image`. A public demo
server receives broken and hostile files, so the function refuses anything it
cannot decode fully and cheaply, and says why in a sentence a non-programmer
understands (:class:`ImageError`). It never imports TensorFlow.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps

__all__ = [
    "ImageError",
    "load_image",
    "load_image_file",
    "downscale",
    "to_rgb_uint8",
    "sample_images",
    "MAX_BYTES",
    "MAX_PIXELS",
    "MAX_SIDE",
    "WORK_SIDE",
]

#: Largest upload we try to decode (bytes). Bigger files are refused before decoding.
MAX_BYTES = 50 * 1024 * 1024
#: Largest decoded image (width × height). A 12 000 × 8 000 photo is 96 MP; beyond that
#: is almost always a decompression bomb aimed at the server's memory.
MAX_PIXELS = 100_000_000
#: Largest side we accept at all: a 1 × 90 000 000 "image" is no photograph.
MAX_SIDE = 20_000
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


def load_image(data: bytes, *, max_side: int | None = WORK_SIDE, name: str = "This file") -> np.ndarray:
    """Decode uploaded bytes into an ``(H, W, 3)`` RGB ``uint8`` array.

    Handles PNG, JPEG, WebP, BMP, GIF (first frame) and TIFF; applies the EXIF
    orientation a phone camera writes; converts CMYK, palette, grayscale and 16-bit
    images; composites transparency on white (what a viewer shows). Images larger
    than ``max_side`` on their longest side are downscaled, keeping the aspect ratio
    (``None`` keeps full size).

    Raises :class:`ImageError` with a plain-language sentence for empty, truncated,
    unrecognised, bomb-sized or absurdly shaped files.
    """
    if data is None or len(data) == 0:
        raise ImageError(f"{name} is empty (0 bytes). Please choose another image.")
    if len(data) > MAX_BYTES:
        raise ImageError(
            f"{name} is {len(data) / 1e6:.0f} MB; images up to {MAX_BYTES / 1e6:.0f} MB are accepted."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img: Image.Image = Image.open(io.BytesIO(data), formats=_FORMATS)
            width, height = img.size
            _check_dimensions(width, height, name)
            if getattr(img, "n_frames", 1) > 1:
                img.seek(0)
            if max_side is not None and img.format == "JPEG":
                # Decode big JPEGs at a reduced scale straight away: far less memory and time.
                img.draft("RGB", (max_side, max_side))
            img.load()
            img = ImageOps.exif_transpose(img)
            if max_side is not None and max(img.size) > max_side:
                img = _shrink(img, max_side)
            array = to_rgb_uint8(img)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(
            f"{name} is larger than this app accepts (it claims more than "
            f"{MAX_PIXELS / 1e6:.0f} megapixels); it was refused to protect the server."
        ) from None
    except Image.UnidentifiedImageError:
        raise ImageError(
            f"{name} is not an image this app can read. Please upload a {_FORMAT_NAMES} file."
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError):
        # Pillow reports truncated and corrupt data as OSError/SyntaxError/ValueError.
        raise ImageError(
            f"{name} looks damaged or incomplete (perhaps the upload was cut off) and could not be read."
        ) from None
    except MemoryError:
        raise ImageError(f"{name} is too large to open on this server.") from None
    return array


def load_image_file(path: str | Path, *, max_side: int | None = WORK_SIDE) -> np.ndarray:
    """Read an image file from disk through the same checks as an upload."""
    path = Path(path)
    return load_image(path.read_bytes(), max_side=max_side, name=path.name)


def to_rgb_uint8(img: Image.Image) -> np.ndarray:
    """Convert any Pillow image mode to an ``(H, W, 3)`` RGB ``uint8`` array.

    Transparent pixels are composited on white, 16- and 32-bit grayscale is scaled
    to 0–255 (not clipped, which would turn most 16-bit images white).
    """
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        if mode == "F":
            lo, hi = float(values.min(initial=0)), float(values.max(initial=1))
            values = (values - lo) / (hi - lo or 1.0)
            top = 1.0
        gray = np.clip(np.rint(values / top * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode in ("LA", "La", "PA", "RGBa"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))


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


def sample_images() -> dict[str, np.ndarray]:
    """The offline sample images shipped in ``data/samples`` (generated by ``scripts/make_samples.py``).

    Keys are human titles ("Geometric shapes"), derived from the file names.
    """
    samples: dict[str, np.ndarray] = {}
    for path in sorted(SAMPLES_DIR.glob("*.png")):
        title = path.stem.split("-", 1)[-1].replace("_", " ").capitalize()
        samples[title] = load_image_file(path)
    return samples


def _check_dimensions(width: int, height: int, name: str) -> None:
    if width < 1 or height < 1:
        raise ImageError(f"{name} has no pixels.")
    if max(width, height) > MAX_SIDE or width * height > MAX_PIXELS:
        raise ImageError(
            f"{name} is {width} × {height} pixels, larger than this app accepts "
            f"(at most {MAX_SIDE} pixels per side and {MAX_PIXELS / 1e6:.0f} megapixels)."
        )


def _shrink(img: Image.Image, max_side: int) -> Image.Image:
    scale = max_side / max(img.size)
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    if img.mode not in ("RGB", "RGBA", "L", "LA"):
        img = img.convert("RGBA" if "A" in img.getbands() or "transparency" in img.info else "RGB")
    return img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
