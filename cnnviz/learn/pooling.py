"""Pooling: shrink a feature map by summarising each small window with one number.

``pool2d`` equals ``keras.layers.MaxPooling2D`` / ``AveragePooling2D``: windows of
``size × size`` pixels, moved ``stride`` pixels at a time (default: ``size``, so
windows do not overlap). With ``"same"`` padding, windows that hang over the edge
only look at real pixels: max pooling ignores the padding and average pooling divides
by the number of *real* cells under the window, not by ``size²`` (as Keras does).

Vectorised numpy (a strided window view), no Python loop over pixels, no TensorFlow.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from cnnviz.learn.convolution import _pair, output_size, padding_amounts

MODES = ("max", "avg")


def pool2d(
    x: np.ndarray,
    size: int | tuple[int, int] = 2,
    stride: int | tuple[int, int] | None = None,
    mode: str = "max",
    padding: str = "valid",
) -> np.ndarray:
    """Max or average pooling of an ``(H, W)`` or ``(H, W, C)`` map, channel by channel.

    Parameters
    ----------
    x : (H, W) or (H, W, C) array
        A feature map (any real dtype).
    size : int or (int, int)
        Window height and width in pixels.
    stride : int, (int, int) or None
        Step between windows; ``None`` means ``size`` (Keras's default).
    mode : "max" or "avg"
        Keep the strongest response in each window, or its mean.
    padding : "valid" or "same"
        ``"valid"``: only windows fully inside. ``"same"``: ``ceil(n / stride)`` windows,
        the extra ones at the bottom/right edge see only the real pixels they cover.

    Returns
    -------
    float32 array of shape ``(H', W'[, C])`` with ``H' = output_size(H, size, stride, padding)``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1, 2, 0, 0],
    ...               [3, 4, 0, 8],
    ...               [0, 0, 5, 5],
    ...               [0, 1, 5, 5]])
    >>> pool2d(x, 2)
    array([[4., 8.],
           [1., 5.]], dtype=float32)
    >>> pool2d(x, 2, mode="avg")
    array([[2.5 , 2.  ],
           [0.25, 5.  ]], dtype=float32)
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim not in (2, 3):
        raise ValueError(f"x must be (H, W) or (H, W, C), got shape {x.shape}.")
    if mode not in MODES:
        raise ValueError(f"mode must be 'max' or 'avg', not {mode!r}.")
    ph, pw = _pair(size, "size")
    sh, sw = _pair(size if stride is None else stride, "stride")
    h, w = x.shape[:2]
    out_h, out_w = output_size(h, ph, sh, padding), output_size(w, pw, sw, padding)
    if out_h == 0 or out_w == 0:
        return np.zeros((out_h, out_w) + x.shape[2:], np.float32)

    (top, bottom), (left, right) = padding_amounts((h, w), (ph, pw), (sh, sw), padding)
    pad = ((top, bottom), (left, right)) + ((0, 0),) * (x.ndim - 2)
    fill = -np.inf if mode == "max" else 0.0
    padded = np.pad(x, pad, constant_values=fill)
    # windows[i, j, ..., a, b] = padded[i*sh + a, j*sw + b, ...]
    windows = sliding_window_view(padded, (ph, pw), axis=(0, 1))[::sh, ::sw][:out_h, :out_w]
    if mode == "max":
        return windows.max(axis=(-2, -1)).astype(np.float32)
    sums = windows.sum(axis=(-2, -1), dtype=np.float64)
    real = np.pad(np.ones((h, w), np.float32), pad[:2])
    counts = sliding_window_view(real, (ph, pw))[::sh, ::sw][:out_h, :out_w].sum(axis=(-2, -1))
    if x.ndim == 3:
        counts = counts[..., None]
    return (sums / counts).astype(np.float32)
