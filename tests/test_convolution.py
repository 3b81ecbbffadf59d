"""cnnviz.learn.convolution equals keras.layers.Conv2D (weights set, no bias) to float32 precision."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from cnnviz.learn.convolution import (  # noqa: E402
    convolve2d,
    feature_map_display,
    flip_kernel,
    output_size,
    same_padding,
    step_through,
)

IMAGE_SHAPES = [(11, 14), (16, 9)]  # odd and even heights and widths
KERNEL_SIZES = [(2, 2), (3, 3), (4, 3), (5, 5)]  # odd and even kernels, one not square
CASES = list(itertools.product([1, 2, 3], ["valid", "same"], [1, 3], IMAGE_SHAPES, KERNEL_SIZES))


def keras_conv(image: np.ndarray, filters: np.ndarray, stride: int, padding: str) -> np.ndarray:
    """Run a real Conv2D layer; ``filters`` is Keras's (kh, kw, C_in, C_out) weight."""
    layer = keras.layers.Conv2D(filters.shape[-1], filters.shape[:2], strides=stride, padding=padding, use_bias=False)
    layer.build((1,) + image.shape)
    layer.set_weights([filters.astype(np.float32)])
    return keras.ops.convert_to_numpy(layer(image[None].astype(np.float32)))[0]


def assert_close(ours: np.ndarray, theirs: np.ndarray) -> None:
    assert ours.dtype == np.float32
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("stride,padding,channels,shape,ksize", CASES)
def test_one_conv2d_filter_summed_over_channels(stride, padding, channels, shape, ksize):
    rng = np.random.default_rng(hash((stride, padding, channels, shape, ksize)) % 2**32)
    image = rng.integers(0, 256, shape + (channels,)).astype(np.float32)
    kernel = rng.normal(size=ksize + (channels,)).astype(np.float32)
    expected = keras_conv(image, kernel[..., None], stride, padding)[..., 0]
    assert_close(convolve2d(image, kernel, stride=stride, padding=padding), expected)


@pytest.mark.parametrize("stride,padding,channels,shape,ksize", CASES)
def test_2d_kernel_filters_each_channel_separately(stride, padding, channels, shape, ksize):
    rng = np.random.default_rng(1 + hash((stride, padding, channels, shape, ksize)) % 2**32)
    image = rng.integers(0, 256, shape + (channels,), dtype=np.uint8)  # uint8, as pictures arrive
    kernel = rng.normal(size=ksize).astype(np.float32)
    # Per-channel filtering = a Conv2D whose C×C weight matrix is diagonal.
    filters = np.zeros(ksize + (channels, channels), np.float32)
    for c in range(channels):
        filters[..., c, c] = kernel
    expected = keras_conv(image.astype(np.float32), filters, stride, padding)
    assert_close(convolve2d(image, kernel, stride=stride, padding=padding), expected)
    # A 2-D gray image gives a 2-D map.
    gray = convolve2d(image[..., 0], kernel, stride=stride, padding=padding)
    assert_close(gray, expected[..., 0])


@pytest.mark.parametrize("stride,padding,channels,shape,ksize", CASES)
def test_output_size_matches_keras_output_shape(stride, padding, channels, shape, ksize):
    layer = keras.layers.Conv2D(1, ksize, strides=stride, padding=padding)
    out_shape = layer.compute_output_shape((1,) + shape + (channels,))
    assert (
        output_size(shape[0], ksize[0], stride, padding),
        output_size(shape[1], ksize[1], stride, padding),
    ) == tuple(out_shape[1:3])


def test_output_size_by_hand():
    assert output_size(128, 3, 1, "valid") == 126
    assert output_size(128, 3, 2, "valid") == 63  # floor(125 / 2) + 1
    assert output_size(128, 5, 3, "same") == 43  # ceil(128 / 3)
    assert output_size(2, 3, 1, "valid") == 0  # kernel never fits
    assert same_padding(10, 4, 1) == (1, 2)  # even kernel: the extra zero goes after (bottom/right)
    assert same_padding(10, 3, 2) == (0, 1)  # stride 2: out 5, total (5-1)*2+3-10 = 1
    assert same_padding(9, 3, 2) == (1, 1)


