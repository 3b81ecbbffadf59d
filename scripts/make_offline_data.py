"""Rebuild the files that let a fresh clone work offline: ImageNet class names and two sample photos.

Both come from data that well-kept PyPI packages ship, fetched with pip's ordinary client
(``pip download --no-deps``, nothing installed, nothing imported from them):

- ``data/imagenet_class_index.json`` from keras-hub's ``IMAGENET_NAMES`` (Apache-2.0, the Keras
  team's copy of the file ``keras.applications`` downloads), written in Keras's own format
  ``{"281": ["n02123045", "tabby"], ...}``.
- ``data/samples/06-chelsea_the_cat.png`` and ``07-cup_of_coffee.png``, scikit-image's
  ``data/chelsea.png`` and ``data/coffee.png`` (both CC0), copied byte for byte.

Provenance and licences: ``data/PROVENANCE.md``. Run (needs the package index once):
``.venv/bin/python scripts/make_offline_data.py``
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KERAS_HUB = "keras-hub==0.32.0"
SCIKIT_IMAGE = "scikit-image==0.26.0"
CLASS_INDEX = ROOT / "data" / "imagenet_class_index.json"
PHOTOS = {
    "skimage/data/chelsea.png": ROOT / "data" / "samples" / "06-chelsea_the_cat.png",
    "skimage/data/coffee.png": ROOT / "data" / "samples" / "07-cup_of_coffee.png",
}


def download_wheel(requirement: str, folder: Path) -> Path:
    """The wheel of ``requirement`` (pinned), downloaded without its dependencies."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "-q",
            "-d",
            str(folder),
            requirement,
        ],
        check=True,
    )
    name = requirement.split("==")[0].replace("-", "_")
    (wheel,) = folder.glob(f"{name}-*.whl")
    return wheel


def imagenet_names(source: str) -> dict[str, list[str]]:
    """``{"0": [synset, name], ...}`` from the ``IMAGENET_NAMES = {0: (synset, name), ...}`` literal.

    Read with ``ast.literal_eval`` so keras-hub (and its dependencies) is never imported.
    """
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "IMAGENET_NAMES" for t in node.targets):
            table = ast.literal_eval(node.value)
            index = {str(i): list(table[i]) for i in range(1000)}
            if len(table) != 1000:
                raise ValueError(f"expected 1000 ImageNet classes, found {len(table)}")
            return index
    raise ValueError("IMAGENET_NAMES not found in keras-hub's imagenet_utils.py")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with zipfile.ZipFile(download_wheel(KERAS_HUB, folder)) as wheel:
            source = wheel.read("keras_hub/src/utils/imagenet/imagenet_utils.py").decode()
        CLASS_INDEX.write_text(json.dumps(imagenet_names(source)) + "\n")
        print("wrote", CLASS_INDEX)
        with zipfile.ZipFile(download_wheel(SCIKIT_IMAGE, folder)) as wheel:
            for member, target in PHOTOS.items():
                target.write_bytes(wheel.read(member))
                print("wrote", target)


if __name__ == "__main__":
    main()
