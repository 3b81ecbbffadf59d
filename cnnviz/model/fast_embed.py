"""The frozen base network's embedding at the speed of the hardware: LiteRT, decoding overlapped.

Every trainer, audit and command-line run spends most of its time pushing pictures through the
frozen base network cut at its global average pooling (:func:`cnnviz.model.registry.embedding_model`).
This module runs that network on LiteRT (the ``ai-edge-litert`` interpreter, XNNPACK on, one
thread per core this process may use). On the 2-core development machine (``bench/embed.py``,
decoding included) it embeds 1.7× as many images per second as the same Keras model under
``tf.function`` and needs 0.57× the CPU time for a 5 000-picture zip, its features differing
by at most 4e-5; ONNX Runtime 1.32 (converted with tf2onnx) ran the same network at about a
third of LiteRT's speed there, so LiteRT it is.

Keras stays the source of truth: the Keras model is converted (float32, no quantisation) and
the conversion only *runs* it; Grad-CAM, feature maps and export keep using the Keras model.

- :func:`embedder` returns a callable ``(N, H, W, C) float32 -> (N, D) float32``: the LiteRT
  interpreter when the model converts, else the Keras model (one log line, never an error).
- :func:`embed_stream` decodes and resizes the next batch of pictures in a worker thread
  (Pillow releases the GIL while decoding) while the current batch is in the network, with a
  bounded queue between them, and yields one :class:`Embedded` per picture, in input order.

Conversions are cached by the model's *content* (architecture + weights + library versions),
so the base of a classifier trained on EfficientNet-Lite0 reuses the base's conversion, and
each model is converted at most once per process. Converting takes seconds (5–15 s for
EfficientNet-Lite0 here), so ``persist=True`` (the shipped base networks, identical for every
visitor) also keeps the flatbuffer in Keras's cache folder, and a model that is not converted
yet is only converted for a job of at least :data:`CONVERT_MIN_IMAGES` images, below which
Keras is quicker than converting first.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generator, Iterable, Sized

import keras
import numpy as np
from PIL import Image

from cnnviz.read_ahead import read_ahead

__all__ = [
    "THREADS",
    "CONVERT_MIN_IMAGES",
    "ConversionError",
    "Embedded",
    "thread_count",
    "fingerprint",
    "convert",
    "embedder",
    "is_fast",
    "split_at_embedding",
    "features_and_outputs",
    "embed_stream",
]

log = logging.getLogger(__name__)


def thread_count() -> int:
    """Cores this process may run on (its CPU affinity, which containers and ``taskset`` narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


#: Interpreter threads: one per core this process may use.
THREADS = thread_count()
#: A model that is not converted yet is converted only for a job of at least this many images.
#: Converting EfficientNet-Lite0 takes 5–15 s here and saves about 3 ms per image, so
#: below roughly 2 000 images Keras finishes first.
CONVERT_MIN_IMAGES = int(os.environ.get("CNNVIZ_CONVERT_MIN_IMAGES", "2000"))
#: Converted models kept in memory (each holds its weights and the interpreter's buffers).
MAX_RUNNERS = 4


class ConversionError(RuntimeError):
    """A Keras model that LiteRT cannot run (an operation it has no kernel for, an odd input)."""


# --------------------------------------------------------------------------- identity of a model

_FINGERPRINTS: "weakref.WeakKeyDictionary[keras.Model, str]" = weakref.WeakKeyDictionary()
_FINGERPRINTS_LOCK = threading.Lock()


def _versions() -> str:
    import tensorflow as tf

    try:
        from importlib.metadata import version

        litert = version("ai-edge-litert")
    except Exception:  # the package is missing: the fingerprint still names TF and Keras
        litert = "none"
    return f"tf {tf.__version__} keras {keras.__version__} litert {litert}"


def fingerprint(model: keras.Model) -> str:
    """A hash of what a model computes: its layers' configuration and weights, not its name.

    Two model objects with the same layers and weights (the shipped base and the base inside a
    classifier trained on it) share a fingerprint, hence one conversion. Computed once per object.
    """
    with _FINGERPRINTS_LOCK:
        found = _FINGERPRINTS.get(model)
    if found is not None:
        return found
    config = model.get_config()
    if isinstance(config, dict):
        config = {k: v for k, v in config.items() if k != "name"}
    digest = hashlib.blake2b(digest_size=16)
    digest.update(_versions().encode())
    digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    for weight in model.weights:
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(weight))
        digest.update(repr((value.shape, str(value.dtype))).encode())
        digest.update(value.data)
    found = digest.hexdigest()
    with _FINGERPRINTS_LOCK:
        _FINGERPRINTS[model] = found
    return found


