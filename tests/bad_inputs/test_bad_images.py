"""Hostile and broken images, each in its own process: a sentence or a true picture, bounded memory and time."""

from __future__ import annotations

import pytest

from tests.bad_inputs import hostile
from tests.bad_inputs.conftest import plain_sentence

# Extra memory (beyond the child's imports) and seconds any single image may cost.
MAX_EXTRA_MB = 400
MAX_SECONDS = 10

REFUSED = {
    # kind: (bytes, words the sentence must contain)
    "empty file": (b"", "is empty (0 bytes)"),
    "truncated PNG": (hostile.truncated_png(), "looks damaged or incomplete"),
    "text renamed .png": (b"hello, I am a text file", "is not an image this app can read"),
    "SVG": (hostile.SVG, "is not an image this app can read"),
    "PDF": (hostile.PDF, "is not an image this app can read"),
    "EPS": (hostile.EPS, "is not an image this app can read"),
    "HEIC": (hostile.HEIC, "is not an image this app can read"),
    "AVIF": (hostile.AVIF, "is not an image this app can read"),
    "ICO": (hostile.ico(), "is not an image this app can read"),
    "PNG claiming 30 000²": (hostile.png_claiming(30_000, 30_000), "larger than this app accepts"),
    "PNG claiming 65 000²": (hostile.png_claiming(65_000, 65_000), "larger than this app accepts"),
    "lossless WebP 10 000² (100 MP)": (hostile.webp_claiming(10_000, 10_000), "decodes at most 25 megapixels"),
    "lossless WebP 16 384 × 4 000": (hostile.webp_claiming(16_384, 4_000), "decodes at most 25 megapixels"),
    "long strip 1 × 90 000": (hostile.png_claiming(1, 90_000), "larger than this app accepts"),
    "1 pixel wide": (hostile.encode(hostile.np.zeros((300, 1, 3), "uint8")), "at least 4 pixels on each side"),
    "1 × 1": (hostile.encode(hostile.np.zeros((1, 1, 3), "uint8")), "at least 4 pixels on each side"),
    "strip 12:1": (hostile.encode(hostile.np.zeros((20, 240, 3), "uint8")), "more than 10 times longer"),
    "TIFF strip offset past 2**63": (hostile.bigtiff_strip_offset(), "looks damaged or incomplete"),
}


@pytest.mark.parametrize("kind", list(REFUSED))
def test_refused_with_one_plain_sentence(kind, run_files, tmp_path):
    data, words = REFUSED[kind]
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    report = run_files([{"kind": kind, "call": "image", "path": path}])[kind]
    assert report["outcome"] == "refused", report
    assert words in plain_sentence(report["sentence"])
    assert "“upload”" in report["sentence"]  # says which file
    assert report["extra_mb"] < MAX_EXTRA_MB and report["seconds"] < MAX_SECONDS, report


def _decoded(run_files, tmp_path, kind: str, data: bytes, **args) -> dict:
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    report = run_files([{"kind": kind, "call": "image", "path": path, "args": args}])[kind]
    assert report["outcome"] == "ok", report
    assert report["extra_mb"] < MAX_EXTRA_MB and report["seconds"] < MAX_SECONDS, report
    return report["result"]


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
def test_exif_tag_of_the_wrong_type_still_gives_the_upright_picture(fmt, run_files, tmp_path):
    # Before: struct.error escaped from ImageOps.exif_transpose. The orientation tag says "turn 90°
    # clockwise", so the white top rows of the 48 × 64 original become the right-hand columns.
    result = _decoded(run_files, tmp_path, f"EXIF wrong type ({fmt})", hostile.exif_wrong_type(fmt))
    assert result["shape"] == [48, 64, 3]
    assert result["row0"][-1] > 200 and result["row0"][0] < 50


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16_bit_gradient_keeps_its_range_when_shrunk(fmt, run_files, tmp_path):
    # Before: 0 → 65535 came out as 249…255 (clipped to white before resizing).
    result = _decoded(run_files, tmp_path, f"16-bit {fmt}", hostile.gradient16(fmt))
    assert result["shape"] == [205, 1024, 3]
    row = result["row0"]
    assert row[0] <= 2 and row[-1] >= 250 and row == sorted(row)
    assert 100 < result["mean"] < 155


def test_float_tiff_0_to_1_is_a_gradient_not_black(run_files, tmp_path):
    result = _decoded(run_files, tmp_path, "float TIFF 0…1", hostile.float_tiff())
    row = result["row0"]
    assert row[0] <= 2 and row[-1] >= 250 and 100 < result["mean"] < 155


def test_32_bit_integer_image_is_scaled_by_its_16_bit_range(run_files, tmp_path):
    result = _decoded(run_files, tmp_path, "mode I", hostile.int32_png_range())
    assert result["row0"][0] == 0 and result["row0"][-1] >= 250


def test_transparent_gray_and_palette_images_sit_on_white(run_files, tmp_path):
    la = _decoded(run_files, tmp_path, "LA", hostile.la_half_transparent())
    assert la["corner"] == [255, 255, 255] and la["row0"][-1] == 0  # transparent left white, opaque right black
    palette = _decoded(run_files, tmp_path, "P + transparency", hostile.palette_transparent())
    assert palette["corner"] == [255, 255, 255]  # the transparent red index shows as white, not red


def test_cmyk_jpeg_keeps_its_colour(run_files, tmp_path):
    result = _decoded(run_files, tmp_path, "CMYK", hostile.cmyk_jpeg())
    red, green, blue = result["corner"]
    assert red < 40 and green > 215 and blue > 215


def test_largest_accepted_png_costs_bounded_memory(run_files, tmp_path):
    # 5 000 × 5 000 = 25 MP, exactly at CNNVIZ_MAX_DECODE_PIXELS: decoded in full, then shrunk.
    result = _decoded(run_files, tmp_path, "PNG 25 MP", hostile.real_png_pixels(5000, 5000))
    assert result["shape"] == [1024, 1024, 3]


def test_decode_limit_is_set_by_the_environment(run_files, tmp_path):
    path = tmp_path / "upload.bin"
    path.write_bytes(hostile.real_png_pixels(1200, 1200))
    jobs = [{"kind": "1.44 MP", "call": "image", "path": path}]
    report = run_files(jobs, env={"CNNVIZ_MAX_DECODE_PIXELS": "1000000"})["1.44 MP"]
    assert report["outcome"] == "refused" and "decodes at most 1 megapixels" in plain_sentence(report["sentence"])
    assert run_files(jobs)["1.44 MP"]["outcome"] == "ok"  # the default accepts it
