"""Zips from visitors: lesson layout understood, hostile entries refused with a reason, good images kept."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnviz.zips import MAX_ENTRIES, ZipError, iter_zip_images, plan_zip, read_image_zip

ROOT = Path(__file__).resolve().parents[1]


def png(seed: int = 0, size: tuple[int, int] = (24, 32)) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def make_zip(entries: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buf.getvalue()


def reasons_for(skipped: list[str], name: str) -> list[str]:
    return [line for line in skipped if name in line]


def test_lesson_layout_gives_classes_and_a_test_set():
    data = make_zip(
        {
            "training/portrait/a.png": png(1),
            "training/portrait/b.jpg": _jpeg(2),
            "training/landscape/c.png": png(3),
            "testing/d.png": png(4),
            "testing/seascape/e.png": png(5),
        }
    )
    contents = read_image_zip(data)
    assert contents.layout == "lesson"
    assert sorted(contents.training) == ["landscape", "portrait"]
    assert [z.name for z in contents.training["portrait"]] == ["a.png", "b.jpg"]
    assert {z.name: z.label for z in contents.testing} == {"d.png": None, "e.png": "seascape"}
    image = contents.training["landscape"][0].image
    assert image.dtype == np.uint8 and image.shape == (24, 32, 3)
    # Pixels survive the trip through the zip exactly (PNG is lossless).
    assert np.array_equal(image, np.asarray(Image.open(io.BytesIO(png(3))).convert("RGB")))
    assert contents.skipped == []


def test_plain_layout_and_a_common_top_folder():
    plain = read_image_zip(make_zip({"cats/1.png": png(1), "dogs/2.png": png(2), "loose.png": png(3)}))
    assert plain.layout == "plain"
    assert sorted(plain.training) == ["cats", "dogs"]
    assert reasons_for(plain.skipped, "loose.png") and "class folder" in plain.skipped[0]

    wrapped = read_image_zip(
        make_zip(
            {
                "paintings/training/a/1.png": png(1),
                "paintings/training/b/2.png": png(2),
                "paintings/testing/3.png": png(3),
            }
        )
    )
    assert wrapped.layout == "lesson" and sorted(wrapped.training) == ["a", "b"] and len(wrapped.testing) == 1


def test_zip_slip_absolute_and_hidden_paths_are_ignored_with_reasons_and_good_images_kept():
    data = make_zip(
        {
            "training/a/good.png": png(1),
            "training/b/good.png": png(2),
            "../../etc/evil.png": png(3),
            "training/a/../../../evil2.png": png(4),
            "/absolute/evil3.png": png(5),
            "C:\\windows\\evil4.png": png(6),
            "__MACOSX/training/a/._good.png": b"\x00\x05\x16\x07junk",
            "training/a/.DS_Store": b"Bud1",
            "training/a/.hidden.png": png(7),
        }
    )
    contents = read_image_zip(data)
    assert [z.name for z in contents.training["a"]] == ["good.png"]
    assert [z.name for z in contents.training["b"]] == ["good.png"]
    assert "climb out" in reasons_for(contents.skipped, "etc/evil.png")[0]
    assert "climb out" in reasons_for(contents.skipped, "evil2.png")[0]
    assert "absolute path" in reasons_for(contents.skipped, "evil3.png")[0]
    assert "absolute path" in reasons_for(contents.skipped, "evil4.png")[0]
    assert "hidden or system" in reasons_for(contents.skipped, "__MACOSX")[0]
    assert "hidden or system" in reasons_for(contents.skipped, ".DS_Store")[0]
    assert "hidden or system" in reasons_for(contents.skipped, ".hidden.png")[0]
    assert len(contents.skipped) == 7


def test_zip_bomb_entry_is_refused_by_its_compression_ratio():
    bomb = b"\x00" * (20 * 1024 * 1024)  # 20 MB of zeros deflate to ~20 kB: ratio ~1000
    data = make_zip({"training/a/bomb.png": bomb, "training/a/ok.png": png(1), "training/b/ok.png": png(2)})
    assert len(data) < 200_000
    contents = read_image_zip(data)
    assert [z.name for z in contents.training["a"]] == ["ok.png"]
    (reason,) = reasons_for(contents.skipped, "bomb.png")
    assert "zip bomb" in reason and "refused" in reason


def test_total_uncompressed_size_is_capped():
    data = make_zip({f"training/a/{i}.png": png(i) for i in range(4)})
    plan = plan_zip(data, max_total_bytes=len(png(0)) * 2 + 10)
    assert len(plan.entries) == 2
    assert sum("add up to more than" in line for line in plan.skipped) == 2


def test_ten_thousand_tiny_entries_are_refused_with_a_clear_sentence():
    data = make_zip({f"training/a/{i}.png": b"x" for i in range(10_000)}, compression=zipfile.ZIP_STORED)
    with pytest.raises(ZipError) as err:
        read_image_zip(data, zip_name="“many.zip”")
    message = str(err.value)
    assert "10,000 entries" in message and f"{MAX_ENTRIES:,}" in message and "split" in message


def test_nested_zip_and_non_images_are_skipped_and_listed():
    inner = make_zip({"training/a/x.png": png(1)})
    data = make_zip(
        {
            "training/a/inner.zip": inner,
            "training/a/sneaky.png": inner,  # a zip pretending to be a PNG
            "training/a/notes.txt": b"hello",
            "training/a/table.csv": b"a,b",
            "training/a/broken.png": png(2)[:60],  # truncated image
            "training/a/fake.jpg": b"not an image at all",
            "training/a/ok.png": png(3),
            "training/b/ok.png": png(4),
        }
    )
    contents = read_image_zip(data)
    assert [z.name for z in contents.training["a"]] == ["ok.png"]
    assert "nested" in reasons_for(contents.skipped, "inner.zip")[0]
    assert "zip inside the zip" in reasons_for(contents.skipped, "sneaky.png")[0]
    assert "not an image (.txt)" in reasons_for(contents.skipped, "notes.txt")[0]
    assert "not an image (.csv)" in reasons_for(contents.skipped, "table.csv")[0]
    assert "damaged or incomplete" in reasons_for(contents.skipped, "broken.png")[0]
    assert "not an image this app can read" in reasons_for(contents.skipped, "fake.jpg")[0]
    assert len(contents.skipped) == 6


@pytest.mark.parametrize(
    "data, phrase",
    [
        (b"", "empty"),
        (b"this is not a zip file at all", "not a readable zip"),
        (make_zip({"training/a/x.png": png(1)})[:-30], "not a readable zip"),  # cut-off download
    ],
)
def test_corrupt_zips_raise_one_sentence(data, phrase):
    with pytest.raises(ZipError) as err:
        read_image_zip(data)
    assert phrase in str(err.value)
    assert str(err.value).endswith(".")


def test_damaged_entry_data_is_skipped_not_fatal():
    data = bytearray(
        make_zip({"training/a/ok.png": png(1), "training/b/x.png": png(2)}, compression=zipfile.ZIP_STORED)
    )
    start = data.index(b"training/b/x.png") + len("training/b/x.png") + 20  # inside x.png's stored bytes
    data[start] ^= 0xFF  # CRC no longer matches
    contents = read_image_zip(bytes(data))
    assert [z.name for z in contents.training["a"]] == ["ok.png"]
    assert "damaged" in reasons_for(contents.skipped, "x.png")[0]


def _jpeg(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def test_loose_images_are_kept_unlabelled_only_when_asked():
    data = make_zip({"kandinsky.png": png(1), "mondrian.png": png(2), "notes.txt": b"hi"})
    trainer_view = read_image_zip(data)  # a trainer needs classes: loose images are skipped, with a reason
    assert not trainer_view.training and not trainer_view.testing
    assert "class folder" in reasons_for(trainer_view.skipped, "kandinsky.png")[0]
    probes = read_image_zip(data, loose_images=True)  # an audit's probe set needs none
    assert sorted(i.name for i in probes.testing) == ["kandinsky.png", "mondrian.png"]
    assert all(i.label is None for i in probes.testing)
    assert reasons_for(probes.skipped, "notes.txt")


def test_a_visitors_pixel_budget_stops_the_next_zip_and_upload_with_one_sentence():
    """Decoding cost is bounded per visitor too: five costly zips in a row cannot keep a core busy for hours."""
    from cnnviz.images import ImageError, load_image
    from cnnviz.limits import PixelBudget

    def png(side: int) -> bytes:
        out = io.BytesIO()
        Image.fromarray(np.zeros((side, side, 3), np.uint8)).save(out, "PNG")
        return out.getvalue()

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        for i in range(4):
            z.writestr(f"a/{i}.png", png(100))  # 10 000 pixels each
    data = archive.getvalue()
    budget = PixelBudget(total=25_000)
    plan = plan_zip(data)
    read = list(iter_zip_images(data, plan, budget=budget))
    assert len(read) == 2 and budget.used == 20_000
    assert "as many pictures as this server allows one visitor" in plan.skipped[-1]
    with pytest.raises(ImageError, match="allows one visitor"):
        load_image(png(100), budget=budget)
    assert budget.used == 20_000  # a refused picture costs nothing
    load_image(png(50), budget=budget)  # 2 500 pixels still fit
    assert budget.used == 22_500
