"""cnnviz.learn.pooling.pool2d equals keras.layers.MaxPooling2D / AveragePooling2D."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from cnnviz.learn.pooling import pool2d  # noqa: E402

LAYERS = {"max": "MaxPooling2D", "avg": "AveragePooling2D"}
CASES = list(itertools.product(["max", "avg"], [2, 3], [None, 1, 2, 3], ["valid", "same"], [1, 3], [(11, 14), (16, 9)]))


@pytest.mark.parametrize("mode,size,stride,padding,channels,shape", CASES)
def test_pool2d_equals_keras(mode, size, stride, padding, channels, shape):
    rng = np.random.default_rng(hash((mode, size, stride, padding, channels, shape)) % 2**32)
    x = rng.normal(size=shape + (channels,)).astype(np.float32)  # negatives: padding must never win a max
    layer = getattr(keras.layers, LAYERS[mode])(pool_size=size, strides=stride, padding=padding)
    expected = keras.ops.convert_to_numpy(layer(x[None]))[0]
    ours = pool2d(x, size=size, stride=stride, mode=mode, padding=padding)
    assert ours.dtype == np.float32 and ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)
    if channels == 1:
        np.testing.assert_allclose(
            pool2d(x[..., 0], size=size, stride=stride, mode=mode, padding=padding),
            expected[..., 0],
            rtol=1e-5,
            atol=1e-6,
        )


def test_same_average_divides_by_real_cells_only():
    x = np.full((3, 3), 6.0, np.float32)
    # Windows at the right/bottom edge cover padding; the mean of real cells is still 6.
    np.testing.assert_array_equal(pool2d(x, 2, mode="avg", padding="same"), np.full((2, 2), 6.0))


def test_pool2d_by_hand():
    x = np.array([[1, 2, 5, 0], [3, 4, 1, 1], [0, 0, 2, 2], [0, 8, 2, 2]], np.float32)
    np.testing.assert_array_equal(pool2d(x, 2), [[4, 5], [8, 2]])
    np.testing.assert_array_equal(pool2d(x, 2, mode="avg"), [[2.5, 1.75], [2, 2]])
    assert pool2d(x, 5).shape == (0, 0)
    with pytest.raises(ValueError, match="mode"):
        pool2d(x, 2, mode="min")
