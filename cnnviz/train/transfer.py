"""Transfer learning as Teachable Machine does it: a frozen ImageNet base plus a small trained head.

The lesson in four steps, each a function here:

1. **Embed** every image once with a pretrained base network cut at its global average
   pooling (:func:`embed_images`): EfficientNet-Lite0 turns a picture into 1 280 numbers
   that describe it. Embeddings are cached per visitor by (image content, base) in an
   :class:`EmbeddingStore`, so retraining with other settings computes none again.
2. **Hold out** 15 % of each class for validation (:func:`stratified_split`, rounded up as
   Teachable Machine does), the images the model never trains on; the lesson's ``testing/``
   folder, when there is one, is the real test (:mod:`cnnviz.train.lesson`).
3. **Train a head** (:func:`build_head`, :func:`train_head`): Dense(100, ReLU) → Dense
   softmax with Adam, on the embeddings only. Because the base is frozen, training the
   head on stored embeddings gives exactly the gradient a full model would, at a
   thousandth of the cost; one compiled TensorFlow function runs a whole epoch.
4. **Judge and use** the result: :func:`evaluate` (per-class accuracy, confusion matrix,
   misclassified images), :func:`full_model` (one Keras model, raw pixels →
   probabilities, for export), :func:`predict_probabilities` and
   :func:`prediction_rows` (a table / CSV of predictions for a folder of images).

At most :data:`MAX_CONCURRENT_TRAININGS` trainings run at once in one server process
(:func:`training_slot`); visitors beyond that wait for a free slot.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Literal, Sequence, overload

import keras
import numpy as np
from numpy.typing import ArrayLike
import tensorflow as tf
from PIL import Image

from cnnviz import predictions
from cnnviz.images import THUMB_SIDE, thumbnail  # re-exported: one thumbnail for the whole app
from cnnviz.audit import measures
from cnnviz.model import compiled
from cnnviz.train import lesson

__all__ = [
    "DEFAULTS",
    "TrainingDefaults",
    "MAX_CONCURRENT_TRAININGS",
    "EmbeddingStore",
    "History",
    "Evaluation",
    "image_key",
    "thumbnail",
    "to_model_input",
    "embedding_model_for",
    "embed_images",
    "stratified_split",
    "build_head",
    "train_head",
    "evaluate",
    "head_probabilities",
    "full_model",
    "predict_probabilities",
    "prediction_rows",
    "rows_to_csv",
    "training_slot",
    "SlotTimeout",
]


@dataclass(frozen=True)
class TrainingDefaults:
    """Teachable Machine's training settings, also the lesson's (frozen: one shared copy)."""

    epochs: int = 50
    batch_size: int = 16
    learning_rate: float = 0.001
    validation_fraction: float = 0.15
    hidden_units: int = 100
    seed: int = 0

    # Typed per key, so DEFAULTS["seed"] is an int to mypy as DEFAULTS.seed is.
    @overload
    def __getitem__(self, name: Literal["epochs", "batch_size", "hidden_units", "seed"]) -> int: ...
    @overload
    def __getitem__(self, name: Literal["learning_rate", "validation_fraction"]) -> float: ...
    @overload
    def __getitem__(self, name: str) -> int | float: ...

    def __getitem__(self, name: str) -> int | float:
        # Pages written when this was a dict read DEFAULTS["epochs"]; keep them working.
        if name not in self.__dataclass_fields__:
            raise KeyError(name)
        value: int | float = getattr(self, name)
        return value


#: Teachable Machine's defaults, also the lesson's.
DEFAULTS = TrainingDefaults()

#: Trainings allowed at the same time in one server process (2 CPU cores: more would only
#: make every visitor wait longer). Set ``CNNVIZ_MAX_TRAININGS`` to change it.
MAX_CONCURRENT_TRAININGS = max(1, int(os.environ.get("CNNVIZ_MAX_TRAININGS", "2")))
_SLOTS = threading.BoundedSemaphore(MAX_CONCURRENT_TRAININGS)

# --------------------------------------------------------------------------- the per-visitor store


def image_key(image: np.ndarray) -> str:
    """A content hash of an image (shape + pixels): the same picture uploaded twice gets the same key."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr((image.shape, str(image.dtype))).encode())
    digest.update(np.ascontiguousarray(image).data)
    return digest.hexdigest()


