"""What a workspace holds, as store items, and back: no pickle, nothing that runs code when read.

Items (``kind``, ``key``) and their bytes:

==============  ================  ==========================================================
kind            key               bytes
==============  ================  ==========================================================
``settings``    ``all``           JSON: every setting the pages keep (:mod:`ui.settings`)
``trainer``     ``session``       JSON: page 4's classes (names, image keys, file names), test
                                  set, dataset-check facts, paths, counters, the run's outline
``image``       pixel hash        :func:`pack`: the 96-pixel thumbnail and one embedding per
                                  base network (the trainer keeps nothing larger)
``original``    pixel hash        the file as uploaded, only when the visitor asked for it
``example``     ``image``         :func:`pack`: the image the exported sketch classifies
``run``         ``head``          :func:`pack`: the run's split, labels and head weights
``model``       name              a ``.keras`` file (:func:`cnnviz.model.registry.save_model`)
``card``        name              JSON: that model's card
``audit``       ``result``        :func:`pack`: the last audit (outputs, thumbnails, gallery)
``auditset``    set key           :func:`audit_set_item`: a page-5 set from uploads, a zip or the
                                  camera (its pictures as PNG, files, true classes, sentences)
``page``        ``state``         JSON: small page state (which models were imported on page 4)
==============  ================  ==========================================================

:func:`pack` is a tree of dicts, lists, tuples, numbers, strings and numeric arrays written as
one ``.npz`` (JSON for the tree, raw arrays beside it) and read with ``allow_pickle=False``.
Models are read back lazily with :func:`cnnviz.model.registry.load_uploaded_model`, the same
checks an upload gets. Never imports Streamlit.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

__all__ = [
    "pack",
    "unpack",
    "ModelEntry",
    "model_bytes",
    "trainer_outline",
    "image_item",
    "read_image_item",
    "run_item",
    "restore_trainer",
    "audit_set_item",
    "read_audit_set_item",
]


# --------------------------------------------------------------------------- a safe tree codec
def pack(tree: Any) -> bytes:
    """``tree`` (dicts with string or tuple keys, lists, tuples, numbers, strings, ``None``, numeric
    arrays) → bytes; raises ``TypeError`` for anything else (an object that only pickle could keep)."""
    arrays: list[np.ndarray] = []

    def enc(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            if value.dtype.kind not in "biufc":  # object or string arrays would need pickle
                if value.dtype.kind == "U":
                    return {"__str_array__": value.tolist()}
                raise TypeError(f"cannot keep an array of {value.dtype}")
            arrays.append(np.ascontiguousarray(value))
            return {"__nd__": len(arrays) - 1}
        if isinstance(value, np.generic):
            return value.item()
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, tuple):
            return {"__tuple__": [enc(v) for v in value]}
        if isinstance(value, list):
            return [enc(v) for v in value]
        if isinstance(value, Mapping):
            if all(isinstance(k, str) for k in value) and not any(k.startswith("__") for k in value):
                return {k: enc(v) for k, v in value.items()}
            return {"__items__": [[enc(k), enc(v)] for k, v in value.items()]}
        raise TypeError(f"cannot keep a {type(value).__name__}")

    outline = json.dumps(enc(tree), ensure_ascii=False).encode()
    buffer = io.BytesIO()
    named: dict[str, Any] = {f"a{i}": a for i, a in enumerate(arrays)}
    np.savez(buffer, __tree__=np.frombuffer(outline, dtype=np.uint8), **named)
    return buffer.getvalue()


def unpack(data: bytes) -> Any:
    """The tree :func:`pack` wrote (``ValueError`` for bytes it did not write)."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            outline = json.loads(bytes(npz["__tree__"]).decode())
            arrays = {name: npz[name] for name in npz.files if name != "__tree__"}
    except (
        OSError,
        KeyError,
        ValueError,
        EOFError,
        zipfile.BadZipFile,
    ) as err:  # JSON and Unicode errors are ValueErrors
        raise ValueError("not a packed workspace item") from err

    def dec(value: Any) -> Any:
        if isinstance(value, list):
            return [dec(v) for v in value]
        if isinstance(value, dict):
            if "__nd__" in value:
                return arrays[f"a{value['__nd__']}"]
            if "__str_array__" in value:
                return np.array(value["__str_array__"])
            if "__tuple__" in value:
                return tuple(dec(v) for v in value["__tuple__"])
            if "__items__" in value:
                return {_hashable(dec(k)): dec(v) for k, v in value["__items__"]}
            return {k: dec(v) for k, v in value.items()}
        return value

    return dec(outline)


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, (list, tuple)) else key