# --------------------------------------------------------------------------- conversion


def _static_input(model: keras.Model) -> tuple[int, ...]:
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ConversionError(
            f"{model.name} has {len(model.inputs)} inputs and {len(model.outputs)} outputs, not one of each."
        )
    shape = tuple(model.inputs[0].shape[1:])
    if any(d is None for d in shape):
        raise ConversionError(f"{model.name} takes inputs of any size {shape}; LiteRT needs a fixed size.")
    return tuple(int(d) for d in shape)


class _QuietFrozenGraphWarning(logging.Filter):
    """Drops TF's note that conversion without ``trackable_obj`` is "deprecated": the weights are
    frozen into the graph on purpose (see :func:`convert`), so the note says nothing to act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "trackable_obj" not in record.getMessage()


logging.getLogger("absl").addFilter(_QuietFrozenGraphWarning())


def convert(model: keras.Model) -> bytes:
    """The model as a float32 LiteRT flatbuffer (TFLite builtin operations only).

    The model's weights are frozen into constants of one traced function (no SavedModel on
    disk, no printing). Raises :class:`ConversionError` when the converter refuses the model,
    e.g. for an operation without a LiteRT kernel.
    """
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    shape = _static_input(model)
    spec = tf.TensorSpec((None, *shape), tf.float32, name="pixels")
    try:
        traced = tf.function(lambda x: model(x, training=False), input_signature=[spec])
        frozen = convert_variables_to_constants_v2(traced.get_concrete_function())
        # Without ``trackable_obj`` the converter takes the frozen graph as it is: 2.3 s of CPU for
        # EfficientNet-Lite0 instead of 6.5 s for a SavedModel round trip, same flatbuffer ops.
        converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        return converter.convert()
    except Exception as err:  # the converter raises many kinds (ConverterError, ValueError, ...)
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ConversionError(f"{type(err).__name__}: {first[:300]}") from err


class _Runner:
    """One LiteRT interpreter at batch 1 (XNNPACK gains nothing from larger batches here and
    never has to re-plan for a short last batch), used by one thread at a time."""

    def __init__(self, flatbuffer: bytes, input_shape: tuple[int, ...], threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        # AUTO = the builtin kernels with LiteRT's default delegate, XNNPACK, applied.
        self.interpreter = Interpreter(
            model_content=flatbuffer, num_threads=threads, experimental_op_resolver_type=OpResolverType.AUTO
        )
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = self.interpreter.get_output_details()[0]["index"]
        self.interpreter.resize_tensor_input(self.input, [1, *input_shape], strict=False)
        self.interpreter.allocate_tensors()
        self.input_shape = input_shape
        self.features = int(np.prod(self.interpreter.get_output_details()[0]["shape"][1:]))
        self.lock = threading.Lock()

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        pixels = np.ascontiguousarray(pixels, dtype=np.float32)  # set_tensor copies C-ordered memory
        out = np.empty((len(pixels), self.features), dtype=np.float32)
        with self.lock:
            for i in range(len(pixels)):
                self.interpreter.set_tensor(self.input, pixels[i : i + 1])
                self.interpreter.invoke()  # releases the GIL: decoding goes on meanwhile
                out[i] = self.interpreter.get_tensor(self.output).reshape(-1)
        return out


_RUNNERS: "OrderedDict[str, _Runner | None]" = OrderedDict()  # None: it does not convert
_RUNNERS_LOCK = threading.Lock()
_CONVERT_LOCK = threading.Lock()


def _cache_file(key: str) -> Path:
    from cnnviz.keras_cache import keras_cache_dir

    return keras_cache_dir() / "litert" / f"{key}.tflite"


def _load_or_convert(model: keras.Model, key: str, *, persist: bool, convert_new: bool) -> _Runner | None:
    # Reading a kept conversion is harmless for any model; only shared models are written.
    path = _cache_file(key)
    flatbuffer = None
    if path.is_file():
        try:
            flatbuffer = path.read_bytes()
        except OSError:
            flatbuffer = None
    if flatbuffer is not None:
        try:
            return _Runner(flatbuffer, _static_input(model), THREADS)
        except Exception as err:  # a damaged file (a disk that filled up): convert again
            log.info("Converting %s again: its kept LiteRT file could not be used (%s)", model.name, err)
            path.unlink(missing_ok=True)
            flatbuffer = None
    if flatbuffer is None:
        if not convert_new:
            return None
        flatbuffer = convert(model)
        if persist:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                partial = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.part")
                partial.write_bytes(flatbuffer)
                os.replace(partial, path)  # never a half-written file for another process
            except OSError as err:
                log.info("Could not keep the LiteRT conversion of %s on disk (%s)", model.name, err)
    return _Runner(flatbuffer, _static_input(model), THREADS)


def _fast_runner(model: keras.Model, *, persist: bool, convert_new: bool) -> _Runner | None:
    try:
        key = fingerprint(model)
    except Exception as err:
        log.warning("Embedding with Keras for %s: it could not be fingerprinted (%s)", model.name, err)
        return None
    with _RUNNERS_LOCK:
        if key in _RUNNERS:
            _RUNNERS.move_to_end(key)
            return _RUNNERS[key]
    # One conversion at a time (CPU-bound anyway, and never the same model twice), without
    # holding up visitors whose model is converted already.
    with _CONVERT_LOCK:
        with _RUNNERS_LOCK:
            if key in _RUNNERS:
                return _RUNNERS[key]
        try:
            runner = _load_or_convert(model, key, persist=persist, convert_new=convert_new)
        except Exception as err:  # ConversionError, or an interpreter that refuses the flatbuffer
            log.warning("Embedding with Keras for %s: LiteRT cannot run it (%s)", model.name, err)
            runner = None
        else:
            if runner is None:
                return None  # not converted yet and this job is too small to be worth it
        with _RUNNERS_LOCK:
            _RUNNERS[key] = runner
            while len(_RUNNERS) > MAX_RUNNERS:
                _RUNNERS.popitem(last=False)
        return runner


def _keras_call(model: keras.Model) -> Callable[[np.ndarray], np.ndarray]:
    """The Keras model under one traced ``tf.function`` (the path LiteRT replaces)."""
    import tensorflow as tf

    from cnnviz.model import compiled

    traced = compiled.inference(model)

    def fn(pixels: np.ndarray) -> np.ndarray:
        out = traced(tf.constant(np.asarray(pixels, dtype=np.float32))).numpy()
        return out.reshape(len(out), -1).astype(np.float32)

    return fn


def embedder(
    model: keras.Model, *, persist: bool = False, images: int | None = None, fast: bool = True
) -> Callable[[np.ndarray], np.ndarray]:
    """A callable ``(N, H, W, C) float32 raw pixels -> (N, D) float32`` features of ``model``.

    ``model`` is an embedding model (one input, one output, e.g. from
    :func:`cnnviz.model.registry.embedding_model`). The callable runs LiteRT when the model
    converts and Keras otherwise; a model that fails to convert is logged once and never
    tried again in this process. ``persist=True`` keeps the conversion on disk (for models
    every visitor shares). A model not converted yet is converted when ``persist`` is set or
    ``images`` (the size of the job, if known) reaches :data:`CONVERT_MIN_IMAGES`; otherwise
    this job runs on Keras. ``fast=False`` always gives Keras (benchmarks, tests).
    """
    if fast:
        convert_new = persist or (images is not None and images >= CONVERT_MIN_IMAGES)
        runner = _fast_runner(model, persist=persist, convert_new=convert_new)
        if runner is not None:
            return runner
    return _keras_call(model)


def is_fast(call: Callable) -> bool:
    """True when a callable from :func:`embedder` runs on LiteRT."""
    return isinstance(call, _Runner)


# --------------------------------------------------------------------------- a classifier, split

_SPLITS: "weakref.WeakKeyDictionary[keras.Model, tuple]" = weakref.WeakKeyDictionary()
_SPLITS_LOCK = threading.Lock()


def split_at_embedding(model: keras.Model) -> tuple[keras.Model, keras.Model | None]:
    """``(trunk, tail)``: input → penultimate features, and features → the model's output.

    The trunk is :func:`cnnviz.model.registry.embedding_model` (the network's expensive part,
    run on LiteRT); the tail is the final Dense layers, run on Keras (cheap). ``tail`` is
    ``None`` when the output does not depend on the features alone (e.g. a skip connection
    around them). Cached per model object.
    """
    with _SPLITS_LOCK:
        found = _SPLITS.get(model)
    if found is None:
        from cnnviz.model.registry import embedding_model

        trunk = embedding_model(model)
        try:
            tail = keras.Model(trunk.outputs[0], model.outputs[0], name=f"{model.name}_tail")
        except Exception:  # the output reaches back past the features
            tail = None
        found = (trunk, tail)
        with _SPLITS_LOCK:
            found = _SPLITS.setdefault(model, found)  # two visitors at once keep one split
    return found


def features_and_outputs(
    model: keras.Model, *, images: int | None = None, persist: bool = False, fast: bool = True
) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None:
    """For a classifier: ``pixels -> (features (N, D), outputs (N, C))``, both float32, its trunk on LiteRT.

    The trunk (:func:`split_at_embedding`) goes through :func:`embedder`, the tail through
    Keras. ``None`` when the trunk would run on Keras anyway or the model does not split:
    the caller then keeps its own one-call Keras path, which computes both at once.
    """
    try:
        trunk, tail = split_at_embedding(model)
    except Exception:  # no final Dense layer etc.: the caller's own path says so in a sentence
        return None
    if tail is None:
        return None
    features = embedder(trunk, persist=persist, images=images, fast=fast)
    if not is_fast(features):
        return None
    head = _keras_call(tail)
    head_shape = tuple(tail.inputs[0].shape[1:])

    def run(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        feats = features(pixels)
        return feats, head(feats.reshape((len(feats), *head_shape)))

    return run


# --------------------------------------------------------------------------- decoding overlapped


@dataclass(frozen=True)
class Embedded:
    """One picture of :func:`embed_stream`.

    ``index`` is its position in the input, ``item`` what was passed in (a
    :class:`cnnviz.zips.ZipImage` keeps its path and label), ``image`` the decoded
    ``(H, W, 3)`` RGB ``uint8`` picture and ``embedding`` its ``(D,)`` float32 features;
    for a file that could not be read both are ``None`` and ``error`` says why in one sentence.
    """

    index: int
    item: Any
    image: np.ndarray | None
    embedding: np.ndarray | None
    error: str | None = None


def _decode(item: Any, max_side: int | None) -> np.ndarray:
    from cnnviz.images import load_image, load_image_file

    if isinstance(item, np.ndarray):
        return item
    if isinstance(item, (bytes, bytearray, memoryview)):
        return load_image(bytes(item), max_side=max_side)
    if isinstance(item, (str, os.PathLike)):
        return load_image_file(item, max_side=max_side)
    image = getattr(item, "image", None)  # a ZipImage, already decoded by the zip reader
    if isinstance(image, np.ndarray):
        return image
    raise TypeError(f"cannot embed a {type(item).__name__}")


def _model_input(image: np.ndarray, out: np.ndarray) -> None:
    """Write ``image`` into ``out`` ``(H, W, C)`` float32 0–255 as :func:`cnnviz.model.registry.prepare`
    makes it (Pillow bilinear): straight from Pillow's bytes into the batch, no float copy between."""
    height, width, channels = out.shape
    pil = Image.fromarray(np.asarray(image, dtype=np.uint8))
    pil = pil.convert("L" if channels == 1 else "RGB")
    if pil.size != (width, height):
        pil = pil.resize((width, height), Image.Resampling.BILINEAR)
    pixels = np.asarray(pil)
    out[...] = pixels[..., None] if channels == 1 else pixels


