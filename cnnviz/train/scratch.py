"""Build and train a CNN from scratch, as the Keras intro, the Carpentries lesson and NVIDIA DIGITS do.

The lesson in five steps, each a function here:

1. **Data** (:func:`load_keras_dataset`, :func:`dataset_from_zip`, :func:`demo_shapes`): raw
   ``uint8`` pixels ``(N, H, W, C)`` and integer labels, a held-out test set, and
   :func:`take_subset` / :func:`split_validation` so a lecture demo trains in seconds.
2. **Architecture**: a list of plain layer descriptions (:class:`Conv2D`, :class:`MaxPooling2D`,
   :class:`Dropout`, :class:`Flatten`, :class:`Dense`, :class:`BatchNormalization`,
   :class:`ReLU`), checked by :func:`validate` *before* anything is built (one sentence for an
   impossible stack), shown by :func:`summary` (output shapes and parameters, the numbers
   ``model.summary()`` prints) and turned into a Keras model by :func:`build_model`. The
   output layer ``Dense(n_classes, softmax)`` is always added by the builder. :data:`PRESETS`
   are the lessons' networks.
3. **Augmentation** (:class:`Augment`): flips, small rotations, shifts and noise as Keras
   layers at the model's start, active only while training; :func:`augment_preview` shows them.
4. **Training** (:func:`train`): ``model.fit`` with a validation set, fixed seeds and callbacks
   (:class:`cnnviz.train.progress.JobProgress` reports to a background job).
5. **Judging** (:func:`evaluate_on`, :func:`confident_errors`): test accuracy, per-class accuracy,
   confusion matrix and the most confident mistakes.

Models take raw 0–255 pixels (a ``Rescaling(1/255)`` layer inside), like the bundled ones.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence, Union

import keras
import numpy as np
from PIL import Image

from cnnviz.train.transfer import Evaluation, evaluate

if TYPE_CHECKING:
    from cnnviz.jobs import JobContext

__all__ = [
    "ArchitectureError",
    "DataError",
    "Conv2D",
    "MaxPooling2D",
    "Dropout",
    "Flatten",
    "Dense",
    "BatchNormalization",
    "ReLU",
    "Layer",
    "Augment",
    "Preset",
    "PRESETS",
    "LayerRow",
    "Dataset",
    "validate",
    "summary",
    "build_model",
    "augment_preview",
    "train",
    "evaluate_on",
    "confident_errors",
    "load_keras_dataset",
    "dataset_from_zip",
    "demo_shapes",
    "take_subset",
    "split_validation",
    "filter_tiles",
    "to_input",
    "inference_copy",
    "keras_bytes",
    "tflite_bytes",
    "CLASS_NAMES",
    "DATASET_TITLES",
    "MAX_PARAMS",
    "Run",
    "Result",
    "training_job",
    "layers_to_table",
    "layers_from_table",
    "reorder_table",
    "without_augmentation",
    "drawing_to_picture",
    "tfjs_zip",
    "GRAY_TFJS",
]

#: Largest network the page builds (parameters): bigger ones take minutes per epoch on 2 cores.
MAX_PARAMS = 5_000_000
OPTIMIZERS = ("adam", "sgd", "rmsprop")


class ArchitectureError(ValueError):
    """A layer stack that cannot be built. ``str(err)`` is one sentence for the visitor."""


class DataError(ValueError):
    """A data set that cannot be used. ``str(err)`` is one sentence for the visitor."""


# --------------------------------------------------------------------------- layers


@dataclass(frozen=True)
class Conv2D:
    """``filters`` learnt ``kernel × kernel`` filters moved by ``stride``; ``padding`` "valid" or "same"."""

    filters: int = 16
    kernel: int = 3
    stride: int = 1
    padding: str = "valid"
    activation: str = "relu"
    use_bias: bool = True


@dataclass(frozen=True)
class MaxPooling2D:
    """Keep the largest value of each ``size × size`` window (stride = size)."""

    size: int = 2
    padding: str = "valid"


@dataclass(frozen=True)
class Dropout:
    """While training, set a random share ``rate`` of the values to zero."""

    rate: float = 0.25


@dataclass(frozen=True)
class Flatten:
    """Lay the feature maps out as one long row of numbers for the Dense layers."""


@dataclass(frozen=True)
class Dense:
    """``units`` neurons, each connected to every input value."""

    units: int = 64
    activation: str = "relu"


@dataclass(frozen=True)
class BatchNormalization:
    """Re-centre and re-scale each channel over the batch (4 numbers per channel, 2 of them learnt)."""


@dataclass(frozen=True)
class ReLU:
    """max(0, x), as its own layer (after batch normalisation)."""


Layer = Union[Conv2D, MaxPooling2D, Dropout, Flatten, Dense, BatchNormalization, ReLU]
LAYER_TYPES = {cls.__name__: cls for cls in (Conv2D, MaxPooling2D, Dropout, Flatten, Dense, BatchNormalization, ReLU)}
ACTIVATIONS = ("relu", "sigmoid", "tanh", "linear")


def layer_from_dict(row: dict) -> Layer:
    """``{"type": "Conv2D", "filters": 16, …}`` → the layer (the page's editor keeps dicts)."""
    kind = LAYER_TYPES[row["type"]]
    fields = {k: v for k, v in row.items() if k != "type" and k in kind.__dataclass_fields__}
    return kind(**fields)


def layer_to_dict(layer: Layer) -> dict:
    return {"type": type(layer).__name__, **asdict(layer)}


@dataclass(frozen=True)
class Augment:
    """Random changes to each training image, so the network cannot memorise exact pixels.

    ``flip`` mirrors left-right; ``rotation`` is the largest turn as a share of a full turn
    (0.05 = 18°); ``shift`` the largest move as a share of the side; ``noise`` the spread of
    added Gaussian noise as a share of the pixel range (0.05 = ±13 of 255).
    """

    flip: bool = False
    rotation: float = 0.0
    shift: float = 0.0
    noise: float = 0.0

    @property
    def active(self) -> bool:
        return bool(self.flip or self.rotation or self.shift or self.noise)


# --------------------------------------------------------------------------- validation and summary


@dataclass
class LayerRow:
    """One row of the summary table: ``name``, ``type``, ``shape`` ``(H, W, C)`` or ``(N,)``, ``params``."""

    name: str
    type: str
    shape: tuple[int, ...]
    params: int
    note: str = ""

    @property
    def shape_text(self) -> str:
        return " × ".join(str(d) for d in self.shape)


def _out(n: int, window: int, stride: int, padding: str) -> int:
    if padding == "same":
        return math.ceil(n / stride)
    return (n - window) // stride + 1


def _names(layers: Sequence[Layer]) -> list[str]:
    """Layer names as the bundled models use them: conv1, pool1, bn1, relu1, flatten, dense1, dropout…"""
    prefix = {
        Conv2D: "conv",
        MaxPooling2D: "pool",
        BatchNormalization: "bn",
        ReLU: "relu",
        Dense: "dense",
        Dropout: "dropout",
        Flatten: "flatten",
    }
    totals: dict[type, int] = {}
    for layer in layers:
        totals[type(layer)] = totals.get(type(layer), 0) + 1
    seen: dict[type, int] = {}
    names = []
    for layer in layers:
        kind = type(layer)
        seen[kind] = seen.get(kind, 0) + 1
        single = kind in (Flatten, Dropout) and totals[kind] == 1
        names.append(prefix[kind] if single else f"{prefix[kind]}{seen[kind]}")
    return names


def summary(
    layers: Sequence[Layer], input_shape: Sequence[int], n_classes: int, augment: Augment | None = None
) -> list[LayerRow]:
    """The ``model.summary()`` of :func:`build_model` as rows, computed without building anything.

    Raises :class:`ArchitectureError` (one sentence, naming the layer by its place) when the
    stack cannot work: a window larger than the map it slides over, a map shrunk below 1 × 1,
    a picture layer after Flatten, Dense layers on a map without Flatten, a Dropout rate
    outside [0, 1), or more than :data:`MAX_PARAMS` parameters.
    """
    h, w, c = (int(d) for d in input_shape)
    if n_classes < 2:
        raise ArchitectureError("A classifier needs at least two classes.")
    rows = [LayerRow("pixels", "Input", (h, w, c), 0, "raw pixels 0–255")]
    augment = augment or Augment()
    for name, on in (
        ("augment_flip", augment.flip),
        ("augment_rotation", augment.rotation),
        ("augment_shift", augment.shift),
    ):
        if on:
            rows.append(LayerRow(name, "augmentation", (h, w, c), 0, "only while training"))
    rows.append(LayerRow("rescale", "Rescaling", (h, w, c), 0, "pixels / 255"))
    if augment.noise:
        rows.append(LayerRow("augment_noise", "augmentation", (h, w, c), 0, "only while training"))
    shape: tuple[int, ...] = (h, w, c)
    for place, (layer, name) in enumerate(zip(layers, _names(layers)), start=1):
        what = f"Layer {place} ({type(layer).__name__})"
        flat = len(shape) == 1
        if isinstance(layer, (Conv2D, MaxPooling2D)):
            window = layer.kernel if isinstance(layer, Conv2D) else layer.size
            stride = layer.stride if isinstance(layer, Conv2D) else layer.size
            if flat:
                raise ArchitectureError(
                    f"{what} needs a picture-shaped input, but it comes after a Flatten or "
                    "Dense layer; move it before the Flatten."
                )
            if window < 1 or stride < 1 or (isinstance(layer, Conv2D) and layer.filters < 1):
                raise ArchitectureError(f"{what} needs a window, stride and number of filters of at least 1.")
            if layer.padding not in ("valid", "same"):
                raise ArchitectureError(f"{what}: padding must be “valid” or “same”.")
            if layer.padding == "valid" and (window > shape[0] or window > shape[1]):
                raise ArchitectureError(
                    f"{what} slides a {window}×{window} window over a {shape[0]}×{shape[1]} map, which is "
                    "smaller than the window; remove a pooling layer before it or use “same” padding."
                )
            oh, ow = _out(shape[0], window, stride, layer.padding), _out(shape[1], window, stride, layer.padding)
            if oh < 1 or ow < 1:
                raise ArchitectureError(f"{what} would shrink the {shape[0]}×{shape[1]} map below 1×1.")
            if isinstance(layer, Conv2D):
                params = window * window * shape[2] * layer.filters + (layer.filters if layer.use_bias else 0)
                shape = (oh, ow, layer.filters)
                note = (
                    f"{layer.filters} filters {window}×{window}, stride {stride}, {layer.padding}, {layer.activation}"
                )
            else:
                params = 0
                shape = (oh, ow, shape[2])
                note = f"{window}×{window} max, {layer.padding}"
            rows.append(LayerRow(name, type(layer).__name__, shape, params, note))
        elif isinstance(layer, Flatten):
            if flat:
                raise ArchitectureError(f"{what} comes after the numbers are already one row; remove it.")
            shape = (shape[0] * shape[1] * shape[2],)
            rows.append(LayerRow(name, "Flatten", shape, 0))
        elif isinstance(layer, Dense):
            if not flat:
                raise ArchitectureError(
                    f"{what} gets a {shape[0]}×{shape[1]}×{shape[2]} map; put a Flatten layer before it."
                )
            if layer.units < 1:
                raise ArchitectureError(f"{what} needs at least 1 unit.")
            params = shape[0] * layer.units + layer.units
            shape = (layer.units,)
            rows.append(LayerRow(name, "Dense", shape, params, f"{layer.units} units, {layer.activation}"))
        elif isinstance(layer, Dropout):
            if not 0 <= layer.rate < 1:
                raise ArchitectureError(f"{what} needs a rate from 0 up to (not including) 1.")
            rows.append(LayerRow(name, "Dropout", shape, 0, f"rate {layer.rate:g}, only while training"))
        elif isinstance(layer, BatchNormalization):
            rows.append(LayerRow(name, "BatchNormalization", shape, 4 * shape[-1], "2 of every 4 learnt"))
        elif isinstance(layer, ReLU):
            rows.append(LayerRow(name, "ReLU", shape, 0))
        else:  # pragma: no cover - the editor only offers the types above
            raise ArchitectureError(f"{what} is not a layer this page can build.")
    if len(shape) != 1:
        raise ArchitectureError(
            "The last layer still gives a map; add a Flatten layer so the output layer can give one number per class."
        )
    rows.append(
        LayerRow(
            "predictions", "Dense", (n_classes,), shape[0] * n_classes + n_classes, f"{n_classes} classes, softmax"
        )
    )
    total = sum(r.params for r in rows)
    if total > MAX_PARAMS:
        raise ArchitectureError(
            f"This network has {total:,} parameters; at most {MAX_PARAMS:,} train in "
            "reasonable time here, so use fewer filters or units, or pool earlier."
        )
    return rows


def validate(layers: Sequence[Layer], input_shape: Sequence[int], n_classes: int) -> None:
    """Raise :class:`ArchitectureError` (one sentence) if the stack cannot be built (see :func:`summary`)."""
    summary(layers, input_shape, n_classes)


# --------------------------------------------------------------------------- building


def build_model(
    layers: Sequence[Layer],
    input_shape: Sequence[int],
    n_classes: int,
    *,
    augment: Augment | None = None,
    seed: int = 0,
    name: str = "scratch",
) -> keras.Model:
    """The Keras model for ``layers`` (validated first), taking raw 0–255 pixels ``(None, H, W, C)``.

    Every initialiser and random layer gets its own seed derived from ``seed``, so the same
    seed builds the same starting weights. Layer names follow :func:`_names`.
    """
    summary(layers, input_shape, n_classes, augment)
    augment = augment or Augment()
    inputs = keras.Input(shape=tuple(int(d) for d in input_shape), name="pixels")
    x = inputs
    if augment.flip:
        x = keras.layers.RandomFlip("horizontal", seed=seed + 101, name="augment_flip")(x)
    if augment.rotation:
        x = keras.layers.RandomRotation(
            augment.rotation, fill_mode="constant", seed=seed + 102, name="augment_rotation"
        )(x)
    if augment.shift:
        x = keras.layers.RandomTranslation(
            augment.shift, augment.shift, fill_mode="constant", seed=seed + 103, name="augment_shift"
        )(x)
    x = keras.layers.Rescaling(1 / 255, name="rescale")(x)
    if augment.noise:  # after rescaling: Keras takes the spread on a 0–1 scale
        x = keras.layers.GaussianNoise(augment.noise, seed=seed + 104, name="augment_noise")(x)
    for i, (layer, lname) in enumerate(zip(layers, _names(layers))):
        init = keras.initializers.GlorotUniform(seed=seed + i)
        if isinstance(layer, Conv2D):
            x = keras.layers.Conv2D(
                layer.filters,
                layer.kernel,
                strides=layer.stride,
                padding=layer.padding,
                activation=None if layer.activation == "linear" else layer.activation,
                use_bias=layer.use_bias,
                kernel_initializer=init,
                name=lname,
            )(x)
        elif isinstance(layer, MaxPooling2D):
            x = keras.layers.MaxPooling2D(layer.size, padding=layer.padding, name=lname)(x)
        elif isinstance(layer, Flatten):
            x = keras.layers.Flatten(name=lname)(x)
        elif isinstance(layer, Dense):
            x = keras.layers.Dense(
                layer.units,
                activation=None if layer.activation == "linear" else layer.activation,
                kernel_initializer=init,
                name=lname,
            )(x)
        elif isinstance(layer, Dropout):
            x = keras.layers.Dropout(layer.rate, seed=seed + 200 + i, name=lname)(x)
        elif isinstance(layer, BatchNormalization):
            x = keras.layers.BatchNormalization(name=lname)(x)
        elif isinstance(layer, ReLU):
            x = keras.layers.ReLU(name=lname)(x)
    outputs = keras.layers.Dense(
        n_classes,
        activation="softmax",
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 999),
        name="predictions",
    )(x)
    return keras.Model(inputs, outputs, name=name)


