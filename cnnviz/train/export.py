"""Take a trained classifier home: one zip with the model in two formats, its labels and a README.

The zip (:func:`export_zip`) holds

* ``model.keras`` — the full model (base + head), raw 0–255 pixels → probabilities,
  loadable with ``keras.saving.load_model``;
* ``model.tflite`` — the same model for phones and small boards (LiteRT / TensorFlow Lite);
* ``labels.txt`` — one class name per line, in output order (Teachable Machine's format);
* ``metadata.json`` — the fields Teachable Machine writes (``tfjsVersion``,
  ``tmVersion``, ``packageVersion``, ``packageName``, ``timeStamp``, ``userMetadata``,
  ``modelName``, ``labels``, ``imageSize``) plus ``baseModel`` and training details;
* ``model/model.json``, ``model/weights.bin``, ``model/metadata.json`` — the same model as
  a Teachable-Machine-format TensorFlow.js layers model (:mod:`cnnviz.train.tfjs`), which
  the lesson's ``ml5.imageClassifier(url + "model.json")`` and ``tmImage.load(…)`` load
  unchanged; it takes pixels in [-1, 1], as those libraries feed them;
* ``index.html`` + ``sketch.js`` — a p5.js + ml5.js sketch shaped like the lesson's that
  classifies ``example.png`` (a test image, when one was given);
* ``README.md`` — what is in the zip and a short Python snippet that uses it.

:func:`import_zip` reads such a zip back, through the registry's safe loader for
uploaded models (``safe_mode=True`` plus config checks), so it can be tested again later.
"""

from __future__ import annotations

import io
import json
import tempfile
import warnings
import zipfile
import zlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

import cnnviz
from cnnviz.model.registry import archived_class_names, save_model
from cnnviz.text import ClassNameError, clean_class_name
from cnnviz.zips import MAX_RATIO

__all__ = [
    "ExportError",
    "export_zip",
    "import_zip",
    "tflite_probabilities",
    "MODEL_FILE",
    "TFLITE_FILE",
    "TFJS_MODEL_FILE",
    "TFJS_WEIGHTS_FILE",
    "TFJS_METADATA_FILE",
    "SKETCH_FILES",
    "P5_VERSION",
    "ML5_VERSION",
]

MODEL_FILE = "model.keras"
TFLITE_FILE = "model.tflite"
LABELS_FILE = "labels.txt"
METADATA_FILE = "metadata.json"
README_FILE = "README.md"
TFJS_MODEL_FILE = "model/model.json"
TFJS_WEIGHTS_FILE = "model/weights.bin"
TFJS_METADATA_FILE = "model/metadata.json"
EXAMPLE_FILE = "example.png"
SKETCH_FILES = ("index.html", "sketch.js")
#: The p5.js and ml5.js the sketch loads from jsDelivr (the versions the browser test runs).
P5_VERSION = "1.11.13"
ML5_VERSION = "1.4.0"
#: Largest exported zip accepted back (a Lite0 model is ~ 15 MB in each format).
MAX_IMPORT_BYTES = 200 * 1024 * 1024


class ExportError(ValueError):
    """An exported zip that cannot be read back. ``str(err)`` is one sentence for the visitor."""


