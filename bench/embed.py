"""Benchmark the frozen base network's embedding: Keras as it was against LiteRT with decoding overlapped.

Both paths start from the files' bytes and end with the 1 280 EfficientNet-Lite0 features, so
decoding (``cnnviz.images.load_image`` at 512 px, as the trainer reads uploads) and resizing to
224 × 224 are included:

- **Keras** (the baseline, what the trainer did before): decode one file after the other,
  batches of 32 through the Keras model under one ``tf.function``.
- **fast**: :func:`cnnviz.model.fast_embed.embed_stream`, the LiteRT interpreter (XNNPACK, one
  thread per core) while a worker thread decodes and resizes the next batch.

1. ``keras_img_s`` / ``fast_img_s``: images per second on the same images in the same run,
   64 synthetic pictures (the audit's generated probes, 480 × 360 JPEGs) and every photo and
   painting in ``../shared/images`` (23 JPEGs, 13 PNGs, most about 1 000 px). Each path runs
   twice, alternating, and keeps its faster run (the machine is shared).
   ``speedup`` = fast / Keras (target ≥ 1.5). ``max_abs_diff`` is the largest difference
   between the two paths' features over all those images (target ≤ 1e-4).
2. ``collection_5000_s``: a 5 000-JPEG zip (4 class folders, 320 px pictures made from the
   shared photos by seeded crops and flips, written to a temporary folder), end to end as the
   trainer reads it: the zip's bytes, :func:`cnnviz.zips.plan_zip`, its images decoded in the
   worker, embedded, content-hashed and stored with a thumbnail in an ``EmbeddingStore``.
   Target ≤ 30 s on 2 cores. Other processes share the cores, so the old path is measured on
   the first ``BASELINE_N`` images of the same zip in the same run and scaled to 5 000
   (``collection_baseline_5000_s``); ``collection_ratio`` = baseline / fast. The ``*_cpu_s``
   twins are the process's CPU seconds (all threads), which other processes hardly change:
   half of them is the least wall time on an idle 2-core machine.
3. ``peak_rss_mb``: the process's peak resident memory at the end. ``convert_s``: converting
   the Keras model to LiteRT, once per machine (kept in Keras's cache folder); not counted above.

Run:  .venv/bin/python bench/embed.py   (last line: one JSON object)
"""

from __future__ import annotations

import io
import json
import os
import resource
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench._setup import SHARED as SHARED_ROOT, temporary_keras_home  # noqa: E402

temporary_keras_home()  # before Keras is imported, as tests and CI do
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
SHARED = SHARED_ROOT / "images"
BASE = "efficientnet_lite0"
SYNTHETIC = 64
COLLECTION = int(os.environ.get("BENCH_COLLECTION", "5000"))
BASELINE_N = int(os.environ.get("BENCH_BASELINE_N", "480"))
BATCH = 32  # the Keras path's batch (what the trainer used)
STREAM_BATCH = 8  # the pipeline's hand-over size: the network starts after 8 pictures, not 32
MAX_SIDE = 512


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports kB


def jpeg(image, quality: int = 88) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(image).save(out, format="JPEG", quality=quality)
    return out.getvalue()


def keras_path(files: list[bytes], embedder, keras_call):
    """The old way: decode one after the other, then a batch through Keras."""
    import numpy as np

    from cnnviz.images import load_image
    from cnnviz.train.transfer import to_model_input

    out = []
    size = tuple(embedder.input_shape[1:3])
    for start in range(0, len(files), BATCH):
        images = [load_image(data, max_side=MAX_SIDE) for data in files[start : start + BATCH]]
        out.append(keras_call(to_model_input(images, size)))
    return np.concatenate(out)


def fast_path(files: list[bytes], embedder):
    import numpy as np

    from cnnviz.model import fast_embed

    results = list(fast_embed.embed_stream(files, embedder, batch_size=STREAM_BATCH, persist=True))
    unreadable = [r.error for r in results if r.embedding is None]
    if unreadable:
        raise SystemExit(f"The benchmark's images must all read: {unreadable[0]}")
    return np.stack([r.embedding for r in results if r.embedding is not None])