def augmentation_model(input_shape: Sequence[int], augment: Augment, *, seed: int = 0) -> keras.Model:
    """Only the augmentation layers of :func:`build_model` (for :func:`augment_preview`)."""
    model = build_model([Flatten()], input_shape, 2, augment=augment, seed=seed)
    aug = [layer for layer in model.layers if layer.name.startswith("augment_")]
    inputs = keras.Input(shape=tuple(int(d) for d in input_shape))
    x = inputs
    for layer in aug:
        if layer.name == "augment_noise":  # noise works on 0–1 pixels; show it on 0–255 ones
            x = keras.layers.Rescaling(255.0)(layer(keras.layers.Rescaling(1 / 255)(x)))
        else:
            x = layer(x)
    return keras.Model(inputs, x)


def augment_preview(images: np.ndarray, augment: Augment, *, copies: int = 4, seed: int = 0) -> np.ndarray:
    """``copies`` augmented versions of each image as training sees them: ``(N, copies, H, W, C)`` uint8."""
    images = np.asarray(images)
    model = augmentation_model(images.shape[1:], augment, seed=seed)
    x = images.astype("float32")
    out = np.stack([np.asarray(model(x, training=True)) for _ in range(copies)], axis=1)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- presets


@dataclass(frozen=True)
class Preset:
    """A lesson's network with the settings it is taught with."""

    key: str
    title: str
    lesson: str
    layers: tuple[Layer, ...]
    augment: Augment = Augment()
    epochs: int = 5
    batch_size: int = 32
    learning_rate: float = 0.001
    optimizer: str = "adam"
    subset: int | None = None
    note: str = ""