def export_zip(
    model: keras.Model,
    class_names: Sequence[str],
    *,
    base_model: str,
    model_name: str = "cnnviz classifier",
    training: dict[str, Any] | None = None,
    include_tflite: bool = True,
    include_tfjs: bool = True,
    example_image: np.ndarray | None = None,
) -> bytes:
    """Bytes of a zip holding the model as ``.keras``, ``.tflite`` and TensorFlow.js, labels, metadata, a sketch and a README.

    ``model`` takes raw 0–255 RGB pixels ``(None, H, W, 3)`` and returns probabilities
    over ``class_names``. ``base_model`` names the pretrained network inside it;
    ``training`` (epochs, batch size, learning rate, accuracy, …) goes into the metadata.
    Class names are stored as a JSON list in ``metadata.json`` and inside the ``.keras``
    (any string survives) and one per line in ``labels.txt`` (Teachable Machine's format, so
    they are cleaned with :func:`cnnviz.text.clean_class_name` first); a blank or repeated name
    raises :class:`ExportError`. ``example_image`` (``(H, W, 3)`` uint8) is saved as
    ``example.png`` for the sketch. A model the TensorFlow.js writer cannot express is exported
    without ``model/``; ``metadata.json`` then says why under ``tfjsSkipped``.
    """
    from cnnviz.train import tfjs

    class_names = checked_class_names(class_names)
    height, width = (int(d) for d in model.input_shape[1:3])
    time_stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    tfjs_parts, tfjs_skipped = None, None
    if include_tfjs:
        try:
            tfjs_parts = tfjs.tfjs_files(model, weights_file=Path(TFJS_WEIGHTS_FILE).name)
        except tfjs.TfjsError as err:
            tfjs_skipped = str(err)
    metadata = {
        # Teachable Machine's image-model metadata fields:
        "tfjsVersion": None,
        "tmVersion": None,
        "packageVersion": cnnviz.__version__,
        "packageName": "cnnviz",
        "timeStamp": time_stamp,
        "userMetadata": {},
        "modelName": model_name,
        "labels": list(class_names),
        "imageSize": height,
        # What Teachable Machine leaves implicit:
        "imageHeight": height,
        "imageWidth": width,
        "baseModel": base_model,
        "input": "RGB pixels 0-255 (float32), resized to the image size; preprocessing is inside the model",
        "output": "one probability per label, in the order of labels.txt",
        "files": {
            "keras": MODEL_FILE,
            "tflite": TFLITE_FILE if include_tflite else None,
            "labels": LABELS_FILE,
            "tfjs": TFJS_MODEL_FILE if tfjs_parts else None,
        },
        "tfjsInput": "pixels scaled to [-1, 1] (x / 127 - 1), as ml5.js and @teachablemachine/image feed them",
        "versions": {
            "keras": keras.__version__,
            "tensorflow": tf.__version__,
            "numpy": np.__version__,
            "cnnviz": cnnviz.__version__,
        },
        "training": training or {},
    }
    if tfjs_skipped:
        metadata["tfjsSkipped"] = tfjs_skipped
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory(prefix="cnnviz-export-") as folder:
        keras_path = Path(folder) / MODEL_FILE
        save_model(model, keras_path, class_names)  # names travel inside the .keras too
        tflite_path = Path(folder) / TFLITE_FILE
        if include_tflite:
            model.export(str(tflite_path), format="litert", verbose=False)
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.write(keras_path, MODEL_FILE)
            if include_tflite:
                archive.write(tflite_path, TFLITE_FILE)
            archive.writestr(LABELS_FILE, "\n".join(class_names) + "\n")
            archive.writestr(METADATA_FILE, json.dumps(metadata, indent=2, ensure_ascii=False))
            if tfjs_parts:
                model_json, weights = tfjs_parts
                archive.writestr(TFJS_MODEL_FILE, tfjs.dumps(model_json))
                archive.writestr(TFJS_WEIGHTS_FILE, weights)
                archive.writestr(
                    TFJS_METADATA_FILE,
                    json.dumps(
                        tfjs.tm_metadata(class_names, height, model_name=model_name, time_stamp=time_stamp),
                        indent=2,
                        ensure_ascii=False,
                    ),
                )
                archive.writestr("index.html", _index_html(model_name))
                archive.writestr("sketch.js", _SKETCH)
                if example_image is not None:
                    png = io.BytesIO()
                    Image.fromarray(np.asarray(example_image, dtype=np.uint8)).save(png, format="PNG")
                    archive.writestr(EXAMPLE_FILE, png.getvalue())
            archive.writestr(
                README_FILE,
                _readme(
                    model_name, class_names, base_model, height, width, include_tflite, bool(tfjs_parts), tfjs_skipped
                ),
            )
    return buffer.getvalue()


def checked_class_names(class_names: Sequence[str]) -> list[str]:
    """Class names cleaned for ``labels.txt`` (one line each); :class:`ExportError` for a blank or repeated one."""
    try:
        names = [clean_class_name(n) for n in class_names]
    except ClassNameError as err:
        raise ExportError(str(err)) from None
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ExportError(f"Two classes are both called “{repeated[0]}”; please give every class its own name.")
    return names