class EmbeddingStore:
    """A bounded cache of one visitor's embeddings and thumbnails (lives in their session state).

    Keys are ``(image_key, base name)`` for embeddings and ``image_key`` for thumbnails;
    full images are never kept. When more than ``max_images`` images are stored, the
    least recently used are dropped. 5 000 images cost about 25 MB of embeddings
    (1 280 float32 each) plus at most 140 MB of thumbnails.
    """

    def __init__(self, max_images: int = 6_000, thumb_side: int = THUMB_SIDE) -> None:
        self.max_images = max_images
        self.thumb_side = thumb_side
        self._embeddings: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._thumbnails: OrderedDict[str, np.ndarray] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._thumbnails)

    def __contains__(self, key: str) -> bool:
        return key in self._thumbnails

    def embedding(self, key: str, base: str) -> np.ndarray | None:
        """The cached embedding of image ``key`` under ``base``, or ``None`` (counts hits and misses)."""
        found = self._embeddings.get((key, base))
        if found is None:
            self.misses += 1
            return None
        self.hits += 1
        self._embeddings.move_to_end((key, base))
        self._thumbnails.move_to_end(key)
        return found

    def thumbnail(self, key: str) -> np.ndarray | None:
        return self._thumbnails.get(key)

    def put(self, key: str, base: str, embedding: np.ndarray, image: np.ndarray | None = None) -> None:
        """Store an embedding (float32 copy) and, if ``image`` is given and new, its thumbnail."""
        self._embeddings[(key, base)] = np.asarray(embedding, dtype=np.float32).copy()
        if key not in self._thumbnails and image is not None:
            self._thumbnails[key] = thumbnail(image, self.thumb_side)
        if key in self._thumbnails:
            self._thumbnails.move_to_end(key)
        self._evict()

    def entries(self) -> dict[str, tuple[np.ndarray | None, dict[str, np.ndarray]]]:
        """Every image in the store, least recently used first: ``{key: (thumbnail, {base: embedding})}``
        (a workspace saves these; the arrays are the store's own, not copies)."""
        found: dict[str, tuple[np.ndarray | None, dict[str, np.ndarray]]] = {
            key: (thumb, {}) for key, thumb in self._thumbnails.items()
        }
        for (key, base), embedding in self._embeddings.items():
            found.setdefault(key, (None, {}))[1][base] = embedding
        return found

    def restore(self, key: str, thumb: np.ndarray | None, embeddings: dict[str, np.ndarray]) -> None:
        """Put back one image as :meth:`entries` gave it (a workspace reopened)."""
        if thumb is not None:
            self._thumbnails[key] = thumb
        for base, embedding in embeddings.items():
            self._embeddings[(key, base)] = np.asarray(embedding, dtype=np.float32)
        self._evict()

    def nbytes(self) -> int:
        """Memory held by the store's arrays, in bytes."""
        return sum(a.nbytes for a in self._embeddings.values()) + sum(a.nbytes for a in self._thumbnails.values())

    def _evict(self) -> None:
        while len(self._thumbnails) > self.max_images:
            old, _ = self._thumbnails.popitem(last=False)
            for pair in [k for k in self._embeddings if k[0] == old]:
                del self._embeddings[pair]
        while len(self._embeddings) > 2 * self.max_images:
            self._embeddings.popitem(last=False)


# --------------------------------------------------------------------------- embedding


def to_model_input(images: Sequence[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """Resize RGB ``uint8`` images to ``size = (H, W)`` (Pillow bilinear) → float32 ``(N, H, W, 3)`` raw 0–255.

    The base models carry their own preprocessing (``Rescaling``), so pixels stay 0–255.
    """
    height, width = size
    batch = np.empty((len(images), height, width, 3), dtype=np.float32)
    for i, image in enumerate(images):
        if image.shape[:2] == (height, width):
            batch[i] = image
        else:
            batch[i] = np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))
    return batch


def embedding_model_for(base: keras.Model) -> keras.Model:
    """The base cut at the features entering its final Dense layer (its global average pooling).

    Uses :func:`cnnviz.model.registry.embedding_model` (the registry's contract).
    """
    from cnnviz.model.registry import embedding_model

    return embedding_model(base)


def _compiled(model: keras.Model) -> Callable[[np.ndarray], tf.Tensor]:
    """One traced inference function per model (:func:`cnnviz.model.compiled.inference`)."""
    return compiled.inference(model)


