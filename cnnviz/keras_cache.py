"""Where Keras keeps downloaded files, and ImageNet's class names, without importing TensorFlow.

Keras caches what it downloads under ``$KERAS_HOME`` (default ``~/.keras``): weights and the
ImageNet class index in ``models/``, data sets in ``datasets/``. A lecture-hall laptop often has
an empty cache and no internet, so the ImageNet class names also ship in the repository
(``data/imagenet_class_index.json``, made by ``scripts/make_offline_data.py`` from keras-hub's
copy of the same table; see ``data/PROVENANCE.md``). Keras's own file keeps priority when present.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
from pathlib import Path

CLASS_INDEX_FILE = "imagenet_class_index.json"
SHIPPED_CLASS_INDEX = Path(__file__).resolve().parents[1] / "data" / CLASS_INDEX_FILE
IMAGENET_CLASSES = 1000


def keras_cache_dir() -> Path:
    """Keras's cache folder: ``$KERAS_HOME`` or ``~/.keras`` (where ``get_file`` looks first)."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")


def cached_file(name: str, subdir: str = "models") -> Path | None:
    """``<cache>/<subdir>/<name>`` if Keras has it, else ``None``.

    ``keras.utils.get_file`` falls back to ``/tmp/.keras`` when the home is not writable, so both
    are looked in.
    """
    for folder in (keras_cache_dir(), Path(tempfile.gettempdir()) / ".keras"):
        if (folder / subdir / name).exists():
            return folder / subdir / name
    return None


@functools.lru_cache(maxsize=4)
def _read_class_index(path: str, mtime_ns: int) -> tuple[str, ...]:
    # decode_predictions' file: {"281": ["n02123159", "tabby"], ...}; underscores read badly on a slide
    index = json.loads(Path(path).read_text())
    return tuple(index[str(i)][1].replace("_", " ") for i in range(IMAGENET_CLASSES))


def imagenet_class_source() -> Path | None:
    """The class index file the app reads: Keras's cached one, else the shipped one; ``None`` if neither reads."""
    for path in (cached_file(CLASS_INDEX_FILE), SHIPPED_CLASS_INDEX):
        if path is None or not path.is_file():
            continue
        try:
            _read_class_index(str(path), path.stat().st_mtime_ns)
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            continue  # a damaged file: try the next one
        return path
    return None


def imagenet_classes() -> tuple[list[str], str]:
    """ImageNet's 1000 class names in output order, and a note (empty unless they are missing).

    >>> names, note = imagenet_classes()
    >>> names[281], names[967], note
    ('tabby', 'espresso', '')
    """
    path = imagenet_class_source()
    if path is not None:
        return list(_read_class_index(str(path), path.stat().st_mtime_ns)), ""
    return (
        [f"class {i}" for i in range(IMAGENET_CLASSES)],
        # Shown to visitors: the file's name and where in words, not the server's path.
        f"ImageNet class names are missing (neither {CLASS_INDEX_FILE} in the models folder of this server's "
        "Keras cache nor the copy in the app's data folder could be read), so classes are shown by number, "
        "e.g. “class 281”.",
    )
