"""Generators of hostile and broken files, made in memory in milliseconds (nothing is committed).

Each returns the bytes a visitor could upload. Bombs are made by writing a small valid file and
then patching its header to claim a huge size, so the generator itself never holds the pixels.
"""

from __future__ import annotations

import io
import json
import pickle
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

INJECTION_NAME = "[Log in again](https://evil.example) ![](http://127.0.0.1:9/px.png) <img src=x onerror=alert(1)>.png"


# --------------------------------------------------------------------------- images
def encode(array: np.ndarray, fmt: str = "PNG", mode: str | None = None, **params) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, fmt, **params) if mode else Image.fromarray(array).save(buf, fmt, **params)
    return buf.getvalue()


def png(seed: int = 0, size: tuple[int, int] = (32, 32)) -> bytes:
    rng = np.random.default_rng(seed)
    return encode(rng.integers(0, 256, (*size, 3), dtype=np.uint8))


def flat_png(side: int = 512, value: int = 90) -> bytes:
    """A compressible picture (a few kB) of ``side`` × ``side`` pixels with one dark line."""
    image = np.full((side, side, 3), value, np.uint8)
    image[side // 2] = 0
    return encode(image)


def _exif(extra: list[tuple[int, int, int, bytes]]) -> bytes:
    """A little-endian EXIF block: orientation 6 (turn 90° clockwise) plus ``extra`` raw IFD entries."""
    entries = sorted([(0x0112, 3, 1, struct.pack("<HH", 6, 0))] + extra)
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHI", t, ty, c) + v for t, ty, c, v in entries)
    return b"Exif\x00\x00" + b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0)


def exif_wrong_type(fmt: str = "JPEG") -> bytes:
    """A 48 × 64 photo, top rows white, whose ImageWidth tag is text: Pillow's rewrite raises struct.error."""
    image = np.zeros((64, 48, 3), np.uint8)
    image[:8] = 255
    return encode(image, fmt, exif=_exif([(0x0100, 2, 4, b"abc\x00")]), quality=95)


def bigtiff_strip_offset(offset: int = 2**63 + 5) -> bytes:
    """A 16 × 16 BigTIFF whose strip starts past 2**63 bytes: Pillow's seek raises OverflowError."""
    tags = [
        (256, 3, 1, 16),
        (257, 3, 1, 16),
        (258, 3, 1, 8),
        (259, 3, 1, 1),
        (262, 3, 1, 1),
        (273, 16, 1, offset),
        (277, 3, 1, 1),
        (278, 3, 1, 16),
        (279, 16, 1, 256),
    ]
    head = b"II" + struct.pack("<HHHQ", 43, 8, 0, 16)
    body = b"".join(
        struct.pack("<HHQ", t, ty, c) + (struct.pack("<Q", v) if ty == 16 else struct.pack("<HHHH", v, 0, 0, 0))
        for t, ty, c, v in tags
    )
    return head + struct.pack("<Q", len(tags)) + body + struct.pack("<Q", 0) + bytes(256)


