"""The command line, for collections too large for a browser session.

    python -m cnnviz train <folder-or-zip> --out model.zip
    python -m cnnviz classify model.zip <folder-or-zip> --csv topics.csv

``train`` does what the trainer page does, with the same defaults: reads a collection in
the lesson's layout (``training/<class>/``, ``testing/<class>/``) or ``<class>/``, checks
it (:mod:`cnnviz.train.dataset_check`), trains on ``training/`` with Teachable Machine's
15 % validation split, reports the test set, and writes the export zip (``.keras``,
``.tflite``, TensorFlow.js for ml5.js, labels, metadata, a p5 sketch).
``classify`` runs such a zip over a folder and writes the CSV of
:mod:`cnnviz.predictions`: the loop the lesson ends with. Bad input gives one sentence
and exit status 1 (2 for a wrong command line).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import zipfile
from pathlib import Path
from typing import Sequence

__all__ = ["main"]


class _Bar:
    """A tqdm progress bar per stage, on stderr (hidden with --quiet)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bars: dict = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.quiet:
            return
        from tqdm import tqdm

        bar = self.bars.get(stage)
        if bar is None:
            unit = "epoch" if stage == "Training" else "image"
            bar = self.bars[stage] = tqdm(total=total, desc=stage, unit=unit, file=sys.stderr, leave=True)
        bar.update(done - bar.n)
        if done >= total:
            self.close(stage)

    def close(self, stage: str | None = None) -> None:
        for name in [stage] if stage else list(self.bars):
            bar = self.bars.pop(name, None)
            if bar is not None:
                bar.close()