# --------------------------------------------------------------------------- models
class ModelEntry(dict):
    """A visitor model's ``{"model", "card"}`` entry whose Keras model is read only when first used.

    ``entry["model"]`` loads it (:func:`cnnviz.model.registry.load_uploaded_model`, the checks an
    upload gets); until then only the card is in memory, so reopening a workspace after a server
    restart costs no model loading on pages that do not need one.
    """

    def __init__(self, card: dict[str, Any], load: Callable[[], bytes | None], **extra: Any) -> None:
        super().__init__(card=card, **extra)
        self._load = load

    def __missing__(self, key: str) -> Any:
        if key != "model":
            raise KeyError(key)
        from cnnviz.model import registry

        data = self._load()
        if data is None:
            raise registry.ModelError(
                f"“{self['card'].get('name', 'This model')}” is no longer in your workspace; train or upload it again."
            )
        try:
            model, _ = registry.load_uploaded_model(data, f"{self['card'].get('name') or 'model'}.keras")
        except registry.ModelError as err:
            # The stored bytes were damaged (a disk fault, a store edited by hand): the upload checks
            # refuse them, and the visitor hears which model, not why the archive is invalid.
            raise registry.ModelError(
                f"“{self['card'].get('name', 'This model')}” could not be read back from your workspace "
                "(its saved file is damaged); train or upload it again."
            ) from err
        self["model"] = model
        return model

    @property
    def loaded(self) -> bool:
        return dict.__contains__(self, "model")


def model_bytes(model: Any, classes: list[str]) -> bytes:
    """A model as ``.keras`` bytes with its class names inside (what an upload of it would read)."""
    from cnnviz.model import registry

    with tempfile.TemporaryDirectory(prefix="cnnviz-ws-") as folder:
        path = Path(folder) / "model.keras"
        registry.save_model(model, path, classes)
        return path.read_bytes()


# --------------------------------------------------------------------------- the trainer
def trainer_outline(trainer: Any, run_model: str | None) -> bytes:
    """Page 4's session without its arrays, as JSON (images, the example and the run are items of their own)."""
    run = trainer.run
    outline = {
        "version": 1,
        "next_id": getattr(trainer, "_next_id", len(trainer.classes)),
        "classes": [{"id": c.id, "name": c.name, "keys": c.keys, "files": c.files} for c in trainer.classes],
        "testset": [dataclasses.asdict(t) for t in trainer.testset],
        "skipped": list(trainer.skipped),
        "zip_summary": trainer.zip_summary,
        "runs_started": trainer.runs_started,
        "facts": {k: dataclasses.asdict(f) for k, f in trainer.facts.items()},
        "paths": dict(trainer.paths),
        "example_is_test": bool(getattr(trainer, "_example_is_test", False)),
        "run": None
        if run is None or not run.finished
        else {
            "name": run.name,
            "base": run.base,
            "classes": run.classes,
            "keys": run.keys,
            "settings": run.settings,
            "history": {
                "rows": run.history.rows,
                "stopped": run.history.stopped,
                "epochs_planned": run.history.epochs_planned,
            },
            "judged_on": run.judged_on,
            "judged_keys": run.judged_keys,
            "test": [dataclasses.asdict(t) for t in run.test],
            "card": run.card,
            "model": run_model,
        },
    }
    return json.dumps(outline, ensure_ascii=False, default=_json_default).encode()


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot keep a {type(value).__name__}")


def image_item(thumb: np.ndarray | None, embeddings: Mapping[str, np.ndarray]) -> bytes:
    """One trainer image: its thumbnail ``(h, w, 3) uint8`` and ``{base: (D,) float32}``."""
    return pack({"thumb": thumb, "embeddings": dict(embeddings)})


def read_image_item(data: bytes) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
    tree = unpack(data)
    return tree["thumb"], {str(b): np.asarray(e, np.float32) for b, e in tree["embeddings"].items()}


def run_item(run: Any) -> bytes:
    """A finished run's arrays: labels, split, head weights (its embeddings are the images' own)."""
    return pack(
        {
            "y": run.y,
            "train_idx": run.train_idx,
            "val_idx": run.val_idx,
            "head": [np.asarray(w) for w in run.head.get_weights()],
            "hidden_units": int(run.head.layers[0].units),
        }
    )