def make_collection(folder: Path, n: int) -> Path:
    """``n`` seeded 320 px JPEG variations of the shared photos, in 4 class folders, zipped (not timed)."""
    import numpy as np
    from PIL import Image

    from cnnviz.images import load_image_file

    sources = [
        load_image_file(p, max_side=480)
        for p in sorted(SHARED.rglob("*"))
        if p.suffix.lower() in {".jpg", ".jpeg", ".png"}
    ]
    rng = np.random.default_rng(0)
    path = folder / "collection.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for i in range(n):
            pil = Image.fromarray(sources[i % len(sources)])
            w, h = pil.size
            scale = rng.uniform(0.6, 1.0)
            cw, ch = int(w * scale), int(h * scale)
            x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            pil = pil.crop((x, y, x + cw, y + ch))
            if rng.random() < 0.5:
                pil = pil.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            pil.thumbnail((320, 320), Image.Resampling.BILINEAR)
            archive.writestr(f"class_{i % 4}/image_{i:05d}.jpg", jpeg(np.asarray(pil)))
    return path


def collection_fast(data: bytes, embedder):
    from cnnviz.model import fast_embed
    from cnnviz.train import transfer
    from cnnviz.zips import iter_zip_images, plan_zip

    plan = plan_zip(data, zip_name="collection.zip")
    store = transfer.EmbeddingStore()
    n = 0
    for result in fast_embed.embed_stream(
        iter_zip_images(data, plan, max_side=MAX_SIDE), embedder, batch_size=STREAM_BATCH, persist=True
    ):
        if result.image is None or result.embedding is None:
            raise SystemExit(f"The benchmark's images must all read: {result.error}")
        store.put(transfer.image_key(result.image), BASE, result.embedding, result.image)
        n += 1
    return n, store


def collection_keras(data: bytes, embedder, keras_call, limit: int):
    """The old way on the first ``limit`` images: decode in turn, batches through Keras, store."""
    import numpy as np

    from cnnviz.train import transfer
    from cnnviz.zips import ZipImage, iter_zip_images, plan_zip

    plan = plan_zip(data, zip_name="collection.zip")
    plan.entries = plan.entries[:limit]
    store = transfer.EmbeddingStore()
    chunk: list[ZipImage] = []
    size = tuple(embedder.input_shape[1:3])

    def flush():
        features = np.asarray(keras_call(transfer.to_model_input([z.image for z in chunk], size)), np.float32)
        for z, f in zip(chunk, features):
            store.put(transfer.image_key(z.image), BASE, f, z.image)
        chunk.clear()

    n = 0
    for item in iter_zip_images(data, plan, max_side=MAX_SIDE):
        chunk.append(item)
        n += 1
        if len(chunk) == BATCH:
            flush()
    if chunk:
        flush()
    return n