def better_layers() -> tuple[Layer, ...]:
    """Three conv stages (32, 64, 128) with batch norm, then Dense 128 and Dropout 0.3 (the bundled "better")."""
    stages: list[Layer] = []
    for filters in (32, 64, 128):
        # No bias: batch norm's own shift does that job; "same" pooling keeps 7×7 → 4×4.
        stages += [
            Conv2D(filters, 3, padding="same", activation="linear", use_bias=False),
            BatchNormalization(),
            ReLU(),
            MaxPooling2D(2, padding="same"),
        ]
    return (*stages, Flatten(), Dense(128), Dropout(0.3))


_OVERFIT = (Conv2D(32, 3), MaxPooling2D(2), Conv2D(64, 3), MaxPooling2D(2), Flatten(), Dense(256))

PRESETS: dict[str, Preset] = {
    p.key: p
    for p in (
        Preset(
            "dense",
            "Dense only (Keras/TensorFlow beginner quickstart)",
            "TensorFlow 2 quickstart for beginners",
            (Flatten(), Dense(128), Dropout(0.2)),
            epochs=5,
            note="No convolution at all: every pixel is connected to every one of 128 neurons.",
        ),
        Preset(
            "keras_cnn",
            "Simple convnet (Keras example “Simple MNIST convnet”)",
            "Keras code examples",
            (Conv2D(32, 3), MaxPooling2D(2), Conv2D(64, 3), MaxPooling2D(2), Flatten(), Dropout(0.5)),
            epochs=5,
            batch_size=128,
        ),
        Preset(
            "carpentries",
            "Carpentries CNN (Conv 16 → Pool → Conv 32 → Pool → Dense 64)",
            "The Carpentries, Introduction to deep learning",
            (Conv2D(16, 3), MaxPooling2D(2), Conv2D(32, 3), MaxPooling2D(2), Flatten(), Dense(64)),
            epochs=5,
        ),
        Preset(
            "lenet5",
            "LeNet-5 (NVIDIA DIGITS lesson)",
            "NVIDIA DIGITS, getting started",
            (
                Conv2D(20, 5, activation="linear"),
                MaxPooling2D(2),
                Conv2D(50, 5, activation="linear"),
                MaxPooling2D(2),
                Flatten(),
                Dense(500),
            ),
            epochs=5,
            batch_size=64,
            note="As in DIGITS: the convolutions have no activation; only the 500-unit layer uses ReLU.",
        ),
        Preset(
            "better",
            "Better CNN (batch norm, more filters, dropout)",
            "cnnviz's bundled “better” model",
            better_layers(),
            Augment(flip=True),
            epochs=5,
            batch_size=128,
            learning_rate=0.002,
        ),
        Preset(
            "overfit",
            "Overfitting: a big network on 1 000 images",
            "The Carpentries, episode 3 (overfitting)",
            _OVERFIT,
            epochs=25,
            subset=1_000,
            note="Watch the orange validation loss: it stops falling and rises while the training accuracy "
            "climbs towards 100 %, the network is memorising its 1 000 images.",
        ),
        Preset(
            "overfit_dropout",
            "…the same with Dropout and augmentation",
            "The Carpentries, episode 3 (Dropout)",
            (*_OVERFIT[:4], Dropout(0.25), Flatten(), Dense(256), Dropout(0.5)),
            Augment(flip=True, shift=0.08),
            epochs=25,
            subset=1_000,
            note="Same network and images with Dropout and augmentation: the gap between the training and "
            "validation curves stays much smaller.",
        ),
    )
}