def _table(rows: list[dict], columns: Sequence[str]) -> str:
    cells = [[str(c) for c in columns]] + [[_fmt(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.0%}" if 0 <= value <= 1 else f"{value:.3g}"
    return str(value)


def _parser() -> argparse.ArgumentParser:
    from cnnviz.predictions import UNSURE_THRESHOLD

    parser = argparse.ArgumentParser(
        prog="python -m cnnviz",
        description="Train an image classifier on your own collection and classify whole folders with it "
        "(the Programming Historian lesson, without a browser).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{train,classify}")
    train = commands.add_parser(
        "train",
        help="train a classifier on a folder or zip and export it",
        description="Train on training/<class>/ (15 %% of each class held out for validation, rounded up as "
        "Teachable Machine does), test on testing/<class>/, and write the export zip "
        "(model.keras, model.tflite, TensorFlow.js model/ for ml5.js, labels, metadata, p5 sketch).",
    )
    train.add_argument("collection", help="a zip or folder with training/<class>/ and testing/<class>/ (or <class>/)")
    train.add_argument("--out", required=True, help="where to write the model zip, e.g. model.zip")
    train.add_argument(
        "--base",
        default="efficientnet_lite0",
        choices=["efficientnet_lite0", "mobilenet_v2"],
        help="pretrained base network (default: %(default)s)",
    )
    train.add_argument("--epochs", type=int, default=50, help="passes through the training images (default: 50)")
    train.add_argument("--batch-size", type=int, default=16, help="images per weight update (default: 16)")
    train.add_argument("--learning-rate", type=float, default=0.001, help="size of each update (default: 0.001)")
    train.add_argument("--seed", type=int, default=0, help="seed of the split and training (default: 0)")
    train.add_argument("--name", default=None, help="model name in the metadata (default: the zip's name)")
    train.add_argument("--csv", default=None, help="also write the test images' predictions to this CSV")
    train.add_argument(
        "--threshold",
        type=float,
        default=UNSURE_THRESHOLD,
        help="confidence below which a CSV row is flagged unsure (default: %(default)s)",
    )
    train.add_argument("--no-tflite", action="store_true", help="skip the TensorFlow Lite file (saves ~10 s)")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    classify = commands.add_parser(
        "classify",
        help="classify every image of a folder or zip with an exported model and write a CSV",
        description="One CSV row per image: file, folder, true class (when the image sits in a folder named "
        "after a class), predicted class, confidence, correct, unsure, and one probability per class.",
    )
    classify.add_argument("model", help="a model zip written by 'train' or the trainer page")
    classify.add_argument("images", help="a folder or zip of images (class folders optional)")
    classify.add_argument("--csv", required=True, help="where to write the table, e.g. topics.csv")
    classify.add_argument(
        "--threshold",
        type=float,
        default=UNSURE_THRESHOLD,
        help="confidence below which a row is flagged unsure (default: %(default)s)",
    )
    classify.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _check_settings(args: argparse.Namespace) -> None:
    if getattr(args, "epochs", 1) < 1 or getattr(args, "batch_size", 1) < 1:
        raise ValueError("--epochs and --batch-size must be at least 1.")
    if getattr(args, "learning_rate", 0.001) <= 0:
        raise ValueError("--learning-rate must be above 0.")
    if not 0 <= args.threshold <= 1:
        raise ValueError("--threshold is a confidence between 0 and 1, e.g. 0.5.")


def _train(args: argparse.Namespace) -> int:
    from cnnviz.train import lesson
    from cnnviz.zips import ZipError

    out = Path(args.out)
    if out.suffix.lower() != ".zip":
        raise ValueError(f"--out should name a .zip file (got “{out.name}”).")
    if not out.parent.is_dir():
        raise ValueError(f"The folder for --out, “{out.parent}”, does not exist.")
    try:
        collection = lesson.open_collection(args.collection)
    except ZipError as err:
        raise ValueError(str(err)) from None
    print(
        f"{collection.name}: {collection.layout} layout, {collection.count('training')} training and "
        f"{collection.count('testing')} testing images, {len(collection.skipped)} files skipped."
    )
    from cnnviz.model import registry
    from cnnviz.predictions import rows_to_csv
    from cnnviz.train import pipeline
    from cnnviz.train import transfer as training

    try:
        embedder = training.embedding_model_for(registry.load_model(args.base))
    except registry.ModelError as err:
        raise ValueError(str(err)) from None
    bar = _Bar(args.quiet)
    name = args.name or Path(args.collection).stem
    try:
        trained = pipeline.train_collection(
            collection,
            embedder,
            base=args.base,
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            seed=args.seed,
            threshold=args.threshold,
            on_progress=bar,
        )
    finally:
        bar.close()
    check = trained.check
    print("\nDataset check")
    print(_table(check.rows, ["class", "training images", "testing images", "grayscale", "very small"]))
    for sentence in check.sentences:
        print(("! " if sentence in check.warnings else "- ") + sentence)
    for reason in collection.skipped[:20]:
        print(f"  skipped: {reason}")
    if len(collection.skipped) > 20:
        print(f"  … and {len(collection.skipped) - 20} more skipped files.")
    results = trained.results
    print("\nResults")
    for sentence in results.sentences:
        print("- " + sentence)
    for part in (results.test, results.validation):
        if part is None or not part.n_images:
            continue
        print(f"\nPer-class accuracy ({part.name})")
        print(_table(part.per_class_rows(), ["class", "images", "right", "accuracy"]))
        if part.mistakes:
            print(f"Misclassified {part.name} images, most confident first:")
            for m in part.mistakes[:15]:
                print(f"  {m.folder}/{m.file}: {m.true_class} → {m.predicted_class} ({m.confidence:.0%})")
    started = time.perf_counter()
    blob = pipeline.export_trained(trained, model_name=name, include_tflite=not args.no_tflite)
    out.write_bytes(blob)
    print(
        f"\nWrote {out} ({len(blob) / 1e6:.1f} MB in {time.perf_counter() - started:.1f} s): model.keras, "
        + ("" if args.no_tflite else "model.tflite, ")
        + "model/ (TensorFlow.js for ml5.js), index.html + sketch.js."
    )
    if args.csv and not trained.test_rows:
        print(f"No CSV was written to {args.csv}: there are no testing/ images to list.")
    elif args.csv:
        Path(args.csv).write_text(rows_to_csv(trained.test_rows), encoding="utf-8")
        print(f"Wrote {args.csv} ({len(trained.test_rows)} test images).")
    return 0


def _classify(args: argparse.Namespace) -> int:
    from cnnviz.train import lesson
    from cnnviz.zips import ZipError

    model_path = Path(args.model)
    if not model_path.is_file():
        raise ValueError(f"The model zip “{model_path.name}” does not exist.")
    if not zipfile.is_zipfile(model_path):  # before TensorFlow loads: a quick, quiet answer
        raise ValueError(f"“{model_path.name}” is not a readable zip file (it may be damaged or incomplete).")
    csv_path = Path(args.csv)
    if not csv_path.parent.is_dir():
        raise ValueError(f"The folder for --csv, “{csv_path.parent}”, does not exist.")
    try:
        collection = lesson.open_collection(args.images, loose_images=True)
    except ZipError as err:
        raise ValueError(str(err)) from None
    from cnnviz.predictions import rows_to_csv
    from cnnviz.train import pipeline
    from cnnviz.train.export import ExportError, import_zip

    try:
        model, card = import_zip(model_path.read_bytes(), filename=f"“{model_path.name}”")
    except ExportError as err:
        raise ValueError(str(err)) from None
    bar = _Bar(args.quiet)
    bar("Classifying", 0, len(collection.entries))
    started = time.perf_counter()
    try:
        rows = pipeline.classify_images(
            model,
            card["classes"],
            collection.images(),
            threshold=args.threshold,
            on_progress=bar,
            total=len(collection.entries),
        )
    finally:
        bar.close()
    seconds = time.perf_counter() - started
    csv_path.write_text(rows_to_csv(rows), encoding="utf-8")
    scored = [r for r in rows if r["correct"] != ""]
    print(
        f"Classified {len(rows)} images in {seconds:.1f} s ({len(rows) / max(seconds, 1e-9):.1f} images/s); "
        f"wrote {csv_path}."
    )
    if scored:
        right = sum(1 for r in scored if r["correct"])
        print(
            f"{right} of {len(scored)} images in folders named after a class were classified as that class "
            f"({right / len(scored):.0%})."
        )
    unsure = sum(1 for r in rows if r["unsure"])
    print(f"{unsure} images are flagged unsure (confidence below {args.threshold:.0%}).")
    for reason in collection.skipped[:20]:
        print(f"  skipped: {reason}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 bad input, 2 wrong usage)."""
    args = _parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        _check_settings(args)
        return _train(args) if args.command == "train" else _classify(args)
    except ValueError as err:
        print(f"cnnviz: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"cnnviz: could not read or write a file ({err.strerror or err}).", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("cnnviz: stopped.", file=sys.stderr)
        return 130
