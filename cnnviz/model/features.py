"""Feature maps, receptive fields and Grad-CAM: what every layer of a trained CNN responds to.

The lecture question is "what does the network see, layer by layer?". The answer is the
output of each convolution, pooling, activation and residual addition for one image.

Speed matters on a 2-core lecture laptop, so all feature maps of an image come from ONE
multi-output ``keras.Model`` (:func:`feature_model`) run as ONE compiled ``tf.function``
with a fixed input signature: one forward pass, no per-layer models, no ``predict()``
(which builds a dataset and an iterator for every call). The compiled functions are kept
per model object in weak dictionaries: they die with the model and can only be reached by
whoever holds that model, so one visitor's model never leaks to another.

Conventions: images are ``(H, W, 3)`` RGB ``uint8``; models take raw 0–255 float pixels
``(1, H, W, C)`` and output class probabilities (see :mod:`cnnviz.model.registry`); feature maps are
``(H, W, C)`` ``float32`` without the batch axis.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import cv2
import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from cnnviz.model import compiled
from cnnviz.model.registry import prepare

__all__ = [
    "feature_layers",
    "feature_model",
    "feature_maps",
    "layer_maps",
    "probabilities",
    "LayerRow",
    "layer_table",
    "receptive_fields",
    "receptive_field_sentence",
    "tile_channels",
    "tile_images",
    "colorize",
    "overlay",
    "first_layer_kernels",
    "top_channels",
    "png_bytes",
    "channel_means",
    "last_conv_layer",
    "grad_cam",
    "grad_cams",
]

# Layer types whose outputs are worth looking at. Batch normalisation, dropout and
# reshaping layers are left out: they only rescale or move what the layer before computed.
_CONV = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D, keras.layers.Conv2DTranspose)
_POOL = (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)
_ACTIVATION = (
    keras.layers.Activation,
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.PReLU,
    keras.layers.ELU,
    keras.layers.Softmax,
)
_MERGE = (keras.layers.Add, keras.layers.Multiply, keras.layers.Concatenate)
_INTERESTING = _CONV + _POOL + _ACTIVATION + _MERGE

# Per-model compiled functions (see module docstring for why weak keys are safe here).


# --------------------------------------------------------------------------- feature maps
def feature_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers whose outputs :func:`feature_maps` returns, in the model's order.

    Conv / depthwise / separable conv, max and average pooling, activations and merges
    (add, multiply, concatenate) that produce a spatial ``(batch, H, W, C)`` output.
    """
    graph = _graph(model)
    return [layer for layer in model.layers if isinstance(layer, _INTERESTING) and len(_shape(graph, layer.name)) == 4]


def feature_model(model: keras.Model) -> keras.Model:
    """ONE ``keras.Model`` from ``model``'s input to the outputs of every :func:`feature_layers` layer.

    Built once per model object and reused. Its outputs are in the order of
    :func:`feature_layers`; it shares the weights of ``model`` (nothing is copied).
    """
    return _feature_entry(model)[0]


def feature_maps(model: keras.Model, image: np.ndarray) -> dict[str, np.ndarray]:
    """All feature maps of one image: ``{layer_name: (H, W, C) float32}`` in layer order.

    ``image`` is an ``(H, W, 3)`` RGB ``uint8`` picture of any size (resized to the model's
    input, grayed for one-channel models) or an already prepared ``(1, H, W, C)`` float batch.
    One compiled forward pass computes every map. The arrays are read-only views of the
    network's output buffers (no copy); ``np.array(fmap)`` gives a writable copy.
    """
    fmodel, names, run = _feature_entry(model)
    outputs = run(_prepare(image, model))
    if not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    # np.asarray shares the tensors' memory (read-only views); .numpy() would copy ~50 MB per image.
    return {name: np.asarray(out)[0] for name, out in zip(names, outputs)}


def layer_maps(model: keras.Model, images: Sequence[np.ndarray], layer: str) -> list[np.ndarray]:
    """One layer's feature map ``(H, W, C) float32`` for each of ``images``, from ONE compiled pass over them all.

    The same maps as ``feature_maps(model, image)[layer]`` for each image (up to float rounding),
    for a page that shows one layer of two pictures: one call instead of two, and only that layer's
    buffer is kept (the others are dropped with the pass).
    """
    fmodel, names, run = _feature_entry(model)
    outputs = run(np.concatenate([_prepare(image, model) for image in images]))
    if not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    found = np.asarray(outputs[names.index(layer)])
    return [found[i] for i in range(len(images))]


