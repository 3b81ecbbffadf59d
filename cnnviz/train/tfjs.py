"""Write a Keras model as a Teachable-Machine-style TensorFlow.js layers model.

The lesson's second half loads the model Teachable Machine exports, ``model.json`` +
``weights.bin`` + ``metadata.json``, with ``ml5.imageClassifier(url + "model.json")`` or
``tmImage.load(modelURL, metadataURL)`` (``@teachablemachine/image``). :func:`tfjs_files`
writes those three files for a model trained here, so that code works on it unchanged.

Why not the ``tensorflowjs`` converter: beside TensorFlow 2.21 it pulls in ``tf_keras``,
``tensorflow_hub``, ``tensorflow_decision_forests`` and ``jax``, and for a Keras 3 model
it writes a Keras-3-style topology (``batch_shape``, dtype-policy dicts, ``inbound_nodes``
as ``{"args": …}``) that tfjs-layers 4.22 refuses to load. This module writes the
Keras-2-style JSON that tfjs-layers reads (``batch_input_shape``, ``inbound_nodes`` as
nested lists, weights named ``<layer>/<weight>``) for the layers our models use, and one
float32 little-endian ``weights.bin``. ``tests/browser/test_tfjs_export.py`` loads the
result in Chromium with ml5, tmImage and plain tfjs and compares it with Keras.

**Input range.** Both libraries feed the model ``x / 127 - 1`` (pixels in [-1, 1]), as
Teachable Machine's own MobileNet expects; our models take raw 0–255 pixels and scale
them in a first ``Rescaling(scale s, offset o)`` layer. Feeding ``t = x/127 - 1`` means
``x = 127 (t + 1)``, so the exported first layer becomes ``Rescaling(127 s, 127 s + o)``:
the same numbers reach the second layer. (EfficientNet-Lite0's ``(1/128, -127/128)``
becomes ``(127/128, 0)``.) A model without such a layer gets ``Rescaling(127, 127)``
in front. The ``.keras`` and ``.tflite`` files keep taking raw pixels.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

import keras
import numpy as np

import cnnviz

__all__ = ["TfjsError", "tfjs_files", "tm_metadata", "TFJS_VERSION", "TM_VERSION", "SUPPORTED_LAYERS"]

#: The tfjs and Teachable Machine library versions the export is tested against
#: (tests/browser/test_tfjs_export.py), written into metadata.json as Teachable Machine does.
TFJS_VERSION = "4.22.0"
TM_VERSION = "2.4.10"
TM_PACKAGE_VERSION = "0.8.5"

_INITIALIZER = {"class_name": "Zeros", "config": {}}  # inference only: real values come from weights.bin
# Per layer class: the Keras config keys tfjs-layers understands (others are dropped after a check).
SUPPORTED_LAYERS: dict[str, tuple[str, ...]] = {
    "InputLayer": (),
    "Rescaling": ("scale", "offset"),
    "Conv2D": (
        "filters",
        "kernel_size",
        "strides",
        "padding",
        "data_format",
        "dilation_rate",
        "activation",
        "use_bias",
    ),
    "DepthwiseConv2D": (
        "kernel_size",
        "strides",
        "padding",
        "depth_multiplier",
        "data_format",
        "dilation_rate",
        "activation",
        "use_bias",
    ),
    "BatchNormalization": ("axis", "momentum", "epsilon", "center", "scale"),
    "ReLU": ("max_value",),
    "Activation": ("activation",),
    "Add": (),
    "GlobalAveragePooling2D": ("data_format",),
    "Dense": ("units", "activation", "use_bias"),
    "Dropout": ("rate",),
    "Flatten": ("data_format",),
    "ZeroPadding2D": ("padding", "data_format"),
    "MaxPooling2D": ("pool_size", "strides", "padding", "data_format"),
    "AveragePooling2D": ("pool_size", "strides", "padding", "data_format"),
}
_INITIALIZER_KEYS = {
    "Conv2D": ("kernel_initializer", "bias_initializer"),
    "DepthwiseConv2D": ("depthwise_initializer", "bias_initializer"),
    "Dense": ("kernel_initializer", "bias_initializer"),
    "BatchNormalization": (
        "beta_initializer",
        "gamma_initializer",
        "moving_mean_initializer",
        "moving_variance_initializer",
    ),
}
_ACTIVATIONS = {"linear", "relu", "relu6", "softmax", "sigmoid", "tanh", "elu", "selu", "swish", "softplus"}


class TfjsError(ValueError):
    """A model this exporter cannot write for TensorFlow.js. ``str(err)`` is one sentence."""


def tm_metadata(
    class_names: Sequence[str], image_size: int, *, model_name: str, time_stamp: str, user_metadata: dict | None = None
) -> dict[str, Any]:
    """The ``metadata.json`` fields Teachable Machine writes for an image model."""
    return {
        "tfjsVersion": TFJS_VERSION,
        "tmVersion": TM_VERSION,
        "packageVersion": TM_PACKAGE_VERSION,
        "packageName": "@teachablemachine/image",
        "timeStamp": time_stamp,
        "userMetadata": dict(user_metadata or {}),
        "modelName": model_name,
        "labels": [str(c) for c in class_names],
        "imageSize": int(image_size),
    }


def tfjs_files(model: keras.Model, *, weights_file: str = "weights.bin") -> tuple[dict[str, Any], bytes]:
    """``(model.json as a dict, weights.bin bytes)`` of a flat functional Keras image model.

    The exported model takes pixels in [-1, 1] (see the module docstring). Raises
    :class:`TfjsError` for a layer or option tfjs-layers would not read the same way.
    """
    config = model.get_config()
    layers_out: list[dict] = []
    manifest: list[dict] = []
    blobs: list[bytes] = []
    input_names = {inp[0] if isinstance(inp, list) else inp for inp in _as_list_of_refs(config["input_layers"])}
    first_rescaling_done = False
    inserted_input_scaler: str | None = None
    for entry in config["layers"]:
        cls = entry["class_name"]
        name = entry["config"].get("name", entry.get("name"))
        if cls not in SUPPORTED_LAYERS:
            raise TfjsError(
                f"The layer “{name}” ({cls}) has no TensorFlow.js export here, so no model.json was written."
            )
        inbound = _inbound(entry)
        layer_cfg = _layer_config(cls, entry["config"], name)
        if cls == "InputLayer":
            shape = entry["config"].get("batch_shape") or entry["config"].get("batch_input_shape")
            layer_cfg = {"name": name, "batch_input_shape": list(shape), "dtype": "float32", "sparse": False}
        elif (
            cls == "Rescaling"
            and not first_rescaling_done
            and inbound
            and all(ref[0] in input_names for node in inbound for ref in node)
        ):
            scale, offset = float(np.squeeze(layer_cfg["scale"])), float(np.squeeze(layer_cfg["offset"]))
            # x = 127 (t + 1) for the t = x/127 - 1 that ml5 and tmImage feed:
            layer_cfg["scale"], layer_cfg["offset"] = 127.0 * scale, 127.0 * scale + offset
            first_rescaling_done = True
        elif not first_rescaling_done and inbound and any(ref[0] in input_names for node in inbound for ref in node):
            # The model scales nothing itself: turn [-1, 1] back into the 0-255 it expects.
            inserted_input_scaler = "tm_input_to_0_255"
            layers_out.append(
                {
                    "class_name": "Rescaling",
                    "name": inserted_input_scaler,
                    "config": {
                        "name": inserted_input_scaler,
                        "trainable": False,
                        "dtype": "float32",
                        "scale": 127.0,
                        "offset": 127.0,
                    },
                    "inbound_nodes": [[[ref[0], ref[1], ref[2], {}] for ref in inbound[0]]],
                }
            )
            first_rescaling_done = True
        if inserted_input_scaler and cls != "InputLayer":
            inbound = [[[inserted_input_scaler, 0, 0] if r[0] in input_names else r for r in node] for node in inbound]
        layers_out.append(
            {
                "class_name": cls,
                "name": name,
                "config": layer_cfg,
                "inbound_nodes": [[[r[0], r[1], r[2], {}] for r in node] for node in inbound],
            }
        )
        for variable in model.get_layer(name).weights:
            value = np.asarray(keras.ops.convert_to_numpy(variable), dtype="<f4")
            weight = variable.name
            if cls == "DepthwiseConv2D" and weight == "kernel":
                weight = "depthwise_kernel"  # Keras 3's name for what Keras 2 and tfjs call depthwise_kernel
            manifest.append({"name": f"{name}/{weight}", "shape": list(value.shape), "dtype": "float32"})
            blobs.append(value.tobytes())
    topology = {
        "class_name": "Model",
        "config": {
            "name": model.name,
            "layers": layers_out,
            "input_layers": [[r[0], r[1], r[2]] for r in _as_list_of_refs(config["input_layers"])],
            "output_layers": [[r[0], r[1], r[2]] for r in _as_list_of_refs(config["output_layers"])],
        },
        "keras_version": "2.15.0",  # the topology dialect written here, which tfjs-layers reads
        "backend": "tensorflow",
    }
    model_json = {
        "format": "layers-model",
        "generatedBy": f"keras v{keras.__version__}",
        "convertedBy": f"cnnviz v{cnnviz.__version__} (cnnviz.train.tfjs)",
        "modelTopology": topology,
        "weightsManifest": [{"paths": [weights_file], "weights": manifest}],
    }
    return model_json, b"".join(blobs)


def _as_list_of_refs(value: Any) -> list[list]:
    """Keras writes one input as ``[name, 0, 0]`` and several as ``[[name, 0, 0], …]``."""
    if value and isinstance(value[0], str):
        return [list(value)]
    return [list(v) for v in value]


def _inbound(entry: dict) -> list[list[list]]:
    """Keras 3 ``inbound_nodes`` (``[{"args": […], "kwargs": {}}]``) → ``[[[layer, node, tensor], …], …]``."""
    nodes = []
    for node in entry.get("inbound_nodes") or []:
        if isinstance(node, dict):
            # Keras writes call options such as mask=None; only a value that is set matters.
            if any(v not in (None, False) for v in (node.get("kwargs") or {}).values()):
                raise TfjsError(f"The layer “{entry['name']}” is called with options TensorFlow.js cannot express.")
            refs: list[list] = []
            _collect(node.get("args", []), refs)
            nodes.append(refs)
        else:  # already Keras-2 style
            nodes.append([list(r[:3]) for r in node])
    return nodes


def _collect(value: Any, refs: list[list]) -> None:
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        layer, node_index, tensor_index = value["config"]["keras_history"]
        refs.append([layer, int(node_index), int(tensor_index)])
    elif isinstance(value, (list, tuple)):
        for item in value:
            _collect(item, refs)


def _layer_config(cls: str, cfg: dict, name: str) -> dict:
    out: dict[str, Any] = {"name": name, "trainable": False, "dtype": "float32"}
    for key in SUPPORTED_LAYERS[cls]:
        if key in cfg:
            out[key] = _plain(cfg[key])
    for key in _INITIALIZER_KEYS.get(cls, ()):
        out[key] = dict(_INITIALIZER)
    if "activation" in out and out["activation"] not in _ACTIVATIONS:
        raise TfjsError(
            f"The layer “{name}” uses the activation “{out['activation']}”, which this export does not write."
        )
    if cls == "ReLU" and (float(cfg.get("negative_slope") or 0) != 0 or float(cfg.get("threshold") or 0) != 0):
        raise TfjsError(f"The layer “{name}” is a leaky or thresholded ReLU, which this export does not write.")
    if cls == "GlobalAveragePooling2D" and cfg.get("keepdims"):
        raise TfjsError(f"The layer “{name}” keeps its pooled dimensions, which this export does not write.")
    if cls in ("Conv2D", "DepthwiseConv2D") and int(cfg.get("groups", 1) or 1) != 1:
        raise TfjsError(f"The layer “{name}” is a grouped convolution, which this export does not write.")
    if cls == "BatchNormalization":
        axis = cfg.get("axis", -1)
        out["axis"] = int(axis[0] if isinstance(axis, (list, tuple)) else axis)
    return out  # regularizers and constraints are left out: they do not change a prediction


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def dumps(model_json: dict) -> str:
    """``model.json`` text (compact: a Lite0 topology is ~ 100 kB)."""
    return json.dumps(model_json, separators=(",", ":"))