# --------------------------------------------------------------------------- data


CLASS_NAMES = {
    "fashion_mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
    "mnist": [str(digit) for digit in range(10)],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
}
DATASET_TITLES = {"fashion_mnist": "Fashion-MNIST", "mnist": "MNIST", "cifar10": "CIFAR-10"}
_CACHE_FILES = {
    "fashion_mnist": "fashion-mnist/t10k-labels-idx1-ubyte.gz",
    "mnist": "mnist.npz",
    "cifar10": "cifar-10-batches-py/test_batch",
}


@dataclass
class Dataset:
    """Training and test images, raw ``uint8`` ``(N, H, W, C)``, integer labels, class names."""

    title: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    source: str = ""
    skipped: list[str] = field(default_factory=list)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.x_train.shape[1:])  # type: ignore[return-value]


def keras_dataset_cached(name: str) -> bool:
    """Whether Keras's cache (``$KERAS_HOME/datasets``) already holds the data set."""
    home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    return (home / "datasets" / _CACHE_FILES[name]).exists()


def load_keras_dataset(name: str, *, download: bool = True) -> Dataset:
    """A ``keras.datasets`` data set with the channel axis added (gray images get ``C = 1``).

    Read from Keras's cache when it is there; otherwise Keras downloads it when ``download``
    and the machine is online. Raises :class:`DataError` with one sentence when neither works.
    """
    if name not in CLASS_NAMES:
        raise DataError(f"“{name}” is not one of the data sets offered here.")
    if not download and not keras_dataset_cached(name):
        raise DataError(f"{DATASET_TITLES[name]} is not in this server's Keras cache, and it may not download it.")
    try:
        (x_train, y_train), (x_test, y_test) = getattr(keras.datasets, name).load_data()
    except Exception:  # offline or a broken file: say so once
        raise DataError(
            f"{DATASET_TITLES[name]} is not in this server's Keras cache and the server could not "
            "download it (it may be offline), so please choose another data set."
        ) from None
    if x_train.ndim == 3:
        x_train, x_test = x_train[..., None], x_test[..., None]
    return Dataset(
        DATASET_TITLES[name],
        x_train,
        y_train.reshape(-1).astype(np.int64),
        x_test,
        y_test.reshape(-1).astype(np.int64),
        list(CLASS_NAMES[name]),
        source=f"keras.datasets.{name}",
    )