def webp_claiming(width: int, height: int) -> bytes:
    """A ~40-byte lossless WebP whose header claims ``width`` × ``height`` (at most 16 384 each)."""
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 10, 10)).save(buf, "WEBP", lossless=True)
    data = bytearray(buf.getvalue())
    at = data.index(b"VP8L") + 9
    bits = int.from_bytes(data[at : at + 4], "little")
    bits = (bits & ~((1 << 28) - 1)) | (width - 1) | ((height - 1) << 14)
    data[at : at + 4] = bits.to_bytes(4, "little")
    return bytes(data)


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose IHDR claims ``width`` × ``height`` (CRC fixed, so only the size lies)."""
    data = bytearray(png(0, (8, 8)))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr : ihdr + 17])))
    return bytes(data)


def real_png_pixels(width: int, height: int) -> bytes:
    """A real, fully decodable PNG of ``width`` × ``height`` black pixels (compresses ~1000:1)."""
    raw = b"".join(b"\x00" + bytes(width) for _ in range(height))  # filter byte + gray row

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 1))
        + chunk(b"IEND", b"")
    )


def gradient16(fmt: str = "PNG", width: int = 2000, height: int = 400) -> bytes:
    """16-bit grayscale 0 → 65535 left to right, larger than the working size (as museum scans are)."""
    return encode(np.tile(np.linspace(0, 65535, width).astype(np.uint16), (height, 1)), fmt)


def float_tiff(width: int = 2000, height: int = 400) -> bytes:
    """32-bit float TIFF with values 0 → 1 left to right."""
    return encode(np.tile(np.linspace(0, 1, width, dtype=np.float32), (height, 1)), "TIFF", mode="F")


def int32_png_range(width: int = 64, height: int = 32) -> bytes:
    """Mode I (32-bit integer) image 0 → 65535, as Pillow opens many 16-bit TIFF variants."""
    return encode(np.tile(np.linspace(0, 65535, width).astype(np.int32), (height, 1)), "TIFF", mode="I")


def la_half_transparent() -> bytes:
    """Gray + alpha: black at alpha 0 on the left half, black opaque on the right."""
    la = np.zeros((32, 64, 2), np.uint8)
    la[:, 32:, 1] = 255
    return encode(la, "PNG", mode="LA")


def palette_transparent() -> bytes:
    """A palette PNG whose index 0 (red) is transparent: it must come out white, not red."""
    img = Image.new("P", (32, 32), 0)
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.paste(1, (16, 0, 32, 32))
    buf = io.BytesIO()
    img.save(buf, "PNG", transparency=0)
    return buf.getvalue()


def cmyk_jpeg() -> bytes:
    """A CMYK JPEG of pure cyan (C=255): RGB ≈ (0, 255, 255)."""
    buf = io.BytesIO()
    Image.new("CMYK", (32, 32), (255, 0, 0, 0)).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def truncated_png() -> bytes:
    data = png(1, (64, 64))
    return data[: len(data) // 2]


SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><image href="http://127.0.0.1:9/x.png"/></svg>'
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)
AVIF = b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf" + bytes(64)


def ico() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (1, 2, 3)).save(buf, "ICO")
    return buf.getvalue()


# --------------------------------------------------------------------------- zips
def make_zip(members: Sequence[tuple[str | zipfile.ZipInfo, bytes]], compression: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as archive:
        for name, data in members:
            with __import__("warnings").catch_warnings():
                __import__("warnings").simplefilter("ignore")  # "Duplicate name" is the point
                archive.writestr(name, data)
    return buf.getvalue()


def damage_deflate(data: bytes, member: str) -> bytes:
    """Overwrite the middle of ``member``'s compressed bytes, headers and directory intact (bit rot)."""
    archive = zipfile.ZipFile(io.BytesIO(data))
    info = archive.getinfo(member)
    assert info.compress_type == zipfile.ZIP_DEFLATED
    out = bytearray(data)
    name_len, extra_len = struct.unpack("<HH", out[info.header_offset + 26 : info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len
    for i in range(start, start + max(4, info.compress_size)):
        out[i] = 0xFF  # 0b11 block type: invalid in deflate, zlib raises
    return bytes(out)


def symlink_zip() -> bytes:
    info = zipfile.ZipInfo("cats/passwd.png")
    info.external_attr = 0o120777 << 16
    return make_zip([(info, b"/etc/passwd"), ("cats/ok.png", png(1)), ("dogs/ok.png", png(2))])


def many_entries_zip(n: int = 100_000) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for i in range(n):
            archive.writestr(f"c/{i}.png", b"")
    return buf.getvalue()


def zip_bomb_entry() -> bytes:
    """One entry of 200 MB of zeros deflated to ~200 kB (ratio ~1000)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("cats/bomb.png", "w") as handle:
            block = bytes(1 << 20)
            for _ in range(40):
                handle.write(block)
    return buf.getvalue()


# --------------------------------------------------------------------------- models
def _keras():
    import keras

    return keras


def save_model(model, folder: Path, name: str = "model.keras") -> bytes:
    path = folder / name
    model.save(path)
    return path.read_bytes()


def tiny_classifier(input_shape=(16, 16, 3), classes: int = 2):
    keras = _keras()
    keras.utils.set_random_seed(0)
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(4, 3)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(x))


def rewrite_member(data: bytes, member: str, new: bytes, compression: int = zipfile.ZIP_STORED) -> bytes:
    """The same zip with ``member``'s bytes replaced (the others copied as they are)."""
    src = zipfile.ZipFile(io.BytesIO(data))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as out:
        for info in src.infolist():
            body = new if info.filename == member else src.read(info.filename)
            out.writestr(
                info.filename, body, compress_type=compression if info.filename == member else info.compress_type
            )
    return buf.getvalue()


def edit_config(data: bytes, change) -> bytes:
    config = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("config.json"))
    config = change(config)
    return rewrite_member(data, "config.json", json.dumps(config).encode())


def huge_dense_config(config: dict) -> dict:
    """Declare 64 → 100 000 → 30 000 units: about 3 billion parameters, in a few hundred bytes."""
    return {
        "module": "keras",
        "class_name": "Sequential",
        "registered_name": None,
        "config": {
            "name": "huge",
            "trainable": True,
            "layers": [
                {
                    "module": "keras.layers",
                    "class_name": "InputLayer",
                    "registered_name": None,
                    "config": {"batch_shape": [None, 8, 8, 1], "dtype": "float32", "name": "pixels"},
                },
                {
                    "module": "keras.layers",
                    "class_name": "Flatten",
                    "registered_name": None,
                    "config": {"name": "flat"},
                },
                {
                    "module": "keras.layers",
                    "class_name": "Dense",
                    "registered_name": None,
                    "config": {"name": "d1", "units": 100_000},
                },
                {
                    "module": "keras.layers",
                    "class_name": "Dense",
                    "registered_name": None,
                    "config": {"name": "d2", "units": 30_000},
                },
                {
                    "module": "keras.layers",
                    "class_name": "Dense",
                    "registered_name": None,
                    "config": {"name": "out", "units": 2, "activation": "softmax"},
                },
            ],
        },
    }


def deep_json(depth: int = 5000) -> bytes:
    return b'{"a": ' + b"[" * depth + b"]" * depth + b"}"


def nested_compile_lambda(config: dict) -> dict:
    """Wrap the model's layers in a sub-model whose own compile_config holds a Lambda loss."""
    inner = dict(config)
    inner["compile_config"] = {
        "loss": {
            "module": "keras.layers",
            "class_name": "__lambda__",
            "config": {"code": "4wEAAAAAAAAA", "defaults": None, "closure": None},
            "registered_name": None,
        },
        "optimizer": "adam",
    }
    outer = json.loads(json.dumps(config))
    outer["config"]["layers"] = [
        layer for layer in outer["config"]["layers"] if layer["class_name"] == "InputLayer"
    ] + [{**inner, "inbound_nodes": []}]
    return outer


def pickle_payload(marker: Path) -> bytes:
    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    return pickle.dumps(Payload())