def embed_images(
    images: Sequence[np.ndarray],
    embedder: keras.Model,
    base_name: str,
    *,
    store: EmbeddingStore | None = None,
    batch_size: int = 32,
    on_progress: Callable[[int, int], object] | None = None,
) -> tuple[list[str], np.ndarray]:
    """Embed images with ``embedder``, reusing cached embeddings. Returns ``(keys, (N, D) float32)``.

    Only images missing from ``store`` (for this ``base_name``) go through the network,
    in batches of ``batch_size``, on LiteRT (:func:`cnnviz.model.fast_embed.embedder`; Keras
    when the base cannot be converted). ``on_progress(done, total)``
    is called after each batch (the page moves a progress bar).
    """
    keys = [image_key(image) for image in images]
    found: dict[int, np.ndarray] = {}
    missing: list[int] = []
    for i, key in enumerate(keys):
        cached = store.embedding(key, base_name) if store is not None else None
        if cached is None:
            missing.append(i)
        else:
            found[i] = cached
    size = tuple(embedder.input_shape[1:3])
    from cnnviz.model import fast_embed  # the shared base runs on LiteRT (Keras if it cannot convert)

    call = fast_embed.embedder(embedder, persist=True) if missing else None
    total = len(missing)
    for start in range(0, total, batch_size):
        chunk = missing[start : start + batch_size]
        assert call is not None  # made above whenever something is missing
        features = np.asarray(call(to_model_input([images[i] for i in chunk], size)), dtype=np.float32)
        for i, feature in zip(chunk, features):
            found[i] = feature
            if store is not None:
                store.put(keys[i], base_name, feature, images[i])
        if on_progress is not None:
            on_progress(min(start + batch_size, total), total)
    if not keys:
        return keys, np.zeros((0, int(embedder.output_shape[-1])), dtype=np.float32)
    return keys, np.stack([found[i] for i in range(len(keys))]).astype(np.float32)


# --------------------------------------------------------------------------- data split and head