def probabilities(model: keras.Model, image: np.ndarray) -> np.ndarray:
    """Class probabilities ``(n_classes,) float32`` for one image (compiled call, no ``predict()``)."""
    out = compiled.inference(model)(_prepare(image, model))
    if isinstance(out, (list, tuple)):
        out = out[0]
    return np.asarray(out)[0].astype(np.float32)


def _feature_entry(model: keras.Model) -> tuple[keras.Model, list[str], Callable]:
    return compiled.per_model(model, "features", lambda: _build_feature_entry(model))


def _build_feature_entry(model: keras.Model) -> tuple[keras.Model, list[str], Callable]:
    layers = feature_layers(model)
    if not layers:
        nested = [layer.name for layer in model.layers if isinstance(layer, keras.Model)]
        if nested:
            # e.g. Sequential([MobileNetV2(...), Dense(...)]): its convolutions hide inside one layer.
            raise ValueError(
                f"The model “{model.name}” keeps its convolutions inside another model (“{nested[0]}”); "
                "this viewer shows flat models only, such as those trained or bundled here."
            )
        raise ValueError(
            f"The model “{model.name}” has no convolution or pooling layers with a picture-shaped output, "
            "so there are no feature maps to show."
        )
    graph = _graph(model)
    fmodel = keras.Model(_input(model), [graph[layer.name][0] for layer in layers], name=f"{model.name}_features")
    return fmodel, [layer.name for layer in layers], compiled.inference(fmodel)


def _prepare(image: np.ndarray, model: keras.Model) -> np.ndarray:
    """``(1, H, W, C) float32`` raw 0–255 pixels at the model's input size (an already prepared batch passes)."""
    image = np.asarray(image)
    if image.ndim == 4:
        return image.astype(np.float32, copy=False)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return prepare(image, model)


# --------------------------------------------------------------------------- layer table
@dataclass(frozen=True)
class LayerRow:
    """One row of the layer list. ``receptive_field`` and ``jump`` are in input pixels.

    ``stride`` is the layer's own step; ``jump`` is how far apart (in input pixels) two
    neighbouring outputs of the layer are; ``receptive_field`` is the side of the input
    square one output value can see along the main (largest) path.
    """

    name: str
    type: str
    output_shape: tuple
    params: int
    stride: int
    jump: int
    receptive_field: int
    has_feature_map: bool


def receptive_field_sentence(receptive_field: int, input_side: int | None) -> str:
    """One sentence about a layer's receptive field: an ``N × N`` square of input pixels.

    In EfficientNet-Lite0 the square is 211 × 211 up to block 9 and 275 × 275 from block 10's
    depthwise convolution on (851 × 851 at the head): wider than the 224-pixel input. The
    sentence then says that each position sees the whole picture (and the padding around it).
    """
    rf = int(receptive_field)
    sentence = f"Every block covers a receptive field of {rf}×{rf} input pixels"
    if input_side and rf > int(input_side):
        return (
            sentence + f", wider than the {int(input_side)}×{int(input_side)} picture itself: each position "
            "can see all of it (and the zero padding around it), though the pixels near its centre count most."
        )
    return sentence + "."


def receptive_fields(model: keras.Model) -> dict[str, tuple[int, int]]:
    """``{layer_name: (receptive_field, jump)}`` through the layer graph, in input pixels.

    Uses the usual recurrence for a layer with kernel ``k`` (dilation ``d``) and stride ``s``:
    ``rf_out = rf_in + (d·(k−1)) · jump_in`` and ``jump_out = jump_in · s``. Where paths merge
    (a residual ``Add``) the larger receptive field — the main path — wins. Global pooling,
    flatten and dense layers see the whole input.
    """
    height, width = model.inputs[0].shape[1:3] if model.inputs else (None, None)
    whole = max(d for d in (height, width, 1) if d is not None)
    fields: dict[str, tuple[int, int]] = {}
    graph = _graph(model)
    for tensor in model.inputs:
        fields[tensor._keras_history[0].name] = (1, 1)
    for layer in model.layers:
        parents = graph[layer.name][1] if layer.name in graph else []
        incoming = [fields[p] for p in parents if p in fields] or [(1, 1)]
        rf_in, jump_in = max(incoming)
        kernel, stride, dilation = _window(layer)
        if kernel is not None:
            rf, jump = rf_in + dilation * (kernel - 1) * jump_in, jump_in * stride
        elif isinstance(
            layer,
            (
                keras.layers.GlobalAveragePooling2D,
                keras.layers.GlobalMaxPooling2D,
                keras.layers.Flatten,
                keras.layers.Dense,
            ),
        ) or (0 < len(_shape(graph, layer.name)) < 4 and rf_in > 1):
            rf, jump = max(whole, rf_in), jump_in
        else:
            rf, jump = rf_in, jump_in
        fields[layer.name] = (rf, jump)
    return {layer.name: fields[layer.name] for layer in model.layers}