def _resize(image: np.ndarray, size: int, colour: bool) -> np.ndarray:
    """Squash to ``size × size`` (DIGITS' default "squash": the whole image, aspect not kept)."""
    pil = Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB" if colour else "L")
    pil = pil.resize((size, size), Image.Resampling.BILINEAR)
    out = np.asarray(pil, dtype=np.uint8)
    return out if colour else out[..., None]


def dataset_from_zip(
    data: bytes,
    *,
    size: int = 32,
    colour: bool = False,
    test_fraction: float = 0.2,
    seed: int = 0,
    zip_name: str = "The zip",
) -> Dataset:
    """A visitor's class folders (zip) resized to ``size`` px, gray or colour, as DIGITS builds a data set.

    Uses :mod:`cnnviz.zips` (the trainer's reader). A labelled ``testing/`` part is the test set;
    otherwise ``test_fraction`` of each class is held out (seeded). Raises :class:`DataError`.
    """
    from cnnviz.train.transfer import stratified_split
    from cnnviz.zips import ZipError, iter_zip_images, plan_zip

    try:
        plan = plan_zip(data, zip_name=zip_name)
    except ZipError as err:
        raise DataError(str(err)) from None
    classes = plan.classes
    if len(classes) < 2:
        raise DataError(f"{zip_name} needs at least two class folders with images; it has {len(classes)}.")
    index = {name: i for i, name in enumerate(classes)}
    train_x, train_y, test_x, test_y = [], [], [], []
    for item in iter_zip_images(data, plan, max_side=4 * size):
        pixels = _resize(item.image, size, colour)
        if item.part == "training":
            assert item.label is not None  # plan_zip puts every training image in a class folder
            train_x.append(pixels)
            train_y.append(index[item.label])
        elif item.label in index:
            test_x.append(pixels)
            test_y.append(index[item.label])
    skipped = list(plan.skipped)
    if not test_x:
        labels = np.array(train_y)
        keep, held = stratified_split(labels, test_fraction, seed)
        test_x, test_y = [train_x[i] for i in held], [train_y[i] for i in held]
        train_x, train_y = [train_x[i] for i in keep], [train_y[i] for i in keep]
    if not test_x:
        raise DataError(f"{zip_name} has too few images to keep any apart for testing; give each class at least two.")
    return Dataset(
        zip_name.strip("“”"),
        np.stack(train_x),
        np.array(train_y, dtype=np.int64),
        np.stack(test_x),
        np.array(test_y, dtype=np.int64),
        classes,
        source="zip",
        skipped=skipped,
    )


