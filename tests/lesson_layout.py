"""Build a lesson-layout zip (training/<topic>/, testing/<topic>/) from ../shared/images in a temp dir.

The images are read from ../shared and written only into the caller's temporary folder,
never into the repository.
"""

from __future__ import annotations

import io
import math
import zipfile
from pathlib import Path

from PIL import Image

TOPICS = ("animals", "landscape", "portrait", "religious", "seascape", "still-life")


def lesson_split(shared_images: Path) -> dict[str, dict[str, list[Path]]]:
    """``{"training": {topic: [paths]}, "testing": {topic: [paths]}}``: the last third of each topic (sorted) is for testing."""
    split: dict[str, dict[str, list[Path]]] = {"training": {}, "testing": {}}
    for topic in TOPICS:
        files = sorted((shared_images / "paintings" / topic).iterdir())
        n_test = math.ceil(len(files) / 3)
        split["training"][topic] = files[:-n_test]
        split["testing"][topic] = files[-n_test:]
    return split


def lesson_zip(shared_images: Path, *, side: int | None = None) -> bytes:
    """The zip's bytes. With ``side``, every image is resized to ``side × side`` PNG first."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for part, topics in lesson_split(shared_images).items():
            for topic, files in topics.items():
                for path in files:
                    if side is None:
                        archive.write(path, f"paintings/{part}/{topic}/{path.name}")
                    else:
                        png = io.BytesIO()
                        Image.open(path).convert("RGB").resize((side, side), Image.Resampling.BILINEAR).save(
                            png, format="PNG"
                        )
                        archive.writestr(f"paintings/{part}/{topic}/{Path(path.name).stem}.png", png.getvalue())
    return buffer.getvalue()
