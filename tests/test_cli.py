"""The command line from the shell: help, one-sentence errors, and the lesson's loop on a real zip."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.lesson_layout import lesson_split, lesson_zip

ROOT = Path(__file__).resolve().parents[1]


def cnnviz(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "-m", "cnnviz", *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize("command", [[], ["train"], ["classify"]])
def test_help_explains_each_command(command):
    done = cnnviz(*command, "--help")
    assert done.returncode == 0
    assert "usage: python -m cnnviz" in done.stdout
    if command == ["train"]:
        assert "--out" in done.stdout and "Teachable Machine" in done.stdout and "--epochs" in done.stdout
    if command == ["classify"]:
        assert "--csv" in done.stdout and "probability per class" in done.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, sentence",
    [
        (["train", "missing-folder", "--out", "m.zip"], "“missing-folder” does not exist"),
        (["train", "{bad}", "--out", "m.zip"], "is not a readable zip file"),
        (["train", "{empty}", "--out", "m.zip"], "holds no image"),
        (["train", "{empty}", "--out", "model.txt"], "--out should name a .zip file"),
        (["train", "{empty}", "--out", "m.zip", "--threshold", "2"], "--threshold is a confidence between 0 and 1"),
        (["train", "{empty}", "--out", "m.zip", "--epochs", "0"], "--epochs and --batch-size must be at least 1"),
        (["classify", "missing.zip", "{empty}", "--csv", "t.csv"], "The model zip “missing.zip” does not exist"),
        (["classify", "{bad}", "{folder}", "--csv", "t.csv"], "is not a readable zip file"),
    ],
)
def test_bad_input_gets_one_sentence_and_a_non_zero_exit(tmp_path, args, sentence):
    (tmp_path / "bad.zip").write_bytes(b"this is not a zip")
    (tmp_path / "empty").mkdir()
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "a.png").write_bytes(b"\x89PNG not really")
    args = [a.format(bad=tmp_path / "bad.zip", empty=tmp_path / "empty", folder=tmp_path / "folder") for a in args]
    done = cnnviz(*args)
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("cnnviz: ") and sentence in last and "Traceback" not in done.stderr


def test_a_wrong_command_line_exits_2():
    done = cnnviz("train")
    assert done.returncode == 2 and "--out" in done.stderr


@pytest.mark.slow
def test_train_then_classify_the_lesson_zip_from_the_shell(tmp_path, shared_images, keras_home):
    data = tmp_path / "paintings.zip"
    data.write_bytes(lesson_zip(shared_images))
    model_zip, test_csv = tmp_path / "model.zip", tmp_path / "test.csv"
    done = cnnviz("train", data, "--out", model_zip, "--csv", test_csv, "--epochs", "20", "--no-tflite")
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "Dataset check" in out and "Test: " in out and "images in testing/ right" in out
    assert "Validation: " in out and "Misclassified test images, most confident first" in out
    assert "Reading and embedding images" in done.stderr and "Training" in done.stderr  # tqdm's bars
    names = set(zipfile.ZipFile(model_zip).namelist())
    assert {"model.keras", "model/model.json", "model/weights.bin", "model/metadata.json", "sketch.js"} <= names
    test_rows = list(csv.DictReader(io.StringIO(test_csv.read_text())))
    n_test = sum(len(v) for v in lesson_split(shared_images)["testing"].values())
    assert len(test_rows) == n_test and all(r["true class"] and r["correct"] in ("yes", "no") for r in test_rows)
    right = sum(r["correct"] == "yes" for r in test_rows)
    assert f"Test: {right} of {n_test} images in testing/ right" in out

    # The lesson's loop: classify a folder (the testing images, in their topic folders) into a CSV.
    folder = tmp_path / "to-classify"
    for topic, files in lesson_split(shared_images)["testing"].items():
        (folder / topic).mkdir(parents=True)
        for path in files:
            (folder / topic / path.name).write_bytes(path.read_bytes())  # temp copies, never in the repository
    (folder / "notes.txt").write_text("not an image")
    topics = tmp_path / "topics.csv"
    done = cnnviz("classify", model_zip, folder, "--csv", topics)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "images/s" in done.stdout and "notes.txt" in done.stdout and "Classifying" in done.stderr
    rows = list(csv.DictReader(io.StringIO(topics.read_text())))
    assert len(rows) == n_test
    assert list(rows[0])[:7] == ["file", "folder", "true class", "predicted class", "confidence", "correct", "unsure"]
    by_file = {r["file"]: r for r in test_rows}
    for row in rows:  # the same model on the same images: the same answers as the training run's test CSV
        assert row["predicted class"] == by_file[row["file"]]["predicted class"]
        assert float(row["confidence"]) == pytest.approx(float(by_file[row["file"]]["confidence"]), abs=2e-4)


def test_the_pure_lesson_modules_never_import_tensorflow():
    probe = (
        "import json, sys\n"
        "import cnnviz.cli, cnnviz.predictions, cnnviz.train.lesson, cnnviz.train.dataset_check, cnnviz.audit.sets\n"
        "cnnviz.cli._parser()\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
