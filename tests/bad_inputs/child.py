"""Run hostile files through cnnviz in a fresh process and report what happened, as JSON lines.

Usage: ``python child.py CODE_ROOT JOBS.json``. Each job is ``{"kind", "call", "path", "args"}``;
``call`` names what a page does with an upload (``image``, ``zip``, ``audit_zip``, ``model``,
``export``). For every job one JSON line is printed: ``outcome`` ("ok", "refused" with the
visitor's ``sentence``, or "crash" with the escaped exception's class), ``seconds``, ``peak_mb``
(this process's peak resident memory so far: the memory a server would have needed) and a short
``result`` summary. A separate process per file (or per group of model files) means one bomb's
memory is measured alone and cannot take the test runner down.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # an older checkout has no cnnviz.limits: never imported at run time
    from cnnviz.limits import PixelBudget


def _peak_mb() -> float:
    """This program's peak resident memory (MB): ``VmHWM``, which starts afresh at ``exec``.

    ``ru_maxrss`` would not do: Linux keeps it across ``exec``, so a child of a test runner that
    already holds TensorFlow would report the runner's 700 MB.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def _image(data: bytes, args: dict):
    from cnnviz.images import ImageError, load_image

    try:
        image = load_image(data, name="“upload”", max_side=args.get("max_side", 1024))
    except ImageError as err:
        return "refused", str(err), None
    return (
        "ok",
        None,
        {
            "shape": list(image.shape),
            "dtype": str(image.dtype),
            "row0": image[0, [round(i * (image.shape[1] - 1) / 8) for i in range(9)], 0].tolist(),
            "corner": image[0, 0].tolist(),
            "mean": float(image.mean()),
        },
    )


def _zip(data: bytes, args: dict):
    from cnnviz.zips import ZipError, iter_zip_images, plan_zip

    try:
        plan = plan_zip(data, zip_name="“upload.zip”", loose_images=args.get("loose", False))
    except ZipError as err:
        return "refused", str(err), None
    images = []
    for item in iter_zip_images(data, plan, max_side=args.get("max_side", 512)):
        images.append({"path": item.path, "label": item.label, "sum": int(item.image.astype("int64").sum())})
    return "ok", None, {"images": images, "skipped": plan.skipped, "classes": plan.classes}


def _audit_zip(data: bytes, args: dict):
    from cnnviz.zips import ZipError

    try:
        from cnnviz.audit.sets import read_set_zip
    except ImportError:  # an older checkout: what its audit page did (every image decoded at 512 px)
        from cnnviz.zips import ZipImage, read_image_zip

        def read_set_zip(
            data: bytes, *, zip_name: str = "", side: int = 512, max_images: int = 0, budget: PixelBudget | None = None
        ) -> tuple[list[ZipImage], list[str]]:
            contents = read_image_zip(data, zip_name=zip_name, max_side=512, loose_images=True)
            return [i for g in contents.training.values() for i in g] + contents.testing, contents.skipped

    try:
        items, skipped = read_set_zip(data, zip_name="“probes.zip”", side=args.get("side", 224))
    except ZipError as err:
        return "refused", str(err), None
    return (
        "ok",
        None,
        {
            "n": len(items),
            "max_side": max((max(i.image.shape[:2]) for i in items), default=0),
            "bytes": sum(i.image.nbytes for i in items),
            "skipped": skipped[-3:],
        },
    )


def _model(data: bytes, args: dict):
    from cnnviz.model.registry import ModelError, load_uploaded_model

    try:
        extra = {"kept_params": args["kept_params"]} if "kept_params" in args else {}
        model, card = load_uploaded_model(data, args.get("filename", "upload.keras"), **extra)
    except ModelError as err:
        return "refused", str(err), None
    return "ok", None, {"params": int(card["params"]), "input_size": card["input_size"]}


def _export(data: bytes, args: dict):
    from cnnviz.train.export import ExportError, import_zip

    try:
        model, card = import_zip(data, filename="“export.zip”")
    except ExportError as err:
        return "refused", str(err), None
    return "ok", None, {"classes": card["classes"], "name": card["name"]}


CALLS = {"image": _image, "zip": _zip, "audit_zip": _audit_zip, "model": _model, "export": _export}
# Imported before the first job, so ``baseline_mb`` is the process before any hostile byte.
PRELOAD = {
    "image": ["cnnviz.images"],
    "zip": ["cnnviz.zips"],
    "audit_zip": ["cnnviz.audit.sets"],
    "model": ["cnnviz.model.registry"],
    "export": ["cnnviz.train.export", "cnnviz.model.registry"],
}


def main() -> None:
    root, jobs_file = sys.argv[1], sys.argv[2]
    sys.path.insert(0, root)
    jobs = json.loads(Path(jobs_file).read_text())
    import importlib

    for call in sorted({job["call"] for job in jobs}):
        for module in PRELOAD[call]:
            try:
                importlib.import_module(module)
            except ImportError:  # an older checkout measured for "before" may lack a module
                pass
    print(json.dumps({"baseline_mb": round(_peak_mb(), 1)}), flush=True)
    for job in jobs:
        data = Path(job["path"]).read_bytes()
        began = time.perf_counter()
        try:
            outcome, sentence, result = CALLS[job["call"]](data, job.get("args", {}))
            error = None
        except BaseException as exc:  # the point of the test: anything that escapes is a crash
            module = type(exc).__module__
            name = type(exc).__name__ if module == "builtins" else f"{module}.{type(exc).__name__}"
            outcome, sentence, result, error = "crash", str(exc)[:300], None, name
        print(
            json.dumps(
                {
                    "kind": job["kind"],
                    "outcome": outcome,
                    "sentence": sentence,
                    "error": error,
                    "seconds": round(time.perf_counter() - began, 3),
                    "peak_mb": round(_peak_mb(), 1),
                    "result": result,
                }
            ),
            flush=True,
        )
    os._exit(0)  # skip TensorFlow's slow teardown


if __name__ == "__main__":
    main()