def import_zip(
    data: bytes, *, filename: str = "the zip", kept_params: Sequence[int] = ()
) -> tuple[keras.Model, dict[str, Any]]:
    """Read a zip made by :func:`export_zip`: returns ``(model, card)`` or raises :class:`ExportError`.

    The ``.keras`` inside goes through :func:`cnnviz.model.registry.load_uploaded_model` (file
    kind, config and layer checks, ``safe_mode=True``, this server's size limits with the
    visitor's ``kept_params``); labels come from ``metadata.json``'s JSON list when it has one
    per output (any name survives), else from ``labels.txt``, and must match the model's number
    of outputs.
    """
    from cnnviz.model.registry import ModelError, load_uploaded_model, parse_json, visitor_card

    if not data:
        raise ExportError(f"{filename} is empty.")
    if len(data) > MAX_IMPORT_BYTES:
        raise ExportError(
            f"{filename} is {len(data) / 1e6:.0f} MB; exported models up to "
            f"{MAX_IMPORT_BYTES / 1e6:.0f} MB are accepted."
        )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            if MODEL_FILE not in names or LABELS_FILE not in names:
                raise ExportError(
                    f"{filename} is not a model exported by this app (it lacks {MODEL_FILE} or {LABELS_FILE})."
                )
            for info in archive.infolist():
                if info.file_size > 1024 * 1024 and info.file_size / max(info.compress_size, 1) > MAX_RATIO:
                    raise ExportError(f"{filename} contains a part that expands suspiciously much; it was refused.")
            keras_bytes = archive.read(MODEL_FILE)
            labels = [line.strip() for line in archive.read(LABELS_FILE).decode("utf-8").splitlines() if line.strip()]
            metadata = {}
            if METADATA_FILE in names and archive.getinfo(METADATA_FILE).file_size < 1024 * 1024:
                try:
                    metadata = parse_json(archive.read(METADATA_FILE), f"The metadata.json in {filename}")
                except ModelError as err:
                    raise ExportError(str(err)) from None
    except ExportError:
        raise
    except (
        zipfile.BadZipFile,
        zlib.error,
        OSError,
        EOFError,
        ValueError,
        KeyError,
        UnicodeDecodeError,
        RuntimeError,
        NotImplementedError,
    ):
        # zlib.error: a part's compressed data is damaged although the zip's directory is intact.
        raise ExportError(f"{filename} is not a readable zip file (it may be damaged or incomplete).") from None
    if not isinstance(metadata, dict):
        metadata = {}
    try:
        model, card = load_uploaded_model(keras_bytes, MODEL_FILE, kept_params=kept_params)
    except ModelError as err:
        raise ExportError(str(err)) from None
    n_outputs = int(model.outputs[0].shape[-1])
    stored = metadata.get("labels")
    if isinstance(stored, list) and len(stored) == n_outputs and all(isinstance(n, str) for n in stored):
        # labels.txt holds one name per line, so a name with a line break spans two lines there:
        # the JSON list is the exact names, and labels.txt must agree with its one-line form.
        one_line = [" ".join(n.split()) for n in stored]
        if [n for n in one_line if n] != labels and len(labels) == n_outputs:
            raise ExportError(
                f"labels.txt and metadata.json in {filename} name different classes, so it is not clear which "
                "label belongs to which output; edit both the same way, or export the model again."
            )
        labels = list(stored)
    elif len(labels) != n_outputs:
        archived = archived_class_names(keras_bytes, n_outputs)  # the names cnnviz also keeps inside the .keras
        if archived is not None:
            labels = archived
    if len(labels) != n_outputs:
        raise ExportError(f"labels.txt lists {len(labels)} classes but the model has {n_outputs} outputs.")
    base = metadata.get("baseModel")
    name = metadata.get("modelName")
    base = str(base)[:100] if base is not None else None
    name = str(name)[:100] if name is not None else None
    card = visitor_card(
        str(name or Path(filename).stem),
        model,
        labels,
        base=base,
        note=str(card.get("note", "")).split("This file carries no class names")[0].strip(),  # labels.txt names them
        params=card.get("params"),
        filename=card.get("filename"),
        description=f"Imported from {filename}; base model {base or 'unknown'}; trained {str(metadata.get('timeStamp', '?'))[:40]}.",
    )
    return model, card


def tflite_probabilities(tflite_bytes: bytes, batch: np.ndarray) -> np.ndarray:
    """Run a ``.tflite`` model on float32 ``(N, H, W, 3)`` raw pixels, one image at a time → ``(N, C)``."""
    with warnings.catch_warnings():
        # TF 2.21 still ships tf.lite.Interpreter but warns it will move to ai_edge_litert.
        warnings.simplefilter("ignore", UserWarning)
        interpreter = tf.lite.Interpreter(model_content=tflite_bytes)
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(inp["index"], [1, *batch.shape[1:]])
    interpreter.allocate_tensors()
    rows = []
    for image in np.asarray(batch, dtype=np.float32):
        interpreter.set_tensor(inp["index"], image[None])
        interpreter.invoke()
        rows.append(interpreter.get_tensor(out["index"])[0].copy())
    return np.stack(rows)


