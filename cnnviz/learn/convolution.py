"""Convolution as a CNN layer computes it: a small kernel slid over an image.

Deep-learning "convolution" is *cross-correlation*: the kernel is laid over the
image as it is, without the 180° flip of the mathematician's convolution. Every
function here follows ``keras.layers.Conv2D`` exactly (no bias), including Keras's
(TensorFlow's) ``"same"`` padding: when the total padding is odd — even kernels,
or a stride that does not divide the size — the extra row/column of zeros goes at
the bottom/right.

Shapes: images are ``(H, W)`` or ``(H, W, C)`` arrays of any real dtype (pixels
0–255 for pictures); kernels are ``(kh, kw)`` or ``(kh, kw, C)``. Results are
``float32``, as in a Keras model. The work is done by OpenCV's ``filter2D``
(vectorised C++), never by a Python loop over pixels.

This module never imports TensorFlow, so the convolution page opens fast.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

PADDINGS = ("valid", "same")


def _pair(value: int | tuple[int, int], name: str) -> tuple[int, int]:
    pair: tuple[int, ...] = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or any(int(v) != v or v < 1 for v in pair):
        raise ValueError(f"{name} must be a positive whole number (or two of them), not {value!r}.")
    return int(pair[0]), int(pair[1])


def _check_padding(padding: str) -> str:
    padding = str(padding).lower()
    if padding not in PADDINGS:
        raise ValueError(f"padding must be 'valid' or 'same', not {padding!r}.")
    return padding


def output_size(n: int, k: int, stride: int = 1, padding: str = "valid") -> int:
    """Length of a convolution (or pooling) output along one axis, as Keras computes it.

    ``n`` input pixels, window ``k`` pixels, step ``stride`` pixels:

    - ``"valid"`` (no padding): ``floor((n - k) / stride) + 1`` — the window must fit
      inside the image; 0 when it never does.
    - ``"same"``: ``ceil(n / stride)`` — zeros are added so that, with stride 1, the
      output is as large as the input. The kernel size does not matter.

    Examples
    --------
    A 3 × 3 kernel on a 28-pixel-wide image, moved 2 pixels at a time:

    >>> output_size(28, 3, stride=2)
    13
    >>> output_size(28, 3, stride=2, padding="same")
    14
    """
    if stride < 1 or k < 1 or n < 0:
        raise ValueError("sizes and stride must be positive.")
    if _check_padding(padding) == "same":
        return -(-n // stride)
    return max(0, (n - k) // stride + 1)


def same_padding(n: int, k: int, stride: int = 1) -> tuple[int, int]:
    """Zeros Keras adds ``(before, after)`` one axis for ``"same"`` padding.

    Total = ``max((out - 1) * stride + k - n, 0)`` with ``out = ceil(n / stride)``;
    ``before = total // 2`` and the odd one left over goes *after* (bottom/right).

    Examples
    --------
    >>> same_padding(5, 3)
    (1, 1)
    >>> same_padding(6, 3, stride=2)  # the odd zero goes after
    (0, 1)
    """
    out = output_size(n, k, stride, "same")
    total = max((out - 1) * stride + k - n, 0)
    return total // 2, total - total // 2


def padding_amounts(
    shape: tuple[int, int], kernel_shape: tuple[int, int], stride: int | tuple[int, int] = 1, padding: str = "valid"
) -> tuple[tuple[int, int], tuple[int, int]]:
    """``((top, bottom), (left, right))`` zero rows/columns added around an ``(H, W)`` image."""
    (sh, sw) = _pair(stride, "stride")
    if _check_padding(padding) == "valid":
        return (0, 0), (0, 0)
    return same_padding(shape[0], kernel_shape[0], sh), same_padding(shape[1], kernel_shape[1], sw)


def _as_float_image(image: np.ndarray) -> tuple[np.ndarray, bool]:
    """``(float32 image, owned)``; ``owned`` means it is a private copy that may be overwritten."""
    image = np.asarray(image)
    if image.ndim not in (2, 3) or image.size == 0:
        raise ValueError(f"image must be (H, W) or (H, W, C), got shape {image.shape}.")
    # float32 in, float32 out is OpenCV's fast (SIMD) path; uint8 → float32 inside filter2D is ~3× slower.
    if image.dtype == np.float32:
        return image, False
    return image.astype(np.float32), True


def _correlate_valid(
    image: np.ndarray,
    kernel: np.ndarray,
    pads: tuple[tuple[int, int], tuple[int, int]],
    stride: tuple[int, int],
    owned: bool = False,
) -> np.ndarray:
    """Valid cross-correlation of the zero-padded float32 image, sampled every ``stride`` pixels.

    With the anchor at the kernel's top-left corner, ``filter2D`` writes the window
    whose top-left is pixel (i, j) into pixel (i, j): exactly the valid output at
    (i, j). Rows and columns whose window leaves the image are cut off. A private
    (``owned``) image is filtered in place: output (i, j) only needs input pixels at or
    after (i, j), and one large allocation fewer is faster than the filter itself.
    """
    (top, bottom), (left, right) = pads
    ndim = image.ndim  # OpenCV drops a trailing channel axis of 1; put it back at the end
    if top or bottom or left or right:
        image = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=0)
        owned = True
    kh, kw = kernel.shape
    h, w = image.shape[:2]
    if h < kh or w < kw:
        return np.zeros((0, 0) + ((image.shape[2] if image.ndim == 3 else 1),) * (ndim - 2), np.float32)
    if image.ndim == 3 and image.shape[2] > 512:
        # OpenCV arrays hold at most 512 channels (CV_CN_MAX); wider inputs go a channel at a time.
        parts = [
            _correlate_valid(np.ascontiguousarray(image[..., c]), kernel, ((0, 0), (0, 0)), stride, True)
            for c in range(image.shape[2])
        ]
        return np.stack(parts, -1)
    full = cv2.filter2D(image, -1, kernel, dst=image if owned else None, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
    if full.ndim < ndim:
        full = full[..., None]
    # A view, not a copy: copying a fresh multi-megabyte array costs more than the filter itself.
    return full[: h - kh + 1 : stride[0], : w - kw + 1 : stride[1]]


def convolve2d(
    image: np.ndarray, kernel: np.ndarray, stride: int | tuple[int, int] = 1, padding: str = "valid"
) -> np.ndarray:
    """Slide ``kernel`` over ``image`` like ``keras.layers.Conv2D`` (cross-correlation, no bias).

    Parameters
    ----------
    image : (H, W) or (H, W, C) array
        Pixel values (0–255 for a picture) or any feature map.
    kernel : (kh, kw) or (kh, kw, C) array
        A 2-D kernel filters every channel separately (a photo editor's filter: the
        output keeps C channels). A 3-D kernel is one Conv2D filter: each channel's
        slice is applied to its channel and the results are *summed* into one map.
    stride : int or (int, int)
        Step of the kernel in pixels (rows, columns).
    padding : "valid" or "same"
        ``"valid"``: no zeros added, output shrinks by ``k - 1``. ``"same"``: zeros
        added as Keras does (extra one at bottom/right), output ``ceil(n / stride)``.

    Returns
    -------
    float32 array
        ``(H', W')`` for a 2-D image or a 3-D kernel, ``(H', W', C)`` for a 2-D kernel
        on a C-channel image; ``H' = output_size(H, kh, stride, padding)``. It may be a
        (non-contiguous) view of a slightly larger array.

    Examples
    --------
    A vertical-edge kernel finds the step from dark to bright between columns 1 and 2:

    >>> import numpy as np
    >>> image = np.array([[0, 0, 9, 9]] * 3)
    >>> convolve2d(image, np.array([[-1, 0, 1]] * 3))
    array([[27., 27.]], dtype=float32)
    >>> convolve2d(image, np.ones((3, 3)), padding="same").shape
    (3, 4)
    """
    image, owned = _as_float_image(image)
    kernel = np.asarray(kernel, dtype=np.float32)
    strides = _pair(stride, "stride")
    if kernel.ndim == 3:
        channels = 1 if image.ndim == 2 else image.shape[2]
        if kernel.shape[2] != channels:
            raise ValueError(f"a {kernel.shape} kernel needs an image with {kernel.shape[2]} channels, not {channels}.")
        if image.ndim == 2:
            image = image[..., None]
    elif kernel.ndim != 2:
        raise ValueError(f"kernel must be (kh, kw) or (kh, kw, C), got shape {kernel.shape}.")
    if kernel.size == 0:
        raise ValueError("kernel is empty.")
    pads = padding_amounts(image.shape[:2], kernel.shape[:2], strides, padding)

    if kernel.ndim == 2:
        out = _correlate_valid(image, kernel, pads, strides, owned)
        return out[..., 0] if image.ndim == 2 and out.ndim == 3 else out
    # One Conv2D filter: per-channel correlations, summed over channels.
    total: np.ndarray | None = None
    for c in range(kernel.shape[2]):
        channel = np.ascontiguousarray(image[..., c])  # a copy, except for a 1-channel image
        private = owned or not np.shares_memory(channel, image)
        part = _correlate_valid(channel, np.ascontiguousarray(kernel[..., c]), pads, strides, private)
        part = part[..., 0] if part.ndim == 3 else part
        total = part if total is None else total + part
    assert total is not None  # the kernel has at least one channel (checked above)
    return total


class Step(NamedTuple):
    """One output pixel of a convolution, worked out by hand.

    ``patch`` is the part of the (zero-padded) input under the kernel, ``products``
    = ``patch * kernel`` element-wise, ``total`` their sum = the output pixel.
    ``top``/``left`` are the patch's top-left corner in input coordinates (negative
    where it starts in the padding). Shapes: ``patch`` and ``products`` are
    ``(kh, kw)`` for a gray image, ``(kh, kw, C)`` for a colour one; ``total`` is a
    number, or one number per channel for a 2-D kernel on a colour image.
    """

    patch: np.ndarray
    products: np.ndarray
    total: float | np.ndarray
    top: int
    left: int


def step_through(
    image: np.ndarray, kernel: np.ndarray, row: int, col: int, stride: int | tuple[int, int] = 1, padding: str = "valid"
) -> Step:
    """Work out output pixel ``(row, col)`` of :func:`convolve2d` with the same arguments.

    The patch starts at ``(row * stride - pad_top, col * stride - pad_left)`` in the
    input; cells outside the image are the zeros of the padding.
    """
    image = np.asarray(image, dtype=np.float32)
    kernel = np.asarray(kernel, dtype=np.float32)
    (sh, sw) = _pair(stride, "stride")
    kh, kw = kernel.shape[:2]
    h, w = image.shape[:2]
    out_h, out_w = output_size(h, kh, sh, padding), output_size(w, kw, sw, padding)
    if not (0 <= row < out_h and 0 <= col < out_w):
        raise ValueError(f"output pixel ({row}, {col}) is outside the {out_h} × {out_w} output.")
    (top_pad, _), (left_pad, _) = padding_amounts((h, w), (kh, kw), (sh, sw), padding)
    top, left = row * sh - top_pad, col * sw - left_pad

    patch = np.zeros((kh, kw) + image.shape[2:], np.float32)
    r0, r1 = max(top, 0), min(top + kh, h)
    c0, c1 = max(left, 0), min(left + kw, w)
    patch[r0 - top : r1 - top, c0 - left : c1 - left] = image[r0:r1, c0:c1]

    if kernel.ndim == 3 and patch.ndim == 2:
        patch = patch[..., None]
    weights = kernel if kernel.ndim == 3 or patch.ndim == 2 else kernel[..., None]
    products = patch * weights
    if kernel.ndim == 3 or patch.ndim == 2:
        total: float | np.ndarray = float(products.sum(dtype=np.float64))
    else:
        total = products.sum(axis=(0, 1), dtype=np.float64).astype(np.float32)
    return Step(patch, products, total, top, left)


def relu(x: np.ndarray) -> np.ndarray:
    """``max(0, x)`` element-wise: what a ReLU layer does to a feature map."""
    return np.maximum(x, 0, dtype=np.float32)


def flip_kernel(kernel: np.ndarray) -> np.ndarray:
    """Rotate a kernel by 180° (rows and columns reversed), channel slices kept.

    Textbook convolution = cross-correlation with the flipped kernel. For symmetric
    kernels (blur, Laplacian) nothing changes; Sobel and emboss change sign/direction.
    """
    return np.ascontiguousarray(np.asarray(kernel)[::-1, ::-1])


def to_gray(image: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` RGB → ``(H, W, 1)`` float32 luminance (ITU-R BT.601, as in Pillow's "L")."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 2:
        return image[..., None]
    if image.shape[2] == 1:
        return image
    return (image[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]


def feature_map_display(feature_map: np.ndarray) -> tuple[np.ndarray, str]:
    """Turn a feature map into a uint8 picture and say what its greys mean.

    One scale for the whole map (all channels together, so colours stay comparable):

    - no negative values: black = 0, white = the largest value;
    - with negative values: mid-grey = 0, white = +m, black = −m, with m the largest
      absolute value — so positive and negative responses look equally strong.

    Returns ``(uint8 array of the same shape, one-sentence legend)``.
    """
    fmap = np.asarray(feature_map, dtype=np.float32)
    if fmap.size == 0:
        return fmap.astype(np.uint8), "empty"
    low, high = float(fmap.min()), float(fmap.max())
    if low >= 0:
        scale = high if high > 0 else 1.0
        picture = fmap * (255.0 / scale)
        legend = f"black = 0, white = {_fmt(high)}"
    else:
        m = max(abs(low), abs(high))
        picture = 127.5 + fmap * (127.5 / m)
        legend = f"grey = 0, white = +{_fmt(m)}, black = −{_fmt(m)}"
    return np.clip(np.rint(picture), 0, 255).astype(np.uint8), legend


def _fmt(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


def magnify(image: np.ndarray, factor: int) -> np.ndarray:
    """Enlarge by whole pixels (nearest neighbour) so each pixel is a crisp square on a projector."""
    factor = max(1, int(factor))
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def outline(
    image: np.ndarray,
    top: int,
    left: int,
    height: int,
    width: int,
    *,
    factor: int = 1,
    color: tuple[int, int, int] = (230, 40, 40),
    thickness: int = 2,
) -> np.ndarray:
    """A copy of an RGB (or gray) uint8 picture with a rectangle around pixels
    ``[top, top + height) × [left, left + width)`` of the *unmagnified* image.

    ``factor`` is the magnification already applied to ``image``. Parts of the rectangle
    in the padding are clipped to the picture's edge.
    """
    picture = np.ascontiguousarray(
        image
        if image.ndim == 3 and image.shape[2] == 3
        else np.repeat(image.reshape(image.shape[:2] + (1,)), 3, axis=2)
    )
    picture = picture.copy()
    y0, x0 = top * factor, left * factor
    y1, x1 = (top + height) * factor - 1, (left + width) * factor - 1
    h, w = picture.shape[:2]
    y0, x0 = min(max(y0, 0), h - 1), min(max(x0, 0), w - 1)
    y1, x1 = min(max(y1, 0), h - 1), min(max(x1, 0), w - 1)
    cv2.rectangle(picture, (x0, y0), (x1, y1), tuple(int(c) for c in color), thickness)
    return picture