def layer_table(model: keras.Model) -> list[LayerRow]:
    """Every layer with its type, output shape (no batch axis), parameters, stride and receptive field."""
    fields = receptive_fields(model)
    shown = {layer.name for layer in feature_layers(model)}
    graph = _graph(model)
    rows = []
    for layer in model.layers:
        shape = _shape(graph, layer.name)
        _, stride, _ = _window(layer)
        rf, jump = fields[layer.name]
        rows.append(
            LayerRow(
                name=layer.name,
                type=type(layer).__name__,
                output_shape=tuple(shape[1:]),
                params=int(layer.count_params()) if layer.built else 0,
                stride=int(stride) if stride else 1,
                jump=int(jump),
                receptive_field=int(rf),
                has_feature_map=layer.name in shown,
            )
        )
    return rows


def _window(layer: keras.layers.Layer) -> tuple[int | None, int, int]:
    """(kernel side, stride, dilation) of a sliding-window layer; ``(None, 1, 1)`` otherwise."""
    kernel = getattr(layer, "kernel_size", None) or getattr(layer, "pool_size", None)
    if kernel is None or isinstance(layer, (keras.layers.Conv2DTranspose,)):
        return None, 1, 1
    strides = getattr(layer, "strides", None) or kernel
    dilation = getattr(layer, "dilation_rate", 1) or 1
    first = lambda v: int(v[0] if isinstance(v, (tuple, list)) else v)  # noqa: E731  square windows
    return first(kernel), first(strides), first(dilation)


def _graph(model: keras.Model) -> dict[str, tuple[Any, list[str]]]:
    """``{layer_name: (output tensor, parent layer names)}`` in THIS model's own graph.

    ``layer.output`` means "the output of the layer's first call", which belongs to another
    graph when a layer is shared: the trainer builds its classifier from the base network's
    layers plus a head whose Dense layers were first called inside a separate head model.
    Walking back from ``model.outputs`` finds the tensors this model really computes.
    """
    found: dict[str, tuple[Any, list[str]]] = {}
    stack = list(model.outputs)
    while stack:
        operation, node_index, _ = stack.pop()._keras_history
        if operation.name in found:
            continue
        node = operation._inbound_nodes[node_index]
        found[operation.name] = (node.output_tensors[0], [t._keras_history[0].name for t in node.input_tensors])
        stack.extend(node.input_tensors)
    return found


def _shape(graph: dict, name: str) -> tuple:
    """Output shape (with batch axis) of a layer in the model's graph; ``()`` if it is not used."""
    return tuple(graph[name][0].shape) if name in graph else ()


# --------------------------------------------------------------------------- pictures
def _lut(name: str) -> np.ndarray:
    maps = {
        "viridis": cv2.COLORMAP_VIRIDIS,
        "magma": cv2.COLORMAP_MAGMA,
        "inferno": cv2.COLORMAP_INFERNO,
        "turbo": cv2.COLORMAP_TURBO,
        "jet": cv2.COLORMAP_JET,
    }
    bgr = cv2.applyColorMap(np.arange(256, dtype=np.uint8).reshape(1, 256), maps[name])
    return np.ascontiguousarray(bgr[0, :, ::-1])  # (256, 3) RGB


_LUTS = {name: _lut(name) for name in ("viridis", "magma", "inferno", "turbo", "jet")}


def colorize(values: np.ndarray, cmap: str = "viridis") -> np.ndarray:
    """Map values in ``[0, 1]`` (any shape) to RGB ``uint8`` through a perceptual colour map.

    Viridis and magma get brighter monotonically, so brightness reads as "more activation"
    even in grayscale print or on a washed-out projector.
    """
    index = np.clip(np.rint(np.nan_to_num(values) * 255.0), 0, 255).astype(np.uint8)
    return _LUTS[cmap][index]