@pytest.mark.parametrize("stride,padding,channels,shape,ksize", CASES[::5])
def test_step_through_sum_is_the_output_pixel(stride, padding, channels, shape, ksize):
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, shape + (channels,)).astype(np.float32)
    k3 = rng.normal(size=ksize + (channels,)).astype(np.float32)
    k2 = k3[..., 0]
    full3 = convolve2d(image, k3, stride=stride, padding=padding)
    full2 = convolve2d(image, k2, stride=stride, padding=padding)
    for row, col in [(0, 0), (full3.shape[0] - 1, full3.shape[1] - 1), (full3.shape[0] // 2, full3.shape[1] // 3)]:
        step = step_through(image, k3, row, col, stride=stride, padding=padding)
        assert step.patch.shape == ksize + (channels,)
        np.testing.assert_allclose(step.products, step.patch * k3, rtol=1e-6)
        np.testing.assert_allclose(step.total, full3[row, col], rtol=1e-5, atol=1e-3)
        step2 = step_through(image, k2, row, col, stride=stride, padding=padding)
        np.testing.assert_allclose(step2.total, full2[row, col], rtol=1e-5, atol=1e-3)


def test_step_through_patch_position_and_padding_zeros():
    image = np.arange(1, 26, dtype=np.float32).reshape(5, 5)
    kernel = np.ones((3, 3), np.float32)
    step = step_through(image, kernel, 0, 0, padding="same")
    assert (step.top, step.left) == (-1, -1)
    np.testing.assert_array_equal(step.patch, [[0, 0, 0], [0, 1, 2], [0, 6, 7]])
    assert step.total == 16
    step = step_through(image, kernel, 1, 1, stride=2)  # valid, stride 2: patch starts at (2, 2)
    assert (step.top, step.left) == (2, 2)
    assert step.total == image[2:5, 2:5].sum()
    with pytest.raises(ValueError):
        step_through(image, kernel, 3, 0)  # valid output is only 3 × 3


def test_cross_correlation_not_flipped():
    """A Sobel x kernel is positive where the picture gets brighter to the right (no flip)."""
    ramp = np.tile(np.arange(8, dtype=np.float32), (8, 1))
    sobel_x = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32)
    assert (convolve2d(ramp, sobel_x) == 8).all()
    assert (convolve2d(ramp, flip_kernel(sobel_x)) == -8).all()  # textbook convolution flips the sign


def test_feature_map_display_says_what_grey_means():
    picture, legend = feature_map_display(np.array([[-4.0, 0.0, 2.0]]))
    assert picture.tolist() == [[0, 128, 191]]
    assert legend == "grey = 0, white = +4, black = −4"
    picture, legend = feature_map_display(np.array([[0.0, 300.0]]))
    assert picture.tolist() == [[0, 255]] and legend == "black = 0, white = 300"


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
@pytest.mark.parametrize("channels", [1, 3])
def test_input_is_never_modified(dtype, channels):
    """convolve2d filters private copies in place; the caller's array must stay as it was."""
    image = np.random.default_rng(3).integers(0, 256, (9, 10, channels)).astype(dtype)
    before = image.copy()
    for kernel in (np.ones((3, 3)), np.ones((3, 3, channels))):
        for padding in ("valid", "same"):
            convolve2d(image, kernel, padding=padding)
            convolve2d(image[..., 0], kernel[..., 0] if kernel.ndim == 3 else kernel, padding=padding)
    np.testing.assert_array_equal(image, before)


def test_bad_arguments_say_what_is_wrong():
    with pytest.raises(ValueError, match="padding"):
        convolve2d(np.zeros((4, 4)), np.ones((3, 3)), padding="full")
    with pytest.raises(ValueError, match="channels"):
        convolve2d(np.zeros((4, 4, 3)), np.ones((3, 3, 2)))
    with pytest.raises(ValueError, match="stride"):
        convolve2d(np.zeros((4, 4)), np.ones((3, 3)), stride=0)
