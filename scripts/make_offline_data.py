"""Rebuild the file that gives a fresh clone ImageNet class names offline.

``data/imagenet_class_index.json`` comes from keras-hub's ``IMAGENET_NAMES`` (Apache-2.0, the
Keras team's copy of the file ``keras.applications`` downloads), fetched with pip's ordinary
client (``pip download --no-deps``, nothing installed, nothing imported from it) and written in
Keras's own format ``{"281": ["n02123045", "tabby"], ...}``. (The sample photographs are read
from ``../shared/images`` at run time: see ``cnnviz.images.SHARED_PHOTOS``.)

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
CLASS_INDEX = ROOT / "data" / "imagenet_class_index.json"


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


if __name__ == "__main__":
    main()
