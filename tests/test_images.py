"""Safe image input: every format we promise decodes to RGB uint8; every bad file gets one clear sentence."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from cnnviz.images import MAX_PIXELS, WORK_SIDE, ImageError, downscale, load_image, load_image_file, sample_images


def encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def noise_rgb(w: int = 400, h: int = 300) -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8))


def gradient_rgb(w: int = 64, h: int = 48) -> Image.Image:
    x = np.linspace(0, 255, w, dtype=np.uint8)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h, dtype=np.uint8)[:, None].repeat(w, 1)
    return Image.fromarray(np.dstack([x, y, 255 - x]))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF"])
def test_every_promised_format_decodes_to_rgb_uint8(fmt):
    out = load_image(encode(gradient_rgb(), fmt))
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8
    # Lossy formats drift a little; the picture must still be the same gradient.
    assert np.abs(out.astype(int) - np.asarray(gradient_rgb()).astype(int)).mean() < 20


def test_gif_uses_first_frame():
    red, blue = Image.new("RGB", (8, 8), (255, 0, 0)), Image.new("RGB", (8, 8), (0, 0, 255))
    data = encode(red, "GIF", save_all=True, append_images=[blue])
    out = load_image(data)
    assert out[4, 4, 0] > 200 and out[4, 4, 2] < 50


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (40, 20), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 10, 20))  # white stripe on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    out = load_image(encode(img, "JPEG", exif=exif.tobytes(), quality=95))
    assert out.shape == (40, 20, 3)  # portrait now
    assert out[:10].mean() > 200 and out[-10:].mean() < 60  # stripe moved to the top


def test_cmyk_palette_grayscale_and_16_bit():
    cmyk = load_image(encode(Image.new("CMYK", (10, 10), (0, 255, 255, 0)), "JPEG"))
    assert cmyk[5, 5, 0] > 200 and cmyk[5, 5, 1] < 60  # pure red
    pal = load_image(encode(gradient_rgb().convert("P"), "PNG"))
    assert pal.shape == (48, 64, 3)
    gray = load_image(encode(Image.new("L", (10, 10), 100), "PNG"))
    assert (gray == 100).all()
    sixteen = Image.fromarray(np.full((10, 10), 32768, dtype=np.uint16))
    out = load_image(encode(sixteen, "PNG"))
    assert 120 <= out[0, 0, 0] <= 135  # half of 65535 is mid-grey, not clipped white


def test_transparency_is_composited_on_white():
    img = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    img.putpixel((0, 0), (255, 0, 0, 255))
    out = load_image(encode(img, "PNG"))
    assert tuple(out[5, 5]) == (255, 255, 255)
    assert tuple(out[0, 0]) == (255, 0, 0)
    la = load_image(encode(Image.new("LA", (4, 4), (0, 0)), "PNG"))
    assert (la == 255).all()


def test_large_images_are_downscaled_keeping_aspect():
    out = load_image(encode(Image.new("RGB", (3000, 1500), (9, 9, 9)), "PNG"))
    assert out.shape == (WORK_SIDE // 2, WORK_SIDE, 3)
    full = load_image(encode(Image.new("RGB", (3000, 1500)), "PNG"), max_side=None)
    assert full.shape == (1500, 3000, 3)
    assert downscale(np.zeros((2048, 1024, 3), np.uint8), 512).shape == (512, 256, 3)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims a size; no pixel data follows (what a bomb's header looks like)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + png_chunk(b"IEND", b"")
    )


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def real_bomb() -> bytes:
    """A real decompression bomb: ~11 000 × 11 000 black pixels in a few hundred kB of PNG."""
    side = int((MAX_PIXELS * 1.2) ** 0.5)
    packer = zlib.compressobj(9)
    row = b"\x00" + bytes(side)  # filter byte 0, then a black grayscale row
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


BAD_FILES = {
    "empty": (b"", "empty"),
    "truncated": (encode(noise_rgb(), "PNG")[:20_000], "damaged or incomplete"),
    "truncated_jpeg": (encode(noise_rgb(), "JPEG")[:20_000], "damaged or incomplete"),
    "text_renamed_png": (b"this is a shopping list, not a picture\n" * 20, "not an image"),
    "pdf": (b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", "not an image"),
    "absurd_dimensions": (png_header_only(100_000, 1), "larger than this app accepts"),
    "too_many_pixels": (png_header_only(15_000, 15_000), "larger than this app accepts"),
    "decompression_bomb": (real_bomb(), "larger than this app accepts"),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_files_raise_one_clear_error(kind):
    data, phrase = BAD_FILES[kind]
    with pytest.raises(ImageError) as info:
        load_image(data, name="“upload.png”")
    message = str(info.value)
    assert phrase in message
    assert message.endswith((".", ")", ").")) and "Traceback" not in message
    assert "upload.png" in message


def test_samples_ship_and_decode():
    samples = sample_images()
    assert len(samples) >= 4
    for name, img in samples.items():
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3, name


def test_real_shared_images_decode(shared_images):
    paths = sorted(p for p in shared_images.rglob("*") if p.suffix.lower() in {".png", ".jpg", ".jpeg"})
    assert len(paths) >= 20
    for path in paths:
        img = load_image_file(path)
        assert img.dtype == np.uint8 and img.shape[2] == 3 and max(img.shape[:2]) <= WORK_SIDE


def test_thumbnail_keeps_aspect_never_enlarges_and_is_the_trainers_too():
    from cnnviz.images import THUMB_SIDE, thumbnail
    from cnnviz.train import transfer

    wide = np.asarray(noise_rgb(400, 300))
    thumb = thumbnail(wide)
    assert thumb.shape == (72, THUMB_SIDE, 3) and thumb.dtype == np.uint8
    assert thumbnail(wide, 50).shape == (38, 50, 3)
    small = wide[:20, :30]
    again = thumbnail(small)
    np.testing.assert_array_equal(again, small)
    assert not np.shares_memory(again, small)
    # A flat colour stays that colour (the filter keeps levels).
    flat = np.full((300, 200, 3), (10, 120, 250), np.uint8)
    assert np.abs(thumbnail(flat).astype(int) - (10, 120, 250)).max() <= 1
    assert transfer.thumbnail is thumbnail and transfer.THUMB_SIDE == THUMB_SIDE


def test_pictures_are_encoded_for_display_in_their_own_colours():
    """show_image sends OpenCV-encoded bytes: red stays red (not BGR), alpha survives as PNG, grey stays grey."""
    import io

    from PIL import Image

    from cnnviz.images import encode_for_display

    red = np.zeros((16, 24, 3), np.uint8)
    red[..., 0] = 220
    data, fmt = encode_for_display(red)
    back = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)
    assert fmt == "JPEG" and back.shape == (16, 24, 3)
    assert np.abs(back - red).max() <= 3
    rgba = np.dstack([red, np.full((16, 24), 128, np.uint8)])
    data, fmt = encode_for_display(rgba)
    assert fmt == "PNG" and np.array_equal(np.asarray(Image.open(io.BytesIO(data))), rgba)
    ramp = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (8, 1))[..., None]
    data, fmt = encode_for_display(ramp)
    back = np.asarray(Image.open(io.BytesIO(data)))
    assert fmt == "JPEG" and back.shape == (8, 16) and np.abs(back.astype(int) - ramp[..., 0]).max() <= 3
    with pytest.raises(ValueError):
        encode_for_display(np.zeros((4, 4, 2), np.uint8))
