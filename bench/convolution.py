"""Benchmark: how fast is cnnviz's convolution, and how fast does the convolution page react?

On one 512 × 512 × 3 picture with a 3 × 3 kernel, in one run:
1. ``convolve2d`` against OpenCV's ``cv2.filter2D`` alone (target: at most 2× its time);
2. against a per-pixel Python loop, as in the Coding Train convolution lesson (target: at
   least 1000× faster) — the loop is timed on a 64 × 64 crop and scaled by output pixels;
3. a full AppTest rerun of the convolution page after a kernel change (target: < 300 ms).

Run:  .venv/bin/python -m bench.convolution      (last line: one JSON object)
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
from bench._setup import temporary_keras_home  # noqa: E402

temporary_keras_home()  # before Keras is imported, as tests and CI do

from cnnviz.learn.convolution import convolve2d  # noqa: E402
from cnnviz.images import sample_images  # noqa: E402
from cnnviz.learn.kernels import kernel  # noqa: E402


def best_times(*fns, repeat: int = 15, number: int = 20) -> list[float]:
    """Fastest mean time of one call of each function, in seconds.

    The functions take turns in every round, so a busy shared machine slows them alike;
    the fastest round is the least disturbed one.
    """
    best = [float("inf")] * len(fns)
    for fn in fns:
        fn()
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            for _ in range(number):
                fn()
            best[i] = min(best[i], (time.perf_counter() - start) / number)
    return best


def lesson_convolution(x: int, y: int, matrix: list, pixels: list, width: int, height: int) -> tuple:
    """One output pixel as the Coding Train lesson computes it: r, g, b totals over the matrix.

    ``pixels`` is a flat list of (r, g, b) like Processing's ``img.pixels``; locations
    outside the picture are clamped to it (the lesson's ``constrain``).
    """
    rtotal = gtotal = btotal = 0.0
    offset = len(matrix) // 2
    for i in range(len(matrix)):
        for j in range(len(matrix)):
            xloc = min(max(x + i - offset, 0), width - 1)
            yloc = min(max(y + j - offset, 0), height - 1)
            r, g, b = pixels[xloc + width * yloc]
            rtotal += r * matrix[i][j]
            gtotal += g * matrix[i][j]
            btotal += b * matrix[i][j]
    return rtotal, gtotal, btotal


def loop_convolve(image: np.ndarray, matrix: list) -> np.ndarray:
    """The lesson's per-pixel loop over a whole picture (``(H, W, 3)`` in, same size out)."""
    height, width = image.shape[:2]
    pixels = [tuple(p) for p in image.reshape(-1, 3).astype(float).tolist()]
    out = [None] * (width * height)
    for x in range(width):
        for y in range(height):
            out[x + y * width] = lesson_convolution(x, y, matrix, pixels, width, height)
    return np.array(out, np.float32).reshape(height, width, 3)


def page_rerun_ms(runs: int = 7) -> list[float]:
    """Milliseconds for ``AppTest.run()`` after changing the kernel preset, each run."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "pages" / "convolution.py"), default_timeout=120)
    at.query_params["image"] = "City at night"
    at.run()
    assert not at.exception, at.exception
    presets = ["sobel-x", "gaussian-blur", "outline", "sharpen", "emboss", "box-blur", "sobel-y"]
    times = []
    for i in range(runs + 1):
        at.selectbox(key="kernel").set_value(presets[i % len(presets)])
        start = time.perf_counter()
        at.run()
        elapsed = (time.perf_counter() - start) * 1000
        assert not at.exception, at.exception
        if i:  # the first rerun warms caches (chart code paths, fonts): not counted
            times.append(elapsed)
    return times


def main() -> None:
    picture = cv2.resize(sample_images()["City at night"], (512, 512), interpolation=cv2.INTER_AREA)
    k = kernel("sharpen", 3)
    print(f"picture {picture.shape} {picture.dtype}, kernel 3 × 3 sharpen, OpenCV threads {cv2.getNumThreads()}")

    as_float = picture.astype(np.float32)
    ours, theirs, theirs_u8 = best_times(
        lambda: convolve2d(picture, k),
        lambda: cv2.filter2D(as_float, -1, k),
        lambda: cv2.filter2D(picture, cv2.CV_32F, k),
    )
    print(f"convolve2d (uint8 in)        {ours * 1000:8.3f} ms  (valid, float32, 510 × 510 × 3)")
    print(f"cv2.filter2D (float32 in)    {theirs * 1000:8.3f} ms  (same size, float32; the core call alone)")
    print(f"cv2.filter2D (uint8 in)      {theirs_u8 * 1000:8.3f} ms  (same size, float32; for comparison)")
    print(f"  ratio {ours / theirs:.2f}× the float32 call (target ≤ 2×); {ours / theirs_u8:.2f}× the uint8 call")

    crop = picture[:64, :64]
    start = time.perf_counter()
    # The lesson indexes matrix[i][j] with i along x: the same as our kernel transposed.
    looped = loop_convolve(crop, k.T.astype(float).tolist())
    loop_crop = time.perf_counter() - start
    # Same numbers where the kernel fits inside (the lesson clamps at the border, Keras does not).
    np.testing.assert_allclose(looped[1:-1, 1:-1], convolve2d(crop, k), rtol=1e-5, atol=1e-3)
    loop_full = loop_crop * (512 * 512) / (64 * 64)  # the loop visits every pixel: scale by pixels
    print(f"Python loop (lesson) on 64 × 64 crop {loop_crop * 1000:8.1f} ms → scaled to 512 × 512: {loop_full:.2f} s")
    print(f"  speed-up {loop_full / ours:,.0f}× (target ≥ 1000×)")

    reruns = page_rerun_ms()
    median = statistics.median(reruns)
    print("page reruns after a kernel change (ms): " + ", ".join(f"{t:.0f}" for t in reruns))
    print(f"  median {median:.0f} ms (target < 300 ms)")

    print(
        json.dumps(
            {
                "conv_vs_filter2d": round(ours / theirs, 3),
                "speedup_vs_loop": round(loop_full / ours),
                "page_rerun_ms": round(median, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
