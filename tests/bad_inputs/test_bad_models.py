"""Hostile ``.keras`` uploads and export zips, all checked in ONE child process (TensorFlow loads once).

Each file's peak is the child's peak memory after it (monotonic), so the bound on the last one
bounds them all; the bombs would need gigabytes before these checks existed.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import h5py
import pytest

from tests.bad_inputs import hostile
from tests.bad_inputs.conftest import plain_sentence, runner

# Building the files and starting TensorFlow twice (here and in the child) takes 20-40 s.
pytestmark = pytest.mark.slow

#: What the model child may grow beyond TensorFlow's own ~700 MB while checking every file.
MAX_EXTRA_MB = 600


def _weights_with(data: bytes, edit) -> bytes:
    raw = zipfile.ZipFile(io.BytesIO(data)).read("model.weights.h5")
    buf = io.BytesIO(raw)
    with h5py.File(buf, "a") as weights:
        edit(weights)
    return hostile.rewrite_member(data, "model.weights.h5", buf.getvalue())


def _big_weights(data: bytes, megabytes: int) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as out:
        for name in ("config.json", "metadata.json"):
            out.writestr(name, src.read(name))
        with out.open("model.weights.h5", "w") as handle:
            block = bytes(1 << 20)
            for _ in range(megabytes):
                handle.write(block)
    return buf.getvalue()


def _lambda_model(marker):
    import keras

    inputs = keras.Input((16, 16, 3))
    # Saved as Python bytecode; the check must refuse it before anything could run it.
    writes = eval(f"lambda t: (open({str(marker)!r}, 'w').close(), t)[1]")  # the path as a constant, no closure
    x = keras.layers.Lambda(writes, name="writes_a_file")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))


def _nested_lambda_model():
    import keras

    inner = keras.Sequential(
        [keras.Input((16, 16, 3)), keras.layers.Lambda(lambda t: t * 2, name="double")], name="inner"
    )
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.GlobalAveragePooling2D()(inner(inputs))
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))


def _export(model, names, *, metadata_labels=None, labels_txt=None) -> bytes:
    from cnnviz.train.export import export_zip

    data = export_zip(model, names, base_model="efficientnet_lite0", include_tflite=False)
    if metadata_labels is not None or labels_txt is not None:
        meta = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("metadata.json"))
        meta["labels"] = metadata_labels if metadata_labels is not None else meta["labels"]
        data = hostile.rewrite_member(data, "metadata.json", json.dumps(meta).encode())
        if labels_txt is not None:
            data = hostile.rewrite_member(data, "labels.txt", labels_txt.encode())
    return data


def model_files(folder, marker) -> dict:
    """Every hostile model and export file: ``{kind: (bytes, call, args)}`` (also used by bench/bad_inputs.py)."""
    import keras

    good = hostile.save_model(hostile.tiny_classifier(), folder)
    cfg = json.loads(zipfile.ZipFile(io.BytesIO(good)).read("config.json"))
    files = {
        "good model": (good, "model", {}),
        "input 16384 × 16384": (
            hostile.save_model(hostile.tiny_classifier((16384, 16384, 3)), folder, "big.keras"),
            "model",
            {},
        ),
        "3 G parameters declared": (hostile.edit_config(good, hostile.huge_dense_config), "model", {}),
        "deep JSON config": (hostile.rewrite_member(good, "config.json", hostile.deep_json()), "model", {}),
        "null config": (hostile.rewrite_member(good, "config.json", b"null"), "model", {}),
        "Lambda in nested compile_config": (hostile.edit_config(good, hostile.nested_compile_lambda), "model", {}),
        "Lambda layer (payload)": (hostile.save_model(_lambda_model(marker), folder, "lambda.keras"), "model", {}),
        "nested Lambda": (hostile.save_model(_nested_lambda_model(), folder, "nested.keras"), "model", {}),
        "custom class": (
            hostile.edit_config(
                good,
                lambda c: json.loads(
                    json.dumps(c).replace('"registered_name": null', '"registered_name": "evil>Custom"', 1)
                ),
            ),
            "model",
            {},
        ),
        "TFSMLayer": (
            hostile.edit_config(
                good, lambda c: json.loads(json.dumps(c).replace('"class_name": "Conv2D"', '"class_name": "TFSMLayer"'))
            ),
            "model",
            {},
        ),
        "HDF5 soft link in weights": (
            _weights_with(good, lambda w: w.__setitem__("sneaky", h5py.SoftLink("/etc/passwd"))),
            "model",
            {},
        ),
        "HDF5 external dataset": (
            _weights_with(
                good, lambda w: w.create_dataset("ext", (16,), dtype="u1", external=[("/etc/hostname", 0, 16)])
            ),
            "model",
            {},
        ),
        "399 MB deflated weights": (_big_weights(good, 399), "model", {}),
        "damaged deflate in .keras": (
            hostile.damage_deflate(
                hostile.rewrite_member(
                    good, "config.json", json.dumps(cfg).encode() + b" " * 4000, zipfile.ZIP_DEFLATED
                ),
                "config.json",
            ),
            "model",
            {},
        ),
        "truncated .keras": (good[: len(good) // 2], "model", {}),
        "layers do not fit together": (
            hostile.edit_config(good, lambda c: json.loads(json.dumps(c).replace('"filters": 4', '"filters": 5'))),
            "model",
            {},
        ),
        "weights of another model": (
            hostile.rewrite_member(
                good,
                "model.weights.h5",
                zipfile.ZipFile(
                    io.BytesIO(hostile.save_model(hostile.tiny_classifier((16, 16, 1)), folder, "gray.keras"))
                ).read("model.weights.h5"),
            ),
            "model",
            {},
        ),
        "HDF5 upload": (b"\x89HDF\r\n\x1a\n" + bytes(64), "model", {"filename": "model.h5"}),
        "pickle (payload)": (hostile.pickle_payload(marker), "model", {"filename": "model.pkl"}),
        "SavedModel zip": (
            hostile.make_zip([("saved_model.pb", b"x"), ("variables/variables.index", b"x")]),
            "model",
            {"filename": "model.keras"},
        ),
        "visitor already keeps 5 models": (good, "model", {"kept_params": [10, 10, 10, 10, 10]}),
        "export round trip": (_export(hostile.tiny_classifier(classes=3), ["good", "two\nlines", "x"]), "export", {}),
        "export with odd labels": (
            _export(
                hostile.tiny_classifier(),
                ["a", "b"],
                metadata_labels=["a\nb", "[x](http://e)"],
                labels_txt="a b\n[x](http://e)\n",
            ),
            "export",
            {},
        ),
        "export from old code, names shifted": (
            _export(
                hostile.tiny_classifier(classes=3),
                ["good", "two", "x"],
                metadata_labels=["good", "two\nlines", "   "],
                labels_txt="good\ntwo\nlines\n",
            ),
            "export",
            {},
        ),
        "export deep metadata": (
            hostile.rewrite_member(
                _export(hostile.tiny_classifier(), ["a", "b"]), "metadata.json", hostile.deep_json()
            ),
            "export",
            {},
        ),
        "export damaged deflate": (
            hostile.damage_deflate(_export(hostile.tiny_classifier(), ["a", "b"]), "model.keras"),
            "export",
            {},
        ),
    }
    keras.backend.clear_session()
    marker.unlink(missing_ok=True)  # Keras traced the Lambda here while building it; the child must not
    return files


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """Every hostile model and export file, made here, checked in one child: ``{kind: report}``."""
    folder = tmp_path_factory.mktemp("models")
    marker = folder / "payload-ran"
    files = model_files(folder, marker)
    jobs: list[dict[str, Any]] = []
    for kind, (data, call, args) in files.items():
        path = folder / f"{len(jobs)}.bin"
        path.write_bytes(data)
        jobs.append({"kind": kind, "call": call, "path": path, "args": args})
    found = runner(tmp_path_factory.mktemp("child"))(jobs, timeout=240)
    assert not marker.exists(), "a payload ran"
    return found


def _refused(reports, kind: str, words: str) -> str:
    report = reports[kind]
    assert report["outcome"] == "refused", report
    sentence = plain_sentence(report["sentence"])
    assert words in sentence, sentence
    return sentence


def test_a_good_model_still_loads(reports):
    assert reports["good model"]["outcome"] == "ok"
    assert reports["good model"]["result"] == {"params": 122, "input_size": [16, 16]}


@pytest.mark.parametrize(
    "kind, words",
    [
        ("input 16384 × 16384", "takes pictures of 16,384 × 16,384 pixels"),
        ("3 G parameters declared", "has 3,006,590,002 parameters; this server accepts models of at most 50,000,000"),
        ("deep JSON config", "nests lists more than 100 levels deep"),
        ("null config", "does not describe a model"),
        ("Lambda in nested compile_config", "Lambda function in its training settings"),
        ("Lambda layer (payload)", "contains a Lambda layer (“writes_a_file”)"),
        ("nested Lambda", "contains a Lambda layer (“double”)"),
        ("custom class", "uses the custom class “evil>Custom”"),
        ("TFSMLayer", "“keras.layers.TFSMLayer”, which is not a built-in Keras layer"),
        ("HDF5 soft link in weights", "point to other files or places"),
        ("HDF5 external dataset", "point to other files or places"),
        ("399 MB deflated weights", "weights are 418 MB"),
        ("damaged deflate in .keras", "is damaged or incomplete (its zip archive cannot be unpacked)"),
        ("truncated .keras", "damaged or incomplete"),
        ("layers do not fit together", "layers do not fit together"),
        ("weights of another model", "its weights do not match its layers"),
        ("HDF5 upload", "HDF5 (.h5) models are not accepted"),
        ("pickle (payload)", "Pickled models are refused"),
        ("SavedModel zip", "TensorFlow SavedModel"),
        ("visitor already keeps 5 models", "You have already uploaded 5 models"),
        ("export deep metadata", "nests lists more than 100 levels deep"),
        ("export from old code, names shifted", "labels.txt and metadata.json in “export.zip” name different classes"),
        ("export damaged deflate", "is not a readable zip file"),
    ],
)
def test_hostile_model_files_are_refused_in_plain_words(reports, kind, words):
    _refused(reports, kind, words)


def test_checking_every_model_file_costs_bounded_memory_and_time(reports):
    last = max(reports.values(), key=lambda r: r["peak_mb"])
    assert last["extra_mb"] < MAX_EXTRA_MB, last
    assert all(r["seconds"] < 20 for r in reports.values()), [(r["kind"], r["seconds"]) for r in reports.values()]


def test_class_names_survive_export_and_import(reports):
    assert reports["export round trip"]["result"]["classes"] == ["good", "two lines", "x"]
    # labels.txt shows "a\nb" on one line; metadata.json keeps the exact name.
    assert reports["export with odd labels"]["result"]["classes"] == ["a\nb", "[x](http://e)"]


def test_blank_or_repeated_class_names_are_refused_when_exported():
    from cnnviz.train.export import ExportError, checked_class_names

    assert checked_class_names(["good", "two\nlines", " tab\there "]) == ["good", "two lines", "tab here"]
    with pytest.raises(ExportError) as err:
        checked_class_names(["good", "two\nlines", "   "])
    assert "cannot be blank" in plain_sentence(str(err.value))
    with pytest.raises(ExportError, match="both called “a b”"):
        checked_class_names(["a b", "a\nb"])