def stratified_split(labels: ArrayLike, fraction: float = 0.15, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, validation)``: ``fraction`` of each class held out, the same for the same seed.

    How many images of a class are held out is :func:`cnnviz.train.lesson.validation_count`
    (Teachable Machine's rounding up, but every class keeps at least one training image),
    so a class of 5 images has 1 validation image and a class of 20 has 4.
    """
    label_array = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train: list[int] = []
    val: list[int] = []
    for cls in np.unique(label_array):
        members = np.flatnonzero(label_array == cls)
        rng.shuffle(members)
        n_val = lesson.validation_count(len(members), fraction)
        val.extend(members[:n_val])
        train.extend(members[n_val:])
    return np.sort(np.array(train, dtype=np.int64)), np.sort(np.array(val, dtype=np.int64))


def build_head(
    n_features: int, n_classes: int, *, hidden_units: int = DEFAULTS.hidden_units, seed: int = DEFAULTS.seed
) -> keras.Model:
    """Teachable Machine's head: Dense(``hidden_units``, ReLU) → Dense(``n_classes``, softmax).

    Input ``(None, n_features)`` embeddings, output class probabilities.
    """
    init = keras.initializers.VarianceScaling(seed=seed)
    return keras.Sequential(
        [
            keras.Input((n_features,), name="embedding"),
            keras.layers.Dense(hidden_units, activation="relu", kernel_initializer=init, name="head_hidden"),
            keras.layers.Dense(
                n_classes,
                activation="softmax",
                use_bias=False,
                kernel_initializer=keras.initializers.VarianceScaling(seed=seed + 1),
                name="head_probabilities",
            ),
        ],
        name="head",
    )


@dataclass
class History:
    """One row per finished epoch: ``epoch`` (1-based), ``loss``, ``accuracy``, ``val_loss``,
    ``val_accuracy`` (``None`` without a validation set) and ``seconds`` since training began."""

    rows: list[dict] = field(default_factory=list)
    stopped: bool = False
    epochs_planned: int = 0

    @property
    def last(self) -> dict | None:
        return self.rows[-1] if self.rows else None


def train_head(
    head: keras.Model,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    *,
    epochs: int = DEFAULTS.epochs,
    batch_size: int = DEFAULTS.batch_size,
    learning_rate: float = DEFAULTS.learning_rate,
    seed: int = DEFAULTS.seed,
    on_epoch: Callable[[dict], bool | None] | None = None,
    history: History | None = None,
) -> History:
    """Train ``head`` in place on embeddings with Adam and cross-entropy; returns the :class:`History`.

    ``x_*`` are ``(N, D)`` float32 embeddings, ``y_*`` integer class indices. Each epoch
    shuffles the training set (seeded) and runs all its mini-batches inside ONE compiled
    TensorFlow function; validation is one more call. ``on_epoch(row)`` is called after
    every epoch; returning ``True`` stops training (the head keeps what it learnt).
    Pass ``history`` to have it filled while training runs (a page keeps it when the
    visitor interrupts).
    """
    history = history if history is not None else History()
    history.epochs_planned = epochs
    x_train = tf.constant(np.asarray(x_train, dtype=np.float32))
    y_train = tf.constant(np.asarray(y_train, dtype=np.int32))
    has_val = x_val is not None and len(x_val) > 0
    if has_val:
        x_val_t = tf.constant(np.asarray(x_val, dtype=np.float32))
        y_val_t = tf.constant(np.asarray(y_val, dtype=np.int32))
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
    optimizer.build(head.trainable_variables)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    variables = head.trainable_variables
    batch = tf.constant(int(batch_size))

    @tf.function
    def run_epoch(order: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        n = tf.shape(order)[0]
        loss_sum = tf.constant(0.0)
        correct = tf.constant(0.0)
        for start in tf.range(0, n, batch):
            idx = order[start : start + batch]
            xb = tf.gather(x_train, idx)
            yb = tf.gather(y_train, idx)
            with tf.GradientTape() as tape:
                probs = head(xb, training=True)
                loss = loss_fn(yb, probs)
            optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
            size = tf.cast(tf.shape(idx)[0], tf.float32)
            loss_sum += loss * size
            correct += tf.reduce_sum(tf.cast(tf.equal(tf.argmax(probs, axis=1, output_type=tf.int32), yb), tf.float32))
        count = tf.cast(n, tf.float32)
        return loss_sum / count, correct / count

    @tf.function
    def validate(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        probs = head(x, training=False)
        hit = tf.cast(tf.equal(tf.argmax(probs, axis=1, output_type=tf.int32), y), tf.float32)
        return loss_fn(y, probs), tf.reduce_mean(hit)

    rng = np.random.default_rng(seed)
    n_train = int(x_train.shape[0])
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        loss, accuracy = run_epoch(tf.constant(rng.permutation(n_train).astype(np.int32)))
        row = {"epoch": epoch, "loss": float(loss), "accuracy": float(accuracy), "val_loss": None, "val_accuracy": None}
        if has_val:
            val_loss, val_accuracy = validate(x_val_t, y_val_t)
            row["val_loss"], row["val_accuracy"] = float(val_loss), float(val_accuracy)
        row["seconds"] = time.perf_counter() - started
        history.rows.append(row)
        if on_epoch is not None and on_epoch(row):
            history.stopped = epoch < epochs
            break
    return history


# --------------------------------------------------------------------------- judging the result


@dataclass
class Evaluation:
    """How a classifier did on labelled images.

    ``confusion[i, j]`` counts images of true class ``i`` predicted as ``j``;
    ``per_class_accuracy[i]`` is the share of class ``i`` predicted right (NaN without
    images); ``misclassified`` lists indices into the evaluated images.
    """

    class_names: list[str]
    probabilities: np.ndarray
    labels: np.ndarray
    confusion: np.ndarray
    per_class_accuracy: np.ndarray
    accuracy: float
    misclassified: list[int]

    @property
    def predictions(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)


def evaluate(probabilities: np.ndarray, labels: Sequence[int] | np.ndarray, class_names: Sequence[str]) -> Evaluation:
    """Per-class accuracy, confusion matrix and misclassified images from ``(N, C)`` probabilities.

    The counting is :func:`cnnviz.audit.measures.confusion_matrix` and
    :func:`~cnnviz.audit.measures.per_class_accuracy`, the audit's own; for results with
    file names and the errors sorted by confidence use :func:`cnnviz.train.lesson.evaluate_set`.
    """
    probabilities = np.asarray(probabilities, dtype=np.float32).reshape(-1, len(class_names))
    truth = np.asarray(labels, dtype=np.int64)
    predicted = probabilities.argmax(axis=1) if len(truth) else np.zeros(0, dtype=np.int64)
    n = len(class_names)
    confusion = measures.confusion_matrix(truth, predicted, n)
    per_class = measures.per_class_accuracy(truth, predicted, n)
    accuracy = float((predicted == truth).mean()) if len(truth) else float("nan")
    return Evaluation(
        list(class_names),
        probabilities,
        truth,
        confusion,
        per_class,
        accuracy,
        [int(i) for i in np.flatnonzero(predicted != truth)],
    )


def head_probabilities(head: keras.Model, embeddings: np.ndarray) -> np.ndarray:
    """``(N, C)`` probabilities of the head for ``(N, D)`` embeddings."""
    if len(embeddings) == 0:
        return np.zeros((0, int(head.output_shape[-1])), dtype=np.float32)
    return _compiled(head)(np.asarray(embeddings, dtype=np.float32)).numpy()


def full_model(embedder: keras.Model, head: keras.Model, *, name: str = "classifier") -> keras.Model:
    """One Keras model, raw 0–255 pixels ``(None, H, W, 3)`` → class probabilities.

    The base's layers up to its global average pooling followed by copies of the head's
    Dense layers, in one flat functional graph (no Lambda layers, no nested models), so it
    saves as ``.keras``, converts to TFLite, and the feature-map viewer, Grad-CAM and the
    audit's embedding see every layer. The base's layers are shared with ``embedder`` (frozen);
    the head's layers are *copied* with their trained weights: a layer called in two graphs
    has two inputs, and a sub-model cut at "the input of the last Dense layer" would then
    reach into the head's own graph ("not connected to inputs").
    """
    x = embedder.outputs[0]
    for layer in head.layers:
        copy = layer.__class__.from_config(layer.get_config())
        x = copy(x)
        copy.set_weights(layer.get_weights())
    return keras.Model(embedder.inputs, x, name=name)


def predict_probabilities(model: keras.Model, images: Sequence[np.ndarray], *, batch_size: int = 32) -> np.ndarray:
    """``(N, C)`` class probabilities of a raw-pixel model for RGB ``uint8`` images (resized to fit)."""
    size = tuple(model.input_shape[1:3])
    call = _compiled(model)
    out = [call(to_model_input(images[i : i + batch_size], size)).numpy() for i in range(0, len(images), batch_size)]
    if not out:
        return np.zeros((0, int(model.output_shape[-1])), dtype=np.float32)
    return np.concatenate(out).astype(np.float32)


def prediction_rows(
    names: Sequence[str], probabilities: np.ndarray, class_names: Sequence[str], **options: Any
) -> list[dict]:
    """Rows for a table/CSV, one per image: :func:`cnnviz.predictions.prediction_rows` (the one builder).

    ``options``: ``folders``, ``true_classes``, ``threshold`` (the ``unsure`` flag), ``decimals``.
    """
    return predictions.prediction_rows(names, probabilities, class_names, **options)


def rows_to_csv(rows: Sequence[dict]) -> str:
    """CSV text of :func:`prediction_rows` output (:func:`cnnviz.predictions.rows_to_csv`)."""
    return predictions.rows_to_csv(rows)


# --------------------------------------------------------------------------- sharing the server


class SlotTimeout(RuntimeError):
    """No training slot became free in time."""


@contextmanager
def training_slot(
    on_wait: Callable[[float], object] | None = None, *, poll_s: float = 0.5, timeout_s: float | None = None
) -> Iterator[None]:
    """Hold one of the :data:`MAX_CONCURRENT_TRAININGS` process-wide training slots.

    When all are taken, ``on_wait(seconds_waited)`` is called every ``poll_s`` seconds
    (the page shows "waiting for a free slot"; a Streamlit call there also lets the
    visitor cancel). Raises :class:`SlotTimeout` after ``timeout_s``.
    """
    waited = 0.0
    if not _SLOTS.acquire(blocking=False):
        while True:
            if on_wait is not None:
                on_wait(waited)
            if _SLOTS.acquire(timeout=poll_s):
                break
            waited += poll_s
            if timeout_s is not None and waited >= timeout_s:
                raise SlotTimeout(f"No training slot became free within {timeout_s:.0f} s; please try again.")
    try:
        yield
    finally:
        _SLOTS.release()
