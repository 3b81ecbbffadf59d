"""Hostile inputs, before and after: what each does to cnnviz, its peak memory and its time.

Every file is generated in a temporary folder (tests/bad_inputs/hostile.py) and run through the
same child process the tests use (tests/bad_inputs/child.py), one process per image or zip, one
for all model files. ``--before PATH`` also runs an older checkout (e.g. ``../main``) for the
"before" column, one process per file with a time limit; kinds that would allocate gigabytes on
old code are not run there (the issue's measurement is quoted instead).

Prints a Markdown table (kind, before, after, peak memory, time) and ends with one JSON line:
``kinds``, ``after_crashes`` (must be 0), ``after_max_peak_mb``, ``after_max_seconds``, and, with
``--before``, ``before_crashes``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._setup import temporary_keras_home  # noqa: E402

temporary_keras_home()

from tests.bad_inputs import hostile  # noqa: E402
from tests.bad_inputs.conftest import runner  # noqa: E402
from tests.bad_inputs.test_bad_images import REFUSED  # noqa: E402

# Old code would try to allocate gigabytes for these; the issue measured them.
NOT_ON_OLD_CODE = {
    "3 G parameters declared": "killed at a 6 GB cap (issue)",
    "399 MB deflated weights": "jargon sentence after unpacking 399 MB (issue)",
    "5990 × 100 MP WebP zip": "1.5 GB and 2 s per image, hours in all (issue)",
}


def image_and_zip_kinds() -> dict:
    kinds: dict[str, tuple[bytes, str, dict]] = {kind: (data, "image", {}) for kind, (data, _) in REFUSED.items()}
    kinds.update(
        {
            "EXIF wrong type (JPEG)": (hostile.exif_wrong_type("JPEG"), "image", {}),
            "EXIF wrong type (WebP)": (hostile.exif_wrong_type("WEBP"), "image", {}),
            "16-bit PNG gradient": (hostile.gradient16("PNG"), "image", {}),
            "16-bit TIFF gradient": (hostile.gradient16("TIFF"), "image", {}),
            "float TIFF 0…1": (hostile.float_tiff(), "image", {}),
            "LA half transparent": (hostile.la_half_transparent(), "image", {}),
            "P with transparency": (hostile.palette_transparent(), "image", {}),
            "CMYK JPEG": (hostile.cmyk_jpeg(), "image", {}),
            "PNG 25 MP (largest accepted)": (hostile.real_png_pixels(5000, 5000), "image", {}),
        }
    )
    deflated = hostile.make_zip(
        [("cats/a.png", hostile.png(1)), ("cats/b.png", hostile.png(2)), ("dogs/c.png", hostile.png(3))],
        compression=zipfile.ZIP_DEFLATED,
    )
    pictures = [hostile.flat_png(512, 20 * v) for v in range(10)]
    bomb = hostile.webp_claiming(10_000, 10_000)
    kinds.update(
        {
            "zip: damaged deflate": (hostile.damage_deflate(deflated, "cats/b.png"), "zip", {}),
            "zip: empty member name": (
                hostile.make_zip(
                    [(zipfile.ZipInfo(""), b"x"), ("cats/a.png", hostile.png(1)), ("dogs/b.png", hostile.png(2))]
                ),
                "zip",
                {},
            ),
            "zip: same path twice + name in two folders": (
                hostile.make_zip(
                    [("cats/x.png", hostile.png(1)), ("cats/x.png", hostile.png(2)), ("dogs/x.png", hostile.png(3))]
                ),
                "zip",
                {},
            ),
            "zip: zip slip": (
                hostile.make_zip([("../../evil.png", hostile.png(1)), ("ok/a.png", hostile.png(4))]),
                "zip",
                {},
            ),
            "zip: symlink": (hostile.symlink_zip(), "zip", {}),
            "zip: 200 MB zeros entry": (hostile.zip_bomb_entry(), "zip", {}),
            "zip: 100 000 entries": (hostile.many_entries_zip(), "zip", {}),
            "5990 × 100 MP WebP zip": (hostile.make_zip([(f"c/{i}.webp", bomb) for i in range(5990)]), "zip", {}),
            "audit zip: 5990 × 512² PNG": (
                hostile.make_zip([(f"p{i}.png", pictures[i % 10]) for i in range(5990)]),
                "audit_zip",
                {},
            ),
        }
    )
    return kinds


def summary(report: dict | None) -> str:
    if report is None:
        return "not run"
    if report.get("timeout"):
        return f"still running after {report['timeout']} s"
    if report["outcome"] == "crash":
        return f"crash: {report['error']}"
    if report["outcome"] == "refused":
        sentence = report["sentence"]
        jargon = any(w in sentence for w in ("Error", "Exception", "(ValueError)"))
        return ("jargon: " if jargon else "sentence: ") + sentence[:90] + ("…" if len(sentence) > 90 else "")
    result = report.get("result") or {}
    if "images" in result:
        return f"ok: {len(result['images'])} images, {len(result['skipped'])} skipped"
    if "n" in result:
        return f"ok: {result['n']} images kept at ≤ {result['max_side']} px ({result['bytes'] / 1e6:.0f} MB)"
    if "shape" in result:
        return f"ok: {result['shape'][1]}×{result['shape'][0]}, first row {result['row0'][0]}…{result['row0'][-1]}"
    return "ok: " + json.dumps(result)[:80]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", type=Path, help="an older checkout to measure for the 'before' column")
    options = parser.parse_args()
    from tests.bad_inputs.test_bad_models import model_files

    with tempfile.TemporaryDirectory(prefix="cnnviz-bench-bad-") as scratch:
        folder = Path(scratch)
        kinds = image_and_zip_kinds()
        models = model_files(folder, folder / "payload-ran")
        jobs = {}
        for i, (kind, (data, call, args)) in enumerate({**kinds, **models}.items()):
            path = folder / f"{i}.bin"
            path.write_bytes(data)
            jobs[kind] = {"kind": kind, "call": call, "path": path, "args": args}
        run = runner(folder, check_repo=False)
        after = {}
        for job in jobs.values():
            if job["call"] not in ("model", "export"):
                after.update(run([job], timeout=300))
        after.update(run([job for job in jobs.values() if job["call"] in ("model", "export")], timeout=600))
        before = {}
        if options.before:
            import subprocess

            for kind, job in jobs.items():
                if kind in NOT_ON_OLD_CODE:
                    continue
                try:
                    before.update(run([job], timeout=90, code_root=options.before.resolve()))
                except subprocess.TimeoutExpired:
                    before[kind] = {"timeout": 90}
                except AssertionError as err:  # the old child died (killed, or its API differs)
                    before[kind] = {"outcome": "crash", "error": str(err).splitlines()[0][:60]}

    print("| kind | before | after | peak memory (MB) | time (s) |")
    print("| --- | --- | --- | --- | --- |")
    for kind in jobs:
        b = NOT_ON_OLD_CODE[kind] if kind in NOT_ON_OLD_CODE else summary(before.get(kind)) if options.before else "—"
        if options.before and kind not in NOT_ON_OLD_CODE and before.get(kind) and "peak_mb" in before[kind]:
            b += f" ({before[kind]['peak_mb']:.0f} MB, {before[kind]['seconds']:.1f} s)"
        a = after[kind]
        print(
            f"| {kind} | {b.replace('|', '/')} | {summary(a).replace('|', '/')} | {a['peak_mb']:.0f} | {a['seconds']:.2f} |"
        )
    figures = {
        "kinds": len(after),
        "after_crashes": sum(1 for r in after.values() if r["outcome"] == "crash"),
        "after_max_peak_mb_image_zip": max(
            r["peak_mb"] for k, r in after.items() if jobs[k]["call"] not in ("model", "export")
        ),
        "after_max_peak_mb_models": max(
            r["peak_mb"] for k, r in after.items() if jobs[k]["call"] in ("model", "export")
        ),
        "after_max_seconds": max(r["seconds"] for r in after.values()),
    }
    if options.before:
        figures["before_crashes"] = sum(1 for r in before.values() if r.get("outcome") == "crash" or r.get("timeout"))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