def embed_stream(
    items: Iterable[Any],
    model: keras.Model,
    *,
    batch_size: int = 8,
    prefetch: int = 4,
    max_side: int | None = 512,
    persist: bool = False,
    fast: bool = True,
    on_progress: Callable[[int, int | None], None] | None = None,
) -> Generator[Embedded, None, None]:
    """Embed pictures with ``model`` (an embedding model), decoding the next batch while this one runs.

    ``items`` may be image bytes, file paths, ``(H, W, 3)`` RGB ``uint8`` arrays or objects
    with such an ``image`` (:class:`cnnviz.zips.ZipImage`); it is read lazily by one worker
    thread that decodes (bytes and paths go through :func:`cnnviz.images.load_image` with
    ``max_side``, as the trainer reads uploads) and resizes to the model's input. At most
    ``prefetch`` batches of ``batch_size`` wait between the worker and the network, so memory
    stays bounded however long the collection is (the interpreter runs one picture at a time, so
    a small ``batch_size`` only makes the network start sooner). Yields one :class:`Embedded` per item, in
    input order, including unreadable files (with ``error``). ``on_progress(done, total)``
    follows each batch (``total`` is ``None`` when ``items`` has no length). Stopping early
    (breaking out of the loop) stops the worker.
    """
    total = len(items) if isinstance(items, Sized) else None
    call = embedder(model, persist=persist, images=total, fast=fast)
    if any(d is None for d in model.inputs[0].shape[1:]):
        raise ValueError(
            f"{model.name} takes pictures of any size; embed_stream needs a model with a fixed input size."
        )
    shape = tuple(int(d) for d in model.inputs[0].shape[1:])

    def decoded_batches() -> Generator[tuple[list[tuple[int, Any, np.ndarray | None, str | None]], np.ndarray]]:
        from cnnviz.images import ImageError

        batch: list[tuple[int, Any, np.ndarray | None, str | None]] = []
        pixels = np.empty((batch_size, *shape), np.float32)  # a fresh one per batch: the queue holds them
        ready = 0
        for index, item in enumerate(items):
            try:
                image = _decode(item, max_side)
            except ImageError as err:
                batch.append((index, item, None, str(err)))
            else:
                batch.append((index, item, image, None))
                _model_input(image, pixels[ready])
                ready += 1
            if len(batch) >= batch_size:
                yield batch, pixels[:ready]
                batch, pixels, ready = [], np.empty((batch_size, *shape), np.float32), 0
        if batch:
            yield batch, pixels[:ready]

    done = 0
    # One worker thread decodes the next batches (at most ``prefetch`` wait) while this one runs.
    for batch, pixels in read_ahead(decoded_batches(), depth=prefetch, name="cnnviz-decode"):
        features = call(pixels) if len(pixels) else np.zeros((0, 0), np.float32)
        row = 0
        for index, item, image, error in batch:
            if image is None:
                yield Embedded(index, item, None, None, error)
            else:
                yield Embedded(index, item, image, features[row])
                row += 1
        done += len(batch)
        if on_progress is not None:
            on_progress(done, total)
