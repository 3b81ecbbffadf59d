"""Benchmark the Programming Historian lesson end to end: test accuracy, export time, CLI throughput.

1. ``demo_test_accuracy``: the trainer's demo (30 generated squares, triangles and circles per
   class in training/, the page's 4 per class with another seed in testing/), trained with
   the defaults through :func:`cnnviz.train.pipeline.train_collection`; accuracy on testing/.
2. ``lesson_zip_test_accuracy``: a lesson-layout zip built from the 22 paintings of
   ``../shared/images`` (6 topics; the last third of each topic, sorted by name, in
   testing/), same defaults; also ``lesson_zip_validation_accuracy`` and image counts.
   ``three_class_test_accuracy``: the same split over paintings / abstract / non-paintings.
3. ``export_s``: :func:`cnnviz.train.pipeline.export_trained` with .keras, .tflite and
   TensorFlow.js (what the page's export button and ``train --out`` write), and ``tfjs_s``,
   the TensorFlow.js part alone.
4. ``cli_images_per_s``: ``python -m cnnviz classify model.zip <folder> --csv`` on 500
   generated JPEGs (demo shapes drawn at 320 × 240 … 640 × 480), as the CLI reports it
   (decode + model, TensorFlow start-up excluded), ``cli_wall_s`` the whole command;
   baseline in the same run: ``in_process_images_per_s`` (the same images already decoded,
   through :func:`cnnviz.train.transfer.predict_probabilities`), and
   ``cli_vs_in_process`` their ratio. ``load_average`` is the 1-minute load before and after
   (the CPUs are shared).

Run:  .venv/bin/python bench/lesson.py   (last line: one JSON object)
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench._setup import SHARED, temporary_keras_home  # noqa: E402

temporary_keras_home()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from cnnviz.model.registry import load_model  # noqa: E402
from cnnviz.train import lesson, pipeline, tfjs  # noqa: E402
from cnnviz.train import transfer as training  # noqa: E402
from cnnviz.train.demo_data import demo_dataset, draw_shape  # noqa: E402

IMAGES = SHARED / "images"


def _png(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return out.getvalue()


def demo_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for part, per_class, seed in (("training", 30, 0), ("testing", 4, 1)):
            for name, images in demo_dataset(per_class, seed=seed).items():
                for i, image in enumerate(images):
                    archive.writestr(f"{part}/{name}/{name}-{i:02d}.png", _png(image))
    return out.getvalue()


def split_zip(groups: dict[str, list[Path]]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for topic, files in groups.items():
            files = sorted(files)
            n_test = math.ceil(len(files) / 3)
            for i, path in enumerate(files):
                part = "testing" if i >= len(files) - n_test else "training"
                archive.write(path, f"{part}/{topic}/{path.name}")
    return out.getvalue()


def measured(result: lesson.SetResult | None, what: str) -> lesson.SetResult:
    """A set whose figures the benchmark reports; without its images they would mean nothing."""
    if result is None:
        raise SystemExit(f"The {what} has no images to measure on.")
    return result


def main() -> None:
    load_before = os.getloadavg()[0]
    embedder = training.embedding_model_for(load_model("efficientnet_lite0"))
    figures: dict = {}

    demo = pipeline.train_collection(lesson.open_collection(demo_zip(), name="demo.zip"), embedder)
    figures["demo_test_accuracy"] = round(measured(demo.results.test, "demo test set").accuracy, 4)
    figures["demo_validation_accuracy"] = round(measured(demo.results.validation, "demo validation set").accuracy, 4)
    print("demo:", *demo.results.sentences, sep="\n  ")

    topics = {p.name: [f for f in p.iterdir() if f.is_file()] for p in sorted((IMAGES / "paintings").iterdir())}
    paintings = pipeline.train_collection(lesson.open_collection(split_zip(topics), name="paintings.zip"), embedder)
    res = paintings.results
    res_test = measured(res.test, "paintings test set")
    res_validation = measured(res.validation, "paintings validation set")
    figures.update(
        lesson_zip_test_accuracy=round(res_test.accuracy, 4),
        lesson_zip_test_images=res_test.n_images,
        lesson_zip_validation_accuracy=round(res_validation.accuracy, 4),
        lesson_zip_validation_images=res_validation.n_images,
        lesson_zip_training_images=sum(1 for f in paintings.embedded.facts if f.part == "training"),
    )
    print("paintings (6 topics):", *res.sentences, sep="\n  ")
    three = {
        "painting": [f for fs in topics.values() for f in fs],
        "abstract": [f for f in (IMAGES / "abstract").iterdir() if f.is_file()],
        "not-a-painting": [f for f in (IMAGES / "non-paintings").iterdir() if f.is_file()],
    }
    three_run = pipeline.train_collection(lesson.open_collection(split_zip(three), name="three.zip"), embedder)
    figures["three_class_test_accuracy"] = round(measured(three_run.results.test, "three-class test set").accuracy, 4)
    figures["three_class_test_images"] = measured(three_run.results.test, "three-class test set").n_images
    print("painting / abstract / not a painting:", *three_run.results.sentences, sep="\n  ")

    started = time.perf_counter()
    blob = pipeline.export_trained(paintings, model_name="Paintings")
    figures["export_s"] = round(time.perf_counter() - started, 2)
    figures["export_mb"] = round(len(blob) / 1e6, 1)
    started = time.perf_counter()
    tfjs.tfjs_files(paintings.model)
    figures["tfjs_s"] = round(time.perf_counter() - started, 2)

    with tempfile.TemporaryDirectory(prefix="cnnviz-bench-cli-") as tmp:
        folder = Path(tmp) / "collection"
        folder.mkdir()
        rng = np.random.default_rng(0)
        images = []
        for i in range(500):
            side = int(rng.choice([320, 400, 480, 560, 640]))
            image = np.asarray(
                Image.fromarray(draw_shape(("square", "triangle", "circle")[i % 3], rng, size=256)).resize(
                    (side, side * 3 // 4)
                )
            )
            Image.fromarray(image).save(folder / f"img-{i:03d}.jpg", quality=90)
            images.append(np.asarray(Image.open(folder / f"img-{i:03d}.jpg").convert("RGB")))
        model_zip = Path(tmp) / "model.zip"
        model_zip.write_bytes(blob)
        started = time.perf_counter()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "cnnviz",
                "classify",
                str(model_zip),
                str(folder),
                "--csv",
                str(Path(tmp) / "topics.csv"),
                "--quiet",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )
        figures["cli_wall_s"] = round(time.perf_counter() - started, 2)
        if done.returncode != 0:
            raise SystemExit(done.stderr[-2000:])
        rate = re.search(r"\(([\d.]+) images/s\)", done.stdout)
        if rate is None:
            raise SystemExit(f"The CLI did not say how fast it was: {done.stdout[-500:]}")
        figures["cli_images_per_s"] = float(rate.group(1))
        print(done.stdout.strip())
        training.predict_probabilities(paintings.model, images[:32])  # trace once, as the CLI's first batch does
        started = time.perf_counter()
        training.predict_probabilities(paintings.model, images)
        figures["in_process_images_per_s"] = round(len(images) / (time.perf_counter() - started), 1)
    figures["cli_vs_in_process"] = round(figures["cli_images_per_s"] / figures["in_process_images_per_s"], 2)
    figures["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    figures["cpus"] = os.cpu_count()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