def _normalise_channels(fmap: np.ndarray) -> np.ndarray:
    """Scale every channel of ``(H, W, C)`` to ``[0, 1]`` on its own; flat channels become 0."""
    lo = fmap.min(axis=(0, 1), keepdims=True)
    span = fmap.max(axis=(0, 1), keepdims=True) - lo
    return np.where(span > 0, (fmap - lo) / np.where(span > 0, span, 1.0), 0.0).astype(np.float32)


def channel_means(fmap: np.ndarray) -> np.ndarray:
    """Mean activation of every channel of an ``(H, W, C)`` map: ``(C,) float32``."""
    return np.asarray(fmap, dtype=np.float32).mean(axis=(0, 1))


def top_channels(fmap: np.ndarray, k: int | None = None) -> np.ndarray:
    """Indices of the ``k`` channels with the highest mean activation, strongest first (all if ``None``)."""
    order = np.argsort(-channel_means(fmap), kind="stable")
    return order if k is None else order[:k]


def tile_images(
    tiles: np.ndarray | Sequence[np.ndarray], *, columns: int | None = None, gap: int = 2, background: int = 255
) -> np.ndarray:
    """Lay equally sized RGB tiles ``(N, h, w, 3)`` out on a near-square grid separated by ``gap`` pixels."""
    tiles = np.asarray(tiles)
    n, h, w = tiles.shape[:3]
    columns = columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / columns))
    grid = np.full((rows * h + (rows - 1) * gap, columns * w + (columns - 1) * gap, 3), background, np.uint8)
    for i in range(n):
        r, c = divmod(i, columns)
        grid[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = tiles[i]
    return grid


def tile_channels(
    fmap: np.ndarray,
    *,
    sort: bool = False,
    order: Sequence[int] | np.ndarray | None = None,
    columns: int | None = None,
    cell: int | None = None,
    gap: int = 2,
    cmap: str = "viridis",
    max_side: int = 1440,
) -> np.ndarray:
    """All channels of one ``(H, W, C)`` feature map as ONE tiled RGB ``uint8`` image.

    Each channel is normalised to its own min–max (otherwise a few loud channels would
    drown the rest in black) and coloured with ``cmap``. ``sort=True`` puts the channels
    with the highest mean activation first (reading order); ``order`` gives an explicit
    order instead. Small maps are enlarged to ``cell`` pixels per tile (nearest neighbour,
    so individual activations stay visible as blocks); the grid is kept under ``max_side``
    (1440 px: Streamlit shrinks anything wider than 1460 px, blurring single activations).
    """
    fmap = np.asarray(fmap, dtype=np.float32)
    if fmap.ndim == 2:
        fmap = fmap[:, :, None]
    channels = [int(c) for c in (order if order is not None else top_channels(fmap) if sort else range(fmap.shape[2]))]
    h, w, n = fmap.shape[0], fmap.shape[1], len(channels)
    columns = columns or int(np.ceil(np.sqrt(n * h / w)))
    rows = int(np.ceil(n / columns))
    if cell is None:
        # Tiles as large as fit under max_side, but never shrink a map: every activation stays a pixel.
        fit = min((max_side - (columns - 1) * gap) // max(columns, 1), (max_side - (rows - 1) * gap) // max(rows, 1))
        cell = max(max(h, w), min(fit, 96))
    scale = max(1, cell // max(h, w))
    normalised = _normalise_channels(fmap[:, :, channels])
    tiles = colorize(np.moveaxis(normalised, 2, 0), cmap)  # (n, h, w, 3)
    if scale > 1:
        tiles = tiles.repeat(scale, axis=1).repeat(scale, axis=2)
    return tile_images(tiles, columns=columns, gap=gap)


def png_bytes(image: np.ndarray, *, compress_level: int = 1) -> bytes:
    """Encode an RGB ``uint8`` picture as PNG quickly, for sending large grids to the browser.

    Lossless (JPEG would smear the one-pixel activations and tile borders), but with light
    compression: Pillow's default level takes ~1 s for a 1100-pixel grid of feature maps on a busy
    2-core machine, level 1 about a tenth of that for files only slightly larger.
    """
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def overlay(
    image: np.ndarray, fmap_channel: np.ndarray, *, alpha: float = 0.75, cmap: str = "magma", normalise: bool = True
) -> np.ndarray:
    """One channel (or a Grad-CAM heat map) coloured and blended over ``image`` at the image's size.

    ``fmap_channel`` is ``(h, w)`` at any resolution; it is stretched (bilinear) to the image,
    min–max normalised (unless ``normalise=False`` and it is already in ``[0, 1]``) and coloured.
    The colour is mixed in with weight ``alpha × value`` per pixel, so the picture stays visible
    where the channel is silent and a few strong activations still stand out. Returns ``(H, W, 3) uint8``.
    """
    image = np.asarray(image)
    if image.ndim == 2 or image.shape[2] == 1:
        image = np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, axis=2)
    heat = np.asarray(
        cv2.resize(
            np.asarray(fmap_channel, dtype=np.float32), (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR
        ),
        dtype=np.float32,
    )
    if normalise:
        heat = _normalise_channels(heat[:, :, None])[:, :, 0]
    heat = np.clip(heat, 0.0, 1.0)
    colored = colorize(heat, cmap).astype(np.float32)
    weight = (alpha * heat)[:, :, None]
    mixed = (1.0 - weight) * image.astype(np.float32) + weight * colored
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def first_layer_kernels(model: keras.Model, *, scale: int = 8) -> np.ndarray:
    """The first convolution's kernels as small RGB tiles ``(N, k·scale, k·scale, 3) uint8``.

    Each kernel is scaled symmetrically around zero so that mid-gray means weight 0,
    bright colours positive and dark ones negative weights — the colours a filter "wants".
    One-channel kernels are shown in gray. Enlarged with nearest neighbour so each weight is a block.
    """
    for layer in model.layers:
        if isinstance(layer, _CONV):
            weights = layer.get_weights()
            if not weights:
                continue
            kernel = np.asarray(weights[0], dtype=np.float32)  # (kh, kw, c_in, c_out or multiplier)
            if kernel.ndim != 4:
                continue
            if isinstance(layer, keras.layers.DepthwiseConv2D):
                kernel = kernel.reshape(kernel.shape[0], kernel.shape[1], 1, -1)
            if kernel.shape[2] not in (1, 3):
                kernel = kernel.mean(axis=2, keepdims=True)
            tiles = np.moveaxis(kernel, 3, 0)  # (n, kh, kw, c_in)
            limit = np.abs(tiles).max(axis=(1, 2, 3), keepdims=True)
            tiles = (0.5 + 0.5 * tiles / np.where(limit > 0, limit, 1.0)).astype(np.float32)
            if tiles.shape[3] == 1:
                tiles = np.repeat(tiles, 3, axis=3)
            tiles = np.clip(np.rint(tiles * 255.0), 0, 255).astype(np.uint8)
            return tiles.repeat(scale, axis=1).repeat(scale, axis=2)
    raise ValueError(f"The model “{model.name}” has no convolution layer, so it has no kernels to show.")


# --------------------------------------------------------------------------- Grad-CAM
def last_conv_layer(model: keras.Model) -> keras.layers.Layer:
    """The layer Grad-CAM looks at by default: the last convolution, followed through the
    batch-norm and activation layers right after it (what the next block actually sees)."""
    layers = model.layers
    graph = _graph(model)
    index = max(
        (i for i, layer in enumerate(layers) if isinstance(layer, _CONV) and len(_shape(graph, layer.name)) == 4),
        default=None,
    )
    if index is None:
        raise ValueError(f"The model “{model.name}” has no convolution layer, so Grad-CAM cannot be computed.")
    chosen = layers[index]
    for layer in layers[index + 1 :]:
        follows = layer.name in graph and graph[layer.name][1] == [chosen.name]
        if follows and isinstance(layer, (keras.layers.BatchNormalization,) + _ACTIVATION):
            chosen = layer
        else:
            break
    return chosen


def grad_cam(
    model: keras.Model, image: np.ndarray, class_index: int | None = None, *, layer_name: str | None = None
) -> np.ndarray:
    """Grad-CAM heat map ``(H, W) float32`` in ``[0, 1]`` at ``image``'s own size.

    Where in the picture did this layer's existing activations count towards the score of
    ``class_index`` (the predicted class when ``None``)? Each channel of the last
    convolutional block (:func:`last_conv_layer`, or ``layer_name``) is weighted by the mean
    gradient of the class score (the logit before softmax) with respect to it; the
    channel-weighted sum of the activations, kept where positive, is stretched to the image.
    On a network that ends in global average pooling (EfficientNet, MobileNet, the trainer's
    models) that gradient is the same at every position, so the map is not "where more
    activation would raise the score" but the existing activations, each channel weighted by
    how much the score depends on it. It shows where evidence for the class
    was found at that layer's coarse resolution — not why, and not what a human would call the
    object. An all-zero map means no positive evidence anywhere.
    """
    image = np.asarray(image)
    if image.ndim == 4:  # a batch of one, as ``prepare`` returns it
        image = image[0]
    indices = None if class_index is None else [int(class_index)]
    return grad_cams(model, [image], indices, layer_name=layer_name)[0]


def _logits(model: keras.Model) -> tuple:
    """The tensor before the final softmax and how to turn it into class scores (logits).

    Grad-CAM differentiates the class *score*, not its probability: a probability close to
    1 has almost no gradient left (softmax saturates), which would blank the heat map.
    """
    last, node_index, _ = model.outputs[0]._keras_history
    before = last._inbound_nodes[node_index].input_tensors[0]  # in this model's graph (see _graph)
    softmax = keras.activations.softmax
    if isinstance(last, keras.layers.Dense) and last.activation is softmax:
        kernel, bias = last.kernel, (last.bias if last.use_bias else None)

        def dense_logits(x: tf.Tensor) -> tf.Tensor:
            out = tf.matmul(x, tf.convert_to_tensor(kernel))
            return out + tf.convert_to_tensor(bias) if bias is not None else out

        return before, dense_logits
    if isinstance(last, keras.layers.Softmax) or (
        isinstance(last, keras.layers.Activation) and last.activation is softmax
    ):
        return before, lambda x: x
    # Unknown head: the log-probability has the same arg-max and does not saturate.
    return model.outputs[0], lambda p: tf.math.log(tf.maximum(p, 1e-12))


def _input(model: keras.Model) -> Any:
    # A single tensor, not a one-element list: Keras warns when the call structure differs.
    return model.inputs[0] if len(model.inputs) == 1 else model.inputs


def grad_cams(
    model: keras.Model,
    images: Sequence[np.ndarray],
    class_indices: Sequence[int] | None = None,
    *,
    layer_name: str | None = None,
    batch_size: int = 16,
) -> list[np.ndarray]:
    """:func:`grad_cam` for many images at once: the same maps, one gradient pass per batch.

    Images are independent in inference mode, so the gradient of the *sum* of each image's
    class score gives every image its own gradient; batching saves the per-call overhead
    the audit page would pay a hundred times. ``class_indices`` default to each image's
    predicted class (``-1`` also means "predicted").
    """
    images = [np.asarray(img) for img in images]
    indices = [-1] * len(images) if class_indices is None else [int(i) for i in class_indices]
    run = _grad_function(model, layer_name)
    maps: list[np.ndarray] = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        x = np.concatenate([_prepare(img, model) for img in chunk])
        cams = run(tf.constant(x), tf.constant(indices[start : start + batch_size], tf.int32)).numpy()
        for image, cam in zip(chunk, cams):
            height, width = image.shape[:2]
            cam = cv2.resize(cam, (width, height), interpolation=cv2.INTER_LINEAR)
            top = float(cam.max())
            maps.append(
                (np.clip(cam, 0.0, None) / top).astype(np.float32) if top > 0 else np.zeros((height, width), np.float32)
            )
    return maps


def _grad_function(model: keras.Model, layer_name: str | None) -> Callable:
    return compiled.per_model(model, f"gradcam:{layer_name}", lambda: _build_grad_function(model, layer_name))


def _build_grad_function(model: keras.Model, layer_name: str | None) -> Callable:
    layer = model.get_layer(layer_name) if layer_name else last_conv_layer(model)
    before_softmax, to_logits = _logits(model)
    grad_model = keras.Model(
        _input(model), [_graph(model)[layer.name][0], before_softmax], name=f"{model.name}_gradcam"
    )
    spec = tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32)

    @tf.function(input_signature=[spec, tf.TensorSpec((None,), tf.int32)], reduce_retracing=True)
    def run(x: tf.Tensor, class_indices: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            conv_out, pre = grad_model(x, training=False)
            logits = to_logits(pre)
            index = tf.where(class_indices < 0, tf.argmax(logits, axis=1, output_type=tf.int32), class_indices)
            score = tf.reduce_sum(tf.gather(logits, index, axis=1, batch_dims=1))
        grads = tape.gradient(score, conv_out)  # (n, h, w, c)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)  # (n, 1, 1, c)
        return tf.nn.relu(tf.reduce_sum(conv_out * weights, axis=-1))

    return run