def demo_shapes(per_class: int = 300, *, size: int = 32, colour: bool = True, seed: int = 0) -> Dataset:
    """The generated squares, triangles and circles (:mod:`cnnviz.train.demo_data`), drawn here, no download."""
    from cnnviz.train.demo_data import DEMO_CLASSES, demo_dataset

    def pack(groups: dict[str, list[np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        x = [_resize(im, size, colour) for name in DEMO_CLASSES for im in groups[name]]
        y = [i for i, name in enumerate(DEMO_CLASSES) for _ in groups[name]]
        return np.stack(x), np.array(y, dtype=np.int64)

    x_train, y_train = pack(demo_dataset(per_class, size=size * 2, seed=seed))
    x_test, y_test = pack(demo_dataset(max(10, per_class // 4), size=size * 2, seed=seed + 1))
    return Dataset("Demo shapes", x_train, y_train, x_test, y_test, list(DEMO_CLASSES), source="generated")


def take_subset(x: np.ndarray, y: np.ndarray, n: int | None, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` training images picked at random (seeded); all of them when ``n`` is None or too large."""
    if n is None or n >= len(x):
        return x, y
    pick = np.sort(np.random.default_rng(seed).permutation(len(x))[:n])
    return x[pick], y[pick]


def split_validation(
    x: np.ndarray, y: np.ndarray, fraction: float = 0.1, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_val, y_val)``: ``fraction`` of each class held out for validation (seeded)."""
    from cnnviz.train.transfer import stratified_split

    train, val = stratified_split(y, fraction, seed)
    return x[train], y[train], x[val], y[val]


# --------------------------------------------------------------------------- training and judging


def compile_model(model: keras.Model, *, optimizer: str = "adam", learning_rate: float = 0.001) -> keras.Model:
    """Compile with the chosen optimizer and sparse cross-entropy (integer labels), reporting accuracy."""
    if optimizer not in OPTIMIZERS:
        raise ArchitectureError(f"Choose one of the optimizers {', '.join(OPTIMIZERS)}.")
    opt = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD, "rmsprop": keras.optimizers.RMSprop}[optimizer]
    model.compile(
        optimizer=opt(learning_rate=learning_rate), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return model


def train(
    model: keras.Model,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    *,
    epochs: int = 5,
    batch_size: int = 32,
    learning_rate: float = 0.001,
    optimizer: str = "adam",
    seed: int = 0,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> dict:
    """Compile and ``model.fit`` in place; returns Keras's history dict (``loss``, ``accuracy``, ``val_*``).

    ``keras.utils.set_random_seed(seed)`` fixes the shuffling, Dropout and augmentation, so the
    same seed on the same machine reproduces a run (TensorFlow's threads can still reorder float sums).
    """
    keras.utils.set_random_seed(seed)
    compile_model(model, optimizer=optimizer, learning_rate=learning_rate)
    # uint8 pixels go in as they are (a quarter of float32's memory); the model casts each batch to float32.
    validation = (x_val, y_val) if x_val is not None and len(x_val) else None
    fit = model.fit(
        x_train,
        y_train,
        validation_data=validation,
        epochs=epochs,
        batch_size=batch_size,
        shuffle=True,
        verbose=0,
        callbacks=list(callbacks),
    )
    return dict(fit.history)


def predict(model: keras.Model, x: np.ndarray, *, batch_size: int = 500) -> np.ndarray:
    """``(N, C)`` probabilities for raw ``uint8`` images ``(N, H, W, C)``."""
    out = [
        np.asarray(model(x[i : i + batch_size].astype("float32"), training=False)) for i in range(0, len(x), batch_size)
    ]
    return np.concatenate(out) if out else np.zeros((0, int(model.output_shape[-1])), dtype=np.float32)


def evaluate_on(model: keras.Model, x: np.ndarray, y: np.ndarray, class_names: Sequence[str]) -> Evaluation:
    """Accuracy, per-class accuracy and confusion matrix on held-out images (:func:`cnnviz.train.transfer.evaluate`)."""
    return evaluate(predict(model, x), y, class_names)


def confident_errors(ev: Evaluation, n: int = 12) -> list[int]:
    """Indices of the ``n`` wrong answers the model was most sure of, surest first."""
    wrong = np.array(ev.misclassified, dtype=np.int64)
    if not len(wrong):
        return []
    confidence = ev.probabilities[wrong].max(axis=1)
    return [int(i) for i in wrong[np.argsort(-confidence, kind="stable")][:n]]


def to_input(image_rgb: np.ndarray, input_shape: Sequence[int]) -> np.ndarray:
    """An RGB ``uint8`` picture as one model input ``(H, W, C)`` uint8: squashed, gray if ``C = 1``."""
    h, _, c = (int(d) for d in input_shape)
    return _resize(image_rgb, h, colour=c == 3)


def drawing_to_picture(rgba: np.ndarray | None) -> np.ndarray | None:
    """A drawing canvas's RGBA ``(H, W, 4)`` → RGB ``uint8`` over black, or ``None`` while nothing is drawn.

    Unpainted canvas pixels are transparent; over black they match the black background of
    MNIST and Fashion-MNIST, whose digits and clothes are light on dark.
    """
    if rgba is None:
        return None
    rgba = np.asarray(rgba, dtype=np.float32)
    rgb = rgba[..., :3] * (rgba[..., 3:4] / 255.0)
    picture = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return None if picture.max() == picture.min() else picture


def filter_tiles(kernel: np.ndarray, *, scale: int = 8) -> np.ndarray:
    """First-layer kernels ``(kh, kw, c_in, n)`` → RGB tiles ``(n, kh·scale, kw·scale, 3)`` uint8.

    The same picture as :func:`cnnviz.model.features.first_layer_kernels` (mid-gray = weight 0,
    each filter scaled on its own), from a kernel copied during training instead of a model.
    """
    kernel = np.asarray(kernel, dtype=np.float32)
    if kernel.shape[2] not in (1, 3):
        kernel = kernel.mean(axis=2, keepdims=True)
    tiles = np.moveaxis(kernel, 3, 0)
    limit = np.abs(tiles).max(axis=(1, 2, 3), keepdims=True)
    tiles = 0.5 + 0.5 * tiles / np.where(limit > 0, limit, 1.0)
    if tiles.shape[3] == 1:
        tiles = np.repeat(tiles, 3, axis=3)
    tiles = np.clip(np.rint(tiles * 255.0), 0, 255).astype(np.uint8)
    return tiles.repeat(scale, axis=1).repeat(scale, axis=2)


def inference_copy(model: keras.Model) -> keras.Model:
    """The same network and weights without the optimizer state (which would triple the file size)."""
    copy = keras.Model.from_config(model.get_config())  # clone_model would also copy the compile settings
    copy.set_weights(model.get_weights())
    return copy


def keras_bytes(model: keras.Model) -> bytes:
    """The model as a ``.keras`` file (architecture and weights, no optimizer state)."""
    with tempfile.TemporaryDirectory(prefix="cnnviz-scratch-") as folder:
        path = Path(folder) / "model.keras"
        inference_copy(model).save(path)
        return path.read_bytes()


def without_augmentation(model: keras.Model) -> keras.Model:
    """A fresh copy of a :func:`build_model` network and its weights without the ``augment_*`` layers.

    They change images only while training (predicting passes them through), and TensorFlow.js
    has no such layers, so the copy predicts the same and can be exported.
    """
    inputs = keras.Input(shape=tuple(model.input_shape[1:]), name="pixels")
    x = inputs
    for layer in model.layers[1:]:  # a chain: each layer takes the previous one's output
        if not layer.name.startswith("augment_"):
            x = layer(x)
    chain = keras.Model(inputs, x, name=model.name)
    copy = keras.Model.from_config(chain.get_config())  # its own layers: node indices start at 0 again
    copy.set_weights(chain.get_weights())
    return copy


GRAY_TFJS = (
    "TensorFlow.js (ml5.js, Teachable Machine) is offered for colour models only: those libraries hand "
    "the network three colour channels, and this one takes a single gray channel."
)


def tfjs_zip(
    model: keras.Model, class_names: Sequence[str], *, model_name: str, training: dict | None = None
) -> tuple[bytes | None, str | None]:
    """``(zip, why)``: page 4's export zip (``.keras``, TensorFlow.js, labels, metadata; no ``.tflite``) or ``None``.

    ``why`` is one sentence when there is no zip (a gray model, see :data:`GRAY_TFJS`, or
    class names the export refuses) or when the zip had to leave TensorFlow.js out (the
    writer's own reason). The TensorFlow.js model takes ml5's [-1, 1] RGB pixels; the first
    ``Rescaling(1/255)`` is rewritten for that by :mod:`cnnviz.train.tfjs`.
    """
    from cnnviz.train.export import ExportError, export_zip

    if int(model.input_shape[-1]) != 3:
        return None, GRAY_TFJS
    try:
        data = export_zip(
            without_augmentation(model),
            class_names,
            base_model="scratch",
            model_name=model_name,
            training=training,
            include_tflite=False,
        )
    except ExportError as err:
        return None, str(err)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        skipped = json.loads(archive.read("metadata.json")).get("tfjsSkipped")
    return data, (f"This zip has no TensorFlow.js part. {skipped}" if skipped else None)


def tflite_bytes(model: keras.Model) -> bytes:
    """The model as a ``.tflite`` file (LiteRT), raw 0–255 pixels in, probabilities out."""
    with tempfile.TemporaryDirectory(prefix="cnnviz-scratch-") as folder:
        path = Path(folder) / "model.tflite"
        model.export(str(path), format="litert", verbose=False)
        return path.read_bytes()


def settings_of(preset: Preset) -> dict[str, Any]:
    """The training settings a preset is taught with."""
    return {
        "epochs": preset.epochs,
        "batch_size": preset.batch_size,
        "learning_rate": preset.learning_rate,
        "optimizer": preset.optimizer,
        "subset": preset.subset,
    }


def with_layers(preset: Preset, layers: Sequence[Layer]) -> Preset:
    return replace(preset, layers=tuple(layers))


# --------------------------------------------------------------------------- one training as a background job


@dataclass
class Run:
    """What one training asks for (the page's settings), all of it plain data."""

    layers: tuple[Layer, ...]
    data: Dataset
    augment: Augment = Augment()
    epochs: int = 5
    batch_size: int = 32
    learning_rate: float = 0.001
    optimizer: str = "adam"
    subset: int | None = None
    validation_fraction: float = 0.1
    seed: int = 0
    name: str = "scratch"
    test_limit: int = 10_000


@dataclass
class Result:
    """What a training learnt: the model, its epoch rows and, once judged, its test evaluation."""

    model: keras.Model
    run: Run
    rows: list[dict] = field(default_factory=list)
    evaluation: Evaluation | None = None
    test_x: np.ndarray | None = None
    train_images: int = 0
    val_images: int = 0
    seconds: float = 0.0
    stopped: bool = False
    first_filters: np.ndarray | None = None  # the first convolution's kernel before training (random)


def training_job(run: Run) -> Callable[[JobContext], Result]:
    """A function for :func:`cnnviz.jobs.submit`: subset, split, build, fit with live reports, judge on the test set.

    The model is the job's partial result from the first batch on, so Stop (or a failure
    after some epochs) keeps what it learnt; a stopped model is still judged on the test set.
    """
    from cnnviz.train.progress import JobProgress

    def job(ctx: JobContext) -> Result:
        import time

        data = run.data
        x, y = take_subset(data.x_train, data.y_train, run.subset, seed=run.seed)
        x_train, y_train, x_val, y_val = split_validation(x, y, run.validation_fraction, seed=run.seed)
        model = build_model(
            run.layers, data.input_shape, len(data.class_names), augment=run.augment, seed=run.seed, name=run.name
        )
        result = Result(model, run, train_images=len(x_train), val_images=len(x_val))
        ctx.partial(result)
        began = time.perf_counter()
        progress = JobProgress(ctx, epochs=run.epochs, extra={"images": len(x_train)})
        train(
            model,
            x_train,
            y_train,
            x_val,
            y_val,
            epochs=run.epochs,
            batch_size=run.batch_size,
            learning_rate=run.learning_rate,
            optimizer=run.optimizer,
            seed=run.seed,
            callbacks=[progress],
        )
        result.seconds = time.perf_counter() - began
        result.rows = [{k: v for k, v in r.items() if k != "filters"} for r in ctx._job.rows("epoch")]
        result.first_filters = next((r["filters"] for r in ctx._job.rows("start")), None)
        result.stopped = ctx.should_stop()
        if ctx._job._cancel:
            return result
        ctx.report(event="judging", epoch=len(result.rows), epochs=run.epochs, seconds=result.seconds)
        test_x, test_y = data.x_test[: run.test_limit], data.y_test[: run.test_limit]
        result.evaluation = evaluate_on(model, test_x, test_y, data.class_names)
        result.test_x = test_x
        return result

    return job


# --------------------------------------------------------------------------- the page's editor table and pictures

#: Columns of the layer editor: one row per layer; cells a layer type does not use stay empty.
TABLE_COLUMNS = ("order", "layer", "filters or units", "window", "stride", "padding", "activation", "rate")


def layers_to_table(layers: Sequence[Layer]) -> list[dict]:
    """Layers → editor rows (``TABLE_COLUMNS``)."""
    rows = []
    for place, layer in enumerate(layers, start=1):
        row = dict.fromkeys(TABLE_COLUMNS)
        row["order"] = place
        row["layer"] = type(layer).__name__
        if isinstance(layer, Conv2D):
            row.update(
                {
                    "filters or units": layer.filters,
                    "window": layer.kernel,
                    "stride": layer.stride,
                    "padding": layer.padding,
                    "activation": layer.activation,
                }
            )
        elif isinstance(layer, MaxPooling2D):
            row.update({"window": layer.size, "padding": layer.padding})
        elif isinstance(layer, Dense):
            row.update({"filters or units": layer.units, "activation": layer.activation})
        elif isinstance(layer, Dropout):
            row["rate"] = layer.rate
        rows.append(row)
    return rows


def _cell(row: dict, key: str, default: Any) -> Any:
    value = row.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return default
    return value


def reorder_table(rows: Sequence[dict]) -> tuple[list[dict], bool]:
    """Sort editor rows by their ``order`` number and number them 1, 2, 3… again; also say whether any row moved.

    A row without a number (one just added at the bottom) keeps its place. A row given the number
    of another row goes before it: typing 2 into row 5 moves it to the second place, as a visitor
    means; 2.5 puts it between rows 2 and 3.
    """

    def place(item: tuple[int, dict]) -> tuple[float, int, int]:
        position, row = item
        wanted = _cell(row, "order", None)
        try:
            number = float(wanted)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number):
            return float(position), 1, position
        return number, 0 if number != position else 1, position

    ranked = sorted(enumerate(rows, start=1), key=place)
    moved = [position for position, _ in ranked] != list(range(1, len(rows) + 1))
    return [{**row, "order": number} for number, (_, row) in enumerate(ranked, start=1)], moved


def layers_from_table(rows: Sequence[dict]) -> tuple[Layer, ...]:
    """Editor rows → layers; empty cells take the layer's default. Raises :class:`ArchitectureError`.

    Rows without a layer type are skipped (a row the visitor just added and has not filled in).
    """
    layers: list[Layer] = []
    for place, row in enumerate(rows, start=1):
        kind = _cell(row, "layer", None)
        if kind is None:
            continue
        if kind not in LAYER_TYPES:
            raise ArchitectureError(f"Row {place}: “{kind}” is not a layer this page can build.")
        try:
            if kind == "Conv2D":
                act = _cell(row, "activation", "relu")
                layer: Layer = Conv2D(
                    int(_cell(row, "filters or units", 16)),
                    int(_cell(row, "window", 3)),
                    int(_cell(row, "stride", 1)),
                    str(_cell(row, "padding", "valid")),
                    str(act),
                    use_bias=True,
                )
            elif kind == "MaxPooling2D":
                layer = MaxPooling2D(int(_cell(row, "window", 2)), str(_cell(row, "padding", "valid")))
            elif kind == "Dense":
                layer = Dense(int(_cell(row, "filters or units", 64)), str(_cell(row, "activation", "relu")))
            elif kind == "Dropout":
                layer = Dropout(float(_cell(row, "rate", 0.25)))
            else:
                layer = LAYER_TYPES[kind]()
        except (TypeError, ValueError):
            raise ArchitectureError(
                f"Row {place} ({kind}) needs whole numbers for filters, units, window and stride."
            ) from None
        if getattr(layer, "activation", "relu") not in ACTIVATIONS:
            raise ArchitectureError(f"Row {place} ({kind}): choose one of the activations {', '.join(ACTIVATIONS)}.")
        layers.append(layer)
    return tuple(layers)


def _rgb(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images, dtype=np.uint8)
    return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images


def sample_grid(
    x: np.ndarray, y: np.ndarray, n_classes: int, *, per_class: int = 10, scale: int = 2, gap: int = 2
) -> np.ndarray:
    """DIGITS' "explore the db": one row per class with its first ``per_class`` images, RGB uint8."""
    h, w = x.shape[1] * scale, x.shape[2] * scale
    grid = np.full((n_classes * (h + gap) - gap, per_class * (w + gap) - gap, 3), 255, np.uint8)
    for cls in range(n_classes):
        picks = np.flatnonzero(y == cls)[:per_class]
        for col, i in enumerate(picks):
            tile = _rgb(x[i]).repeat(scale, axis=0).repeat(scale, axis=1)
            grid[cls * (h + gap) : cls * (h + gap) + h, col * (w + gap) : col * (w + gap) + w] = tile
    return grid


def enlarge(images: np.ndarray, side: int = 96) -> np.ndarray:
    """Small images ``(N, H, W, C)`` → RGB ``(N, side', side', 3)`` blown up by a whole factor (sharp pixels)."""
    images = _rgb(images)
    factor = max(1, side // images.shape[1])
    return images.repeat(factor, axis=1).repeat(factor, axis=2)
