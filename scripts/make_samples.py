"""Generate the offline sample images in data/samples/.

Each image is drawn from code (no downloaded file), so the app has pictures to
convolve on a machine without internet. Run:  .venv/bin/python scripts/make_samples.py
"""

from pathlib import Path

import cv2
import numpy as np

OUT = Path(__file__).resolve().parents[1] / "data" / "samples"
SIZE = 384


def geometric_shapes() -> np.ndarray:
    """A square, a circle and a triangle on a soft gradient: clean edges for Sobel and outline."""
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    img = np.dstack([200 - x // 6, 210 - y // 8, 235 - (x + y) // 10]).astype(np.uint8)
    cv2.rectangle(img, (40, 60), (160, 180), (200, 40, 40), -1)
    cv2.circle(img, (270, 120), 70, (30, 110, 200), -1)
    pts = np.array([[190, 340], [330, 340], [260, 220]], np.int32)
    cv2.fillPoly(img, [pts], (40, 150, 60))
    cv2.putText(img, "CNN", (40, 320), cv2.FONT_HERSHEY_SIMPLEX, 2.2, (20, 20, 20), 6, cv2.LINE_AA)
    return img


def checkerboard() -> np.ndarray:
    """Black and white squares: every edge direction, and aliasing when the stride grows."""
    cells = (np.add.outer(np.arange(SIZE) // 32, np.arange(SIZE) // 32) % 2) * 255
    return np.repeat(cells.astype(np.uint8)[:, :, None], 3, axis=2)


def concentric_rings() -> np.ndarray:
    """Rings of rising frequency: blur removes the fine ones, pooling aliases them."""
    y, x = np.mgrid[0:SIZE, 0:SIZE] - SIZE / 2
    r = np.hypot(x, y)
    gray = (127.5 + 127.5 * np.cos(r * r / 900.0)).astype(np.uint8)
    return cv2.applyColorMap(gray, cv2.COLORMAP_TWILIGHT)[:, :, ::-1].copy()


def city_at_night() -> np.ndarray:
    """A skyline of lit windows: small bright blobs, a good test for max-pooling."""
    rng = np.random.default_rng(7)
    img = np.zeros((SIZE, SIZE, 3), np.uint8)
    img[:] = (15, 20, 45)
    x = 0
    while x < SIZE:
        w = int(rng.integers(30, 70))
        h = int(rng.integers(120, 330))
        cv2.rectangle(img, (x, SIZE - h), (x + w - 4, SIZE), (35, 35, 50), -1)
        for wy in range(SIZE - h + 8, SIZE - 8, 14):
            for wx in range(x + 5, x + w - 10, 10):
                if rng.random() < 0.45:
                    cv2.rectangle(img, (wx, wy), (wx + 4, wy + 6), (250, 220, 120), -1)
        x += w
    cv2.circle(img, (320, 60), 25, (240, 240, 220), -1)
    return img


def handwritten_digit() -> np.ndarray:
    """A large '7' in the MNIST style: white stroke on black."""
    img = np.zeros((SIZE, SIZE, 3), np.uint8)
    cv2.putText(img, "7", (90, 320), cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, 10, (255, 255, 255), 28, cv2.LINE_AA)
    return cv2.GaussianBlur(img, (9, 9), 0)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    makers = [geometric_shapes, checkerboard, concentric_rings, city_at_night, handwritten_digit]
    for i, make in enumerate(makers, 1):
        path = OUT / f"{i:02d}-{make.__name__}.png"
        cv2.imwrite(str(path), make()[:, :, ::-1])
        print("wrote", path)


if __name__ == "__main__":
    main()