def main() -> None:
    if not SHARED.is_dir():
        sys.exit(f"No shared images at {SHARED}; set CNNVIZ_SHARED to the folder that holds images/.")
    import numpy as np

    from cnnviz.audit import probes
    from cnnviz.model import fast_embed, registry
    from cnnviz.train import transfer

    t = time.perf_counter()
    base = registry.load_model(BASE)
    embedder = transfer.embedding_model_for(base)
    print(f"{BASE} loaded in {time.perf_counter() - t:.1f} s (once per server process; not counted)")
    t = time.perf_counter()
    fast_call = fast_embed.embedder(embedder, persist=True)
    convert_s = time.perf_counter() - t
    assert fast_embed.is_fast(fast_call), "EfficientNet-Lite0 did not convert to LiteRT"
    keras_call = fast_embed.embedder(embedder, fast=False)
    print(
        f"converted to LiteRT in {convert_s:.1f} s (once per machine, kept in Keras's cache; not counted); "
        f"{fast_embed.THREADS} interpreter threads"
    )

    synthetic = [
        jpeg(img) for img in probes.probe_set(list(probes.GENERATORS), SYNTHETIC, size=(360, 480), seed=0).values()
    ]
    photos = [p.read_bytes() for p in sorted(SHARED.rglob("*")) if p.suffix.lower() in {".jpg", ".jpeg", ".png"}]
    sets = {"synthetic": synthetic, "photos": photos}
    # Warm up both (tracing, the interpreter's first run) on a few images.
    keras_path(photos[:4], embedder, keras_call)
    fast_path(photos[:4], embedder)

    load_before = os.getloadavg()[0]
    times: dict[tuple[str, str], list[float]] = {(name, way): [] for name in sets for way in ("keras", "fast")}
    diffs = []
    for _ in range(2):
        for name, files in sets.items():
            t = time.perf_counter()
            k = keras_path(files, embedder, keras_call)
            times[(name, "keras")].append(time.perf_counter() - t)
            t = time.perf_counter()
            f = fast_path(files, embedder)
            times[(name, "fast")].append(time.perf_counter() - t)
            diffs.append(float(np.abs(k - f).max()))
    n_all = sum(len(f) for f in sets.values())
    keras_s = sum(min(times[(n, "keras")]) for n in sets)
    fast_s = sum(min(times[(n, "fast")]) for n in sets)
    for name, files in sets.items():
        ks, fs = min(times[(name, "keras")]), min(times[(name, "fast")])
        print(
            f"{name:9s} ({len(files)} files): Keras {len(files) / ks:6.1f} images/s, fast {len(files) / fs:6.1f} images/s "
            f"({ks / fs:.2f}×)  runs (s): Keras {', '.join(f'{x:.2f}' for x in times[(name, 'keras')])}; "
            f"fast {', '.join(f'{x:.2f}' for x in times[(name, 'fast')])}"
        )
    keras_img_s, fast_img_s = n_all / keras_s, n_all / fast_s
    speedup = fast_img_s / keras_img_s
    max_abs_diff = max(diffs)
    print(
        f"all {n_all} images, decoding included: Keras {keras_img_s:.1f} images/s, fast {fast_img_s:.1f} images/s, "
        f"speedup {speedup:.2f}× (target ≥ 1.5: {'met' if speedup >= 1.5 else 'MISSED'}); largest feature difference "
        f"{max_abs_diff:.2e} (target ≤ 1e-4: {'met' if max_abs_diff <= 1e-4 else 'MISSED'}); 1-minute load "
        f"{load_before:.1f} on {os.cpu_count()} cores"
    )

    with tempfile.TemporaryDirectory(prefix="cnnviz-bench-zip-") as folder:
        t = time.perf_counter()
        path = make_collection(Path(folder), COLLECTION)
        print(
            f"{COLLECTION} JPEGs zipped ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.1f} s (not counted)"
        )
        load_collection = os.getloadavg()[0]
        t, c = time.perf_counter(), time.process_time()
        data = path.read_bytes()
        n, store = collection_fast(data, embedder)
        collection_s, collection_cpu_s = time.perf_counter() - t, time.process_time() - c
        assert n == COLLECTION, n  # every image read and embedded (a few crops coincide: the store keeps one)
        t, c = time.perf_counter(), time.process_time()
        n_base = collection_keras(data, embedder, keras_call, BASELINE_N)
        baseline_s = (time.perf_counter() - t) * COLLECTION / n_base
        baseline_cpu_s = (time.process_time() - c) * COLLECTION / n_base
    ratio = baseline_s / collection_s
    print(
        f"collection of {COLLECTION} JPEGs from a zip, end to end: {collection_s:.1f} s "
        f"({COLLECTION / collection_s:.0f} images/s; target ≤ 30 s: {'met' if collection_s <= 30 else 'MISSED'}); "
        f"the old path on its first {n_base} images, scaled: {baseline_s:.1f} s ({ratio:.2f}× slower); "
        f"1-minute load {load_collection:.1f}; store {len(store)} distinct images, {store.nbytes() / 1e6:.0f} MB"
    )
    cores = os.cpu_count() or 1
    # CPU seconds of this process (all threads) hardly depend on what else runs: half of them
    # is the wall time an otherwise idle 2-core machine would need at best.
    print(
        f"CPU time (all threads): fast {collection_cpu_s:.1f} s, old path (scaled) {baseline_cpu_s:.1f} s; "
        f"on {cores} idle cores that is at least {collection_cpu_s / cores:.1f} s and "
        f"{baseline_cpu_s / cores:.1f} s"
    )
    rss = peak_rss_mb()
    print(f"peak RSS {rss:.0f} MB")
    print(
        json.dumps(
            {
                "keras_img_s": round(keras_img_s, 1),
                "fast_img_s": round(fast_img_s, 1),
                "speedup": round(speedup, 2),
                "max_abs_diff": float(f"{max_abs_diff:.3g}"),
                "collection_5000_s": round(collection_s, 1),
                "collection_baseline_5000_s": round(baseline_s, 1),
                "collection_ratio": round(ratio, 2),
                "collection_5000_cpu_s": round(collection_cpu_s, 1),
                "collection_baseline_5000_cpu_s": round(baseline_cpu_s, 1),
                "convert_s": round(convert_s, 1),
                "peak_rss_mb": round(rss, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