def _index_html(model_name: str) -> str:
    import html

    return f"""<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <title>{html.escape(model_name)}</title>
    <script src="https://cdn.jsdelivr.net/npm/p5@{P5_VERSION}/lib/p5.min.js"></script>
    <script src="https://cdn.jsdelivr.net/npm/ml5@{ML5_VERSION}/dist/ml5.min.js"></script>
  </head>
  <body>
    <main></main>
    <script src="sketch.js"></script>
  </body>
</html>
"""


# The lesson's sketch, for ml5.js 1.x (whose callbacks get the results only, not (error, results)).
_SKETCH = """// Classify one image with the model exported from cnnviz, as the Programming Historian lesson does.
// Serve this folder over HTTP (python -m http.server) and open http://localhost:8000/
// ml5.js takes a full web address (http://...), like the link Teachable Machine gives when it uploads a
// model; this one points to the model/ folder beside this sketch.
const url = new URL("model/", window.location.href).href;
let classifier;
let img;
let label = "";
let confidence = 0;

function preload() {
  classifier = ml5.imageClassifier(url + "model.json");
  img = loadImage("example.png"); // put your own picture here
}

function setup() {
  createCanvas(400, 440);
  classifier.classify(img, gotResult);
}

// ml5.js 1.x: results are sorted, most confident first: [{label, confidence}, ...]
function gotResult(results) {
  console.log(results);
  label = results[0].label;
  confidence = results[0].confidence;
  window.classified = results;
  // textContent, not HTML: a class name is shown as the text it is
  createP("").id("result").elt.textContent = label + " (" + nf(confidence * 100, 0, 1) + " %)";
}

function draw() {
  background(255);
  image(img, 0, 0, 400, 400);
  fill(0);
  textSize(20);
  text(label, 10, 430);
}
"""


def _readme(
    model_name: str,
    class_names: Sequence[str],
    base_model: str,
    height: int,
    width: int,
    include_tflite: bool,
    include_tfjs: bool = False,
    tfjs_skipped: str | None = None,
) -> str:
    labels = ", ".join(class_names)
    tflite = (
        f"- `{TFLITE_FILE}`: the same model for phones and small boards (LiteRT / TensorFlow Lite).\n"
        if include_tflite
        else ""
    )
    tfjs = (
        f"- `{TFJS_MODEL_FILE}`, `{TFJS_WEIGHTS_FILE}`, `{TFJS_METADATA_FILE}`: the same model in Teachable "
        "Machine's TensorFlow.js format, for the lesson's ml5.js code: `ml5.imageClassifier(url + \"model.json\")` (url: the full http:// address of the model/ folder) "
        'or `tmImage.load("model/model.json", "model/metadata.json")`. It takes pixels scaled to [-1, 1], '
        "as those libraries feed them. ml5.js squashes every picture to 224 × 224 pixels without smoothing and "
        "tmImage crops its centre square, so on large pictures their probabilities can differ from this app's "
        "(measured: up to 0.23 on 1024-pixel paintings, one top answer in nine changed by the crop); on pictures "
        "already 224 × 224 they agree to 0.00001.\n"
        "- `index.html`, `sketch.js`: a p5.js + ml5.js sketch that classifies `example.png`. Browsers refuse to "
        "load a model from a file:// page: in this folder run `python -m http.server` and open "
        "http://localhost:8000/.\n"
        if include_tfjs
        else (f"- No TensorFlow.js model: {tfjs_skipped}\n" if tfjs_skipped else "")
    )
    return f"""# {model_name}

An image classifier trained in cnnviz by transfer learning: the pretrained **{base_model}**
network turns each image into 1 280 numbers, and a small head (Dense 100 ReLU → Dense softmax)
trained on your images turns those into one probability per class.

Classes (in output order): {labels}

## Files
- `{MODEL_FILE}`: the full Keras model. Input: RGB pixels 0–255, {height} × {width}; output: probabilities.
{tflite}{tfjs}- `{LABELS_FILE}`: the class names, one per line, in output order.
- `{METADATA_FILE}`: Teachable-Machine-style metadata (labels, image size, time stamp, versions, base model).

## Use it in Python
```python
import keras, numpy as np
from PIL import Image

model = keras.saving.load_model("{MODEL_FILE}")
labels = open("{LABELS_FILE}").read().split("\\n")[:-1]
image = Image.open("my_picture.jpg").convert("RGB").resize(({width}, {height}), Image.BILINEAR)
probabilities = model.predict(np.asarray(image, dtype="float32")[None])[0]
print(labels[probabilities.argmax()], probabilities.max())
```
The model scales pixels itself: give it 0–255 values, not 0–1.
"""