def restore_trainer(
    outline: bytes,
    images: Mapping[str, bytes],
    *,
    run: bytes | None = None,
    example: bytes | None = None,
    models: Mapping[str, Mapping[str, Any]] | None = None,
    embedder_for: Callable[[str], Any] | None = None,
) -> Any:
    """Page 4's :class:`~cnnviz.train.session.TrainingSession` rebuilt from its items.

    The run comes back judged (its results are recomputed from the head, identical to the
    numbers shown before) with its full model loaded on first use from ``models``; a run whose
    embeddings or model are missing is left out. When the stored model cannot be read back
    (damaged bytes), ``embedder_for(base)`` (the shipped base cut at its pooling) and the run's
    own head rebuild the same model, as training built it.
    """
    from cnnviz.train import dataset_check, transfer
    from cnnviz.train.session import ClassImages, Run, TestImage, TrainingSession

    meta = json.loads(outline)
    trainer = TrainingSession()
    for key, data in images.items():
        try:
            thumb, embeddings = read_image_item(data)
        except (ValueError, KeyError, TypeError):
            continue  # one unreadable image is left out, not the whole workspace
        trainer.store.restore(key, thumb, embeddings)
    trainer.classes = [ClassImages(c["id"], c["name"], list(c["keys"]), list(c["files"])) for c in meta["classes"]]
    trainer._next_id = int(meta.get("next_id", len(trainer.classes)))
    trainer.testset = [TestImage(**t) for t in meta["testset"]]
    trainer.skipped = list(meta["skipped"])
    trainer.zip_summary = meta["zip_summary"]
    trainer.runs_started = int(meta["runs_started"])
    trainer.facts = {k: dataset_check.ImageFacts(**f) for k, f in meta["facts"].items()}
    trainer.paths = dict(meta["paths"])
    if example is not None:
        try:
            trainer.example = unpack(example)["image"]
            trainer._example_is_test = bool(meta.get("example_is_test"))
        except (ValueError, KeyError):
            pass
    outline_run = meta.get("run")
    if outline_run and run is not None and models is not None and outline_run.get("model") in models:
        arrays = unpack(run)
        base = outline_run["base"]
        keys = list(outline_run["keys"])
        found = [trainer.store.embedding(k, base) for k in keys]
        test = [TestImage(**t) for t in outline_run["test"]]
        test_found = [trainer.store.embedding(t.key, base) for t in test]
        if found and all(e is not None for e in found) and all(e is not None for e in test_found):
            x = np.stack([e for e in found if e is not None])
            head = transfer.build_head(x.shape[1], len(outline_run["classes"]), hidden_units=arrays["hidden_units"])
            head.set_weights(list(arrays["head"]))
            history = transfer.History(**outline_run["history"])
            restored = Run(
                name=outline_run["name"],
                base=base,
                classes=list(outline_run["classes"]),
                keys=keys,
                x=x,
                y=np.asarray(arrays["y"]),
                train_idx=np.asarray(arrays["train_idx"]),
                val_idx=np.asarray(arrays["val_idx"]),
                settings=dict(outline_run["settings"]),
                head=head,
                history=history,
                judged_on=outline_run["judged_on"],
                judged_keys=list(outline_run["judged_keys"]),
                card=models[outline_run["model"]]["card"],
                test=test,
                x_test=np.stack([e for e in test_found if e is not None])
                if test
                else np.zeros((0, x.shape[1]), np.float32),
            )
            judged = restored.val_idx if len(restored.val_idx) else restored.train_idx
            restored.evaluation = transfer.evaluate(
                transfer.head_probabilities(head, x[judged]), restored.y[judged], restored.classes
            )
            restored.results = trainer.judge(restored)
            restored.load_model_later(
                functools.partial(_run_model, models[outline_run["model"]], restored, embedder_for)
            )
            trainer.run = restored
    return trainer


def _run_model(entry: Any, run: Any, embedder_for: Callable[[str], Any] | None) -> Any:
    from cnnviz.model import registry
    from cnnviz.train import transfer
    from cnnviz.train.session import model_slug

    try:
        return entry["model"]
    except registry.ModelError:
        if embedder_for is None:
            raise
        model = transfer.full_model(embedder_for(run.base), run.head, name=model_slug(run.name))
        entry["model"] = model  # pages 3 and 5 get the rebuilt model too
        return model


# --------------------------------------------------------------------------- page 5's own sets
def audit_set_item(source: str, classes: list[str], found: Any) -> bytes:
    """An audit :class:`~cnnviz.audit.sets.ImageSet` read from the visitor's files, with where it came from.

    Pictures are kept as PNG (lossless: the reopened set has the same pixels, so an audit kept
    with it is still current, and its fingerprint is unchanged), about a third of the raw size.
    """
    from PIL import Image

    pngs = []
    for image in found.images:
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buffer, format="PNG", compress_level=1)
        pngs.append(np.frombuffer(buffer.getvalue(), np.uint8))
    return pack(
        {
            "version": 1,
            "source": source,
            "classes": list(classes),
            "files": list(found.files),
            "pngs": pngs,
            "labels": found.labels,
            "sentences": list(found.sentences),
        }
    )


def read_audit_set_item(data: bytes) -> tuple[str, list[str], Any]:
    """``(source, classes, ImageSet)`` from :func:`audit_set_item` (``ValueError`` for anything else)."""
    from PIL import Image

    from cnnviz.audit.sets import ImageSet

    tree = unpack(data)
    images = []
    for png in tree["pngs"]:
        with Image.open(io.BytesIO(np.asarray(png, np.uint8).tobytes())) as picture:
            if picture.format != "PNG":
                raise ValueError("not a kept picture")
            images.append(np.asarray(picture.convert("RGB"), dtype=np.uint8))
    labels = tree["labels"]
    return (
        str(tree["source"]),
        [str(c) for c in tree["classes"]],
        ImageSet(
            [str(f) for f in tree["files"]],
            images,
            None if labels is None else np.asarray(labels, np.int64),
            [str(t) for t in tree["sentences"]],
        ),
    )
