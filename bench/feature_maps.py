"""How fast the feature-map page gets every layer's output for one image.

For EfficientNet-Lite0 (ImageNet) and the best bundled CNN (data/models/*better*.keras), in one run:

1. warm time of ``cnnviz.model.features.feature_maps`` (ONE compiled multi-output model, one pass)
   for one image, median of repeated calls (target for EfficientNet-Lite0: < 100 ms on 2 cores);
   the network alone (``cnnviz.model.features.probabilities``) is timed the same way as the baseline;
2. the naive way, building one ``keras.Model`` per layer and calling ``predict`` on it, timed on
   a few layers spread over the depth and scaled to all layers; the ratio is the speed-up
   (target ≥ 20×);
3. the time to render the tiled grid of the largest layer (``tile_channels``, plus its PNG
   encoding, which is what Streamlit sends to the browser);
4. the peak resident memory of this process with the model loaded.

Run:  .venv/bin/python -m bench.feature_maps
Last line: one JSON object with ``imagenet_all_maps_ms``, ``speedup_vs_per_layer``,
``grid_render_ms`` and ``peak_rss_mb`` (plus the same figures for the bundled CNN).
"""

from __future__ import annotations

import io
import json
import os
import resource
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
from bench._setup import SHARED, temporary_keras_home  # noqa: E402

temporary_keras_home()  # before Keras is imported, as tests and CI do
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from cnnviz.model import features
from cnnviz.model import registry as models  # noqa: E402
from cnnviz.images import load_image_file, sample_images  # noqa: E402

REPEATS = 20
PER_LAYER_SAMPLES = 6
CAT = SHARED / "images" / "non-paintings" / "chelsea-the-cat-photo.png"  # read in place, never copied


def median_ms(fn, repeats: int = REPEATS) -> tuple[float, float]:
    """Median and fastest wall time of ``fn()`` in milliseconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), min(times)


def per_layer_ms(model: keras.Model, x: np.ndarray) -> tuple[float, float, int]:
    """Mean cost of the naive way for one layer: build a sub-model and ``predict`` one image.

    Layers are sampled evenly over the depth (deeper sub-models cost more), so the mean
    scaled by the number of layers estimates doing every layer that way.
    """
    layers = features.feature_layers(model)
    picks = np.unique(np.linspace(0, len(layers) - 1, PER_LAYER_SAMPLES).round().astype(int))
    build_and_predict, predict_only = [], []
    for i in picks:
        start = time.perf_counter()
        sub = keras.Model(model.inputs[0], layers[i].output)
        sub.predict(x, verbose=0)
        build_and_predict.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        sub.predict(x, verbose=0)  # the same model again: no build, no first trace
        predict_only.append((time.perf_counter() - start) * 1000)
    return float(np.mean(build_and_predict)), float(np.mean(predict_only)), len(layers)


def measure(label: str, model: keras.Model, image: np.ndarray) -> dict[str, float]:
    x = models.prepare(image, model)
    start = time.perf_counter()
    maps = features.feature_maps(model, image)
    first_ms = (time.perf_counter() - start) * 1000
    features.feature_maps(model, image)
    features.probabilities(model, image)
    all_ms, all_min = median_ms(lambda: features.feature_maps(model, image))
    net_ms, net_min = median_ms(lambda: features.probabilities(model, image))
    naive_ms, naive_predict_ms, n_layers = per_layer_ms(model, x)
    speedup = naive_ms * n_layers / all_ms

    largest = max(maps, key=lambda name: maps[name].size)
    fmap = maps[largest]
    grid_ms, _ = median_ms(lambda: features.tile_channels(fmap, sort=True), repeats=10)
    grid = features.tile_channels(fmap, sort=True)

    png_ms, _ = median_ms(lambda: features.png_bytes(grid), repeats=5)  # what the page sends

    def default_png():
        Image.fromarray(grid).save(io.BytesIO(), format="PNG")  # what st.image(array) would do

    default_png_ms, _ = median_ms(default_png, repeats=3)
    cam_ms, _ = median_ms(lambda: features.grad_cam(model, image), repeats=10)

    print(f"\n== {label}: {n_layers} layers with feature maps, {sum(m.size for m in maps.values()) / 1e6:.1f} M values")
    print(f"first call (builds + traces the feature model): {first_ms:8.1f} ms")
    print(f"all feature maps, warm (median / fastest):      {all_ms:8.1f} / {all_min:.1f} ms")
    print(f"network alone, warm (median / fastest):         {net_ms:8.1f} / {net_min:.1f} ms   (baseline)")
    print(f"  -> all maps cost {all_ms / net_ms:.2f}x one plain forward pass")
    print(
        f"one model per layer + predict, per layer:       {naive_ms:8.1f} ms (predict only {naive_predict_ms:.1f} ms), "
        f"x {n_layers} layers = {naive_ms * n_layers:.0f} ms"
    )
    print(
        f"  -> speed-up of one compiled multi-output model: {speedup:.0f}x "
        f"({naive_predict_ms * n_layers / all_ms:.0f}x against predict alone on ready-made models)"
    )
    print(
        f"tiled grid of the largest layer {largest} {fmap.shape}: {grid_ms:.1f} ms -> {grid.shape[1]}x{grid.shape[0]} px, "
        f"PNG encoding {png_ms:.1f} ms (Pillow's default level: {default_png_ms:.1f} ms)"
    )
    print(f"Grad-CAM of the predicted class, warm: {cam_ms:.1f} ms")
    return {
        "all_maps_ms": all_ms,
        "network_ms": net_ms,
        "speedup": speedup,
        "grid_ms": grid_ms,
        "grid_png_ms": png_ms,
        "grad_cam_ms": cam_ms,
    }


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    image = load_image_file(CAT) if CAT.is_file() else sample_images()["Geometric shapes"]
    print(f"TensorFlow threads: intra {os.cpu_count()} cores visible; image {image.shape}")
    before = rss_mb()
    start = time.perf_counter()
    net = models.load_model("efficientnet_lite0")
    print(f"EfficientNet-Lite0 loaded in {time.perf_counter() - start:.1f} s; peak RSS before loading {before:.0f} MB")
    imagenet = measure("EfficientNet-Lite0", net, image)
    peak = rss_mb()
    print(f"peak RSS with EfficientNet-Lite0 loaded and all maps computed: {peak:.0f} MB")

    better = sorted(models.MODELS_DIR.glob("*better*.keras"))
    bundled: dict[str, float] = {}
    if better:
        small = models.load_model(better[0].stem)
        bundled = measure(f"bundled {better[0].stem}", small, image)
    else:
        print("\n(no data/models/*better*.keras yet: the bundled CNN was skipped)")

    figures = {
        "imagenet_all_maps_ms": round(imagenet["all_maps_ms"], 1),
        "speedup_vs_per_layer": round(imagenet["speedup"], 1),
        "grid_render_ms": round(imagenet["grid_ms"], 1),
        "peak_rss_mb": round(peak, 0),
        "imagenet_network_ms": round(imagenet["network_ms"], 1),
        "imagenet_grad_cam_ms": round(imagenet["grad_cam_ms"], 1),
        "grid_png_ms": round(imagenet["grid_png_ms"], 1),
    }
    if bundled:
        figures.update(
            {
                "bundled_all_maps_ms": round(bundled["all_maps_ms"], 2),
                "bundled_speedup_vs_per_layer": round(bundled["speedup"], 1),
                "bundled_grid_render_ms": round(bundled["grid_ms"], 2),
            }
        )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
