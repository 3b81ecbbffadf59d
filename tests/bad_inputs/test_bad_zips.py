"""Hostile and broken zips of images (trainer and audit): sentences, every good image kept, bounded cost."""

from __future__ import annotations

import zipfile

import pytest

from tests.bad_inputs import hostile
from tests.bad_inputs.conftest import plain_sentence

MAX_EXTRA_MB = 400


def _run(run_files, tmp_path, kind: str, data: bytes, call: str = "zip", env=None, timeout=60, **args) -> dict:
    path = tmp_path / "upload.zip"
    path.write_bytes(data)
    report = run_files([{"kind": kind, "call": call, "path": path, "args": args}], env=env, timeout=timeout)[kind]
    assert report["outcome"] in ("ok", "refused"), report
    assert report["extra_mb"] < MAX_EXTRA_MB, report
    return report


def _skipped(report: dict) -> list[str]:
    lines = report["result"]["skipped"]
    for line in lines:
        plain_sentence(line)
    return lines


def test_damaged_deflate_data_is_one_skipped_line_and_the_rest_is_read(run_files, tmp_path):
    good = hostile.make_zip(
        [("cats/a.png", hostile.png(1)), ("cats/b.png", hostile.png(2)), ("dogs/c.png", hostile.png(3))],
        compression=zipfile.ZIP_DEFLATED,
    )
    report = _run(run_files, tmp_path, "damaged deflate", hostile.damage_deflate(good, "cats/b.png"))
    assert report["outcome"] == "ok"
    assert [i["path"] for i in report["result"]["images"]] == ["cats/a.png", "dogs/c.png"]
    assert _skipped(report) == [
        "“cats/b.png” is damaged inside the zip (its compressed data cannot be unpacked) and was skipped."
    ]


def test_an_entry_without_a_name_is_skipped(run_files, tmp_path):
    data = hostile.make_zip(
        [(zipfile.ZipInfo(""), b"x"), ("cats/a.png", hostile.png(1)), ("dogs/b.png", hostile.png(2))]
    )
    report = _run(run_files, tmp_path, "empty member name", data)
    assert len(report["result"]["images"]) == 2
    assert _skipped(report) == ["“” has no name and was ignored."]


def test_the_same_path_twice_and_one_name_in_two_folders_keep_every_picture(run_files, tmp_path):
    data = hostile.make_zip(
        [
            ("cats/x.png", hostile.png(1)),
            ("cats/x.png", hostile.png(2)),
            ("dogs/x.png", hostile.png(3)),
            ("dogs\\x.png", hostile.png(4)),
        ]
    )
    report = _run(run_files, tmp_path, "duplicate names", data)
    images = report["result"]["images"]
    assert [i["path"] for i in images] == ["cats/x.png", "cats/x.png (copy 2)", "dogs/x.png", "dogs/x.png (copy 2)"]
    assert len({i["sum"] for i in images}) == 4, "two entries were read as the same picture"
    assert [i["label"] for i in images] == ["cats", "cats", "dogs", "dogs"]


def test_blank_and_control_character_folder_names(run_files, tmp_path):
    data = hostile.make_zip(
        [("   /a.png", hostile.png(1)), ("two\nlines/b.png", hostile.png(2)), ("ok/c.png", hostile.png(3))]
    )
    report = _run(run_files, tmp_path, "odd folder names", data)
    assert report["result"]["classes"] == ["two lines", "ok"]
    assert any("folder whose name is blank" in s for s in _skipped(report))


@pytest.mark.parametrize(
    "kind, data, words",
    [
        (
            "zip slip",
            hostile.make_zip(
                [
                    ("../../evil.png", hostile.png(1)),
                    ("/etc/evil.png", hostile.png(2)),
                    ("C:/evil.png", hostile.png(3)),
                    ("ok/a.png", hostile.png(4)),
                ]
            ),
            ["climb out of its folder", "absolute path", "absolute path"],
        ),
        ("symlink", hostile.symlink_zip(), ["is a link, not a file"]),
        ("zip bomb entry", hostile.zip_bomb_entry(), ["zip bomb"]),
        (
            "nested zip",
            hostile.make_zip(
                [
                    ("a/inner.zip", hostile.make_zip([("x/y.png", hostile.png(1))])),
                    ("a/ok.png", hostile.png(2)),
                    ("b/ok.png", hostile.png(3)),
                ]
            ),
            ["archive inside the zip"],
        ),
        (
            "hidden files",
            hostile.make_zip([("__MACOSX/a/._x.png", b"junk"), ("a/.DS_Store", b"junk"), ("a/ok.png", hostile.png(1))]),
            ["hidden or system file", "hidden or system file"],
        ),
    ],
)
def test_already_refused_entries_each_get_a_sentence(kind, data, words, run_files, tmp_path):
    report = _run(run_files, tmp_path, kind, data)
    lines = _skipped(report)
    assert len(lines) == len(words) and all(w in line for w, line in zip(words, lines)), lines


@pytest.mark.slow
def test_not_a_zip_and_too_many_entries_are_refused(run_files, tmp_path):
    assert "not a readable zip" in plain_sentence(
        _run(run_files, tmp_path, "not a zip", b"PK\x03\x04 cut off")["sentence"]
    )
    report = _run(run_files, tmp_path, "100 000 entries", hostile.many_entries_zip(100_000))
    assert report["outcome"] == "refused" and report["seconds"] < 10
    assert "holds 100,000 entries; at most 6,000 are accepted" in plain_sentence(report["sentence"])


def test_5990_claimed_100_megapixel_webps_cost_seconds_not_hours(run_files, tmp_path):
    bomb = hostile.webp_claiming(10_000, 10_000)
    data = hostile.make_zip([(f"c/{i}.webp", bomb) for i in range(5990)])
    report = _run(run_files, tmp_path, "5990 × 100 MP WebP", data, timeout=120)
    assert report["seconds"] < 30, report
    assert report["result"]["images"] == []
    lines = report["result"]["skipped"]
    assert len(lines) == 5990 and "decodes at most 25 megapixels" in plain_sentence(lines[0])


def test_total_decoded_pixels_per_zip_are_capped(run_files, tmp_path):
    big = hostile.real_png_pixels(3000, 3000)  # 9 MP each
    data = hostile.make_zip([(f"c/{i}.png", big) for i in range(8)] + [("d/z.png", hostile.png(1))])
    report = _run(run_files, tmp_path, "pixels per zip", data, env={"CNNVIZ_MAX_ZIP_PIXELS": "20000000"})
    assert len(report["result"]["images"]) == 2  # 18 MP decoded, the third would pass 20 MP
    last = _skipped(report)[-1]
    assert last.startswith("7 images from “c/2.png” on were not read") and "billion pixels" in last


@pytest.mark.slow
def test_audit_probe_zip_keeps_model_sized_arrays_of_at_most_500_images(run_files, tmp_path):
    # Before: 5 990 PNGs of 512 × 512 were all kept fully decoded (4.5 GB).
    pictures = [hostile.flat_png(512, 20 * v) for v in range(10)]
    data = hostile.make_zip([(f"probe_{i}.png", pictures[i % 10]) for i in range(5990)])
    report = _run(run_files, tmp_path, "audit zip 5990 × 512²", data, call="audit_zip", timeout=120)
    result = report["result"]
    assert result["n"] == 500 and result["max_side"] == 224
    assert result["bytes"] == 500 * 224 * 224 * 3
    assert result["skipped"][-1] == "5,490 more images were not read: 500 images are enough for this step."
    assert report["seconds"] < 30
