"""One artificial neuron, its activation functions, softmax, and a tiny two-layer network.

Everything here is plain numpy (no TensorFlow), so the neuron page opens instantly; the
tests check every formula against ``keras.activations``.

A neuron computes a *weighted sum* ``z = w · x + b`` of its inputs and passes it through an
*activation function* ``y = f(z)``. One neuron draws a single straight line through its input
plane, so it cannot separate XOR or a ring of points; two layers of neurons can.

Conventions
-----------
- ``step`` fires (returns 1.0) when ``z >= threshold``, else 0.0.
- ``leaky_relu`` returns ``z`` for ``z >= 0`` and ``alpha * z`` below. Our default ``alpha=0.3``
  is the default of the *layer* ``keras.layers.LeakyReLU(negative_slope=0.3)``; the *function*
  ``keras.activations.leaky_relu`` defaults to ``negative_slope=0.2``. Pass ``alpha`` explicitly
  when you compare.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

ACTIVATIONS: tuple[str, ...] = ("step", "linear", "sigmoid", "tanh", "relu", "leaky_relu")
"""Names accepted by :func:`activate`, in the order a lecture introduces them."""

FORMULAS: dict[str, str] = {
    "step": r"f(z) = 1 \text{ if } z \ge \theta \text{ else } 0",
    "linear": r"f(z) = z",
    "sigmoid": r"f(z) = \dfrac{1}{1 + e^{-z}}",
    "tanh": r"f(z) = \tanh z = \dfrac{e^{z} - e^{-z}}{e^{z} + e^{-z}}",
    "relu": r"f(z) = \max(0, z)",
    "leaky_relu": r"f(z) = z \text{ if } z \ge 0 \text{ else } \alpha z",
}
"""LaTeX for each activation, shown next to its curve (``\\theta`` threshold, ``\\alpha`` slope)."""


def activate(z: ArrayLike, name: str, *, threshold: float = 0.0, alpha: float = 0.3) -> np.ndarray:
    """Apply the activation function ``name`` element-wise to the weighted sum(s) ``z``.

    Parameters
    ----------
    z : array_like
        Weighted sums, any shape. Returned as a float64 array of the same shape.
    name : str
        One of :data:`ACTIVATIONS`.
    threshold : float
        Only for ``"step"``: the neuron fires (1.0) when ``z >= threshold``.
    alpha : float
        Only for ``"leaky_relu"``: the slope for negative ``z`` (0.3, like ``keras.layers.LeakyReLU``).

    Sigmoid is written as ``0.5 * (1 + tanh(z / 2))``, the same function, because it never
    overflows for large negative ``z`` (``exp(-z)`` would).

    Examples
    --------
    >>> activate([-2.0, 0.0, 3.0], "relu")
    array([0., 0., 3.])
    >>> activate([-2.0, 0.0, 3.0], "step")
    array([0., 1., 1.])
    >>> float(activate(0.0, "sigmoid"))
    0.5
    """
    z = np.asarray(z, dtype=np.float64)
    if name == "step":
        return (z >= threshold).astype(np.float64)
    if name == "linear":
        return z.copy()
    if name == "sigmoid":
        return 0.5 * (1.0 + np.tanh(0.5 * z))
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "leaky_relu":
        return np.where(z >= 0, z, alpha * z)
    raise ValueError(f"Unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}.")


def softmax(logits: ArrayLike, temperature: float = 1.0, axis: int = -1) -> np.ndarray:
    """Turn scores (logits) into probabilities that are positive and sum to 1 along ``axis``.

    ``softmax(z, T)_i = exp(z_i / T) / sum_j exp(z_j / T)``. A high temperature ``T`` flattens
    the probabilities towards uniform; a low one sharpens them towards the largest logit.
    The maximum is subtracted before ``exp`` (this changes nothing mathematically) so that
    logits like 1000 do not overflow.

    Examples
    --------
    >>> softmax([1.0, 0.0]).round(3)
    array([0.731, 0.269])
    >>> softmax([1.0, 0.0], temperature=100).round(3)  # hot: nearly uniform
    array([0.502, 0.498])
    >>> softmax([1000.0, 0.0])  # no overflow
    array([1., 0.])
    """
    if not temperature > 0:
        raise ValueError("The temperature must be a positive number.")
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - np.max(z, axis=axis, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=axis, keepdims=True)


def weighted_sum(inputs: ArrayLike, weights: ArrayLike, bias: float) -> float | np.ndarray:
    """``z = sum_i w_i * x_i + b``: what a neuron computes before its activation.

    ``inputs`` has shape ``(n,)`` for one input or ``(m, n)`` for ``m`` inputs at once;
    ``weights`` has shape ``(n,)``. Returns a float, or shape ``(m,)``.

    Examples
    --------
    The page's first exercise: make inputs 3 and 2 give 7.5.

    >>> weighted_sum([3, 2], [1.5, 1.25], 0.5)
    7.5
    >>> weighted_sum([[3, 2], [1, 0]], [1.5, 1.25], 0.5)  # two inputs at once
    array([7.5, 2. ])
    """
    z = np.asarray(inputs, dtype=np.float64) @ np.asarray(weights, dtype=np.float64) + bias
    return float(z) if np.ndim(z) == 0 else z


def neuron_output(
    inputs: ArrayLike,
    weights: ArrayLike,
    bias: float,
    activation: str = "sigmoid",
    *,
    threshold: float = 0.0,
    alpha: float = 0.3,
) -> tuple[float | np.ndarray, float | np.ndarray]:
    """One neuron's weighted sum ``z`` and its output ``y = activation(z)``, returned as ``(z, y)``.

    Shapes as in :func:`weighted_sum`; ``threshold``/``alpha`` as in :func:`activate`.

    Examples
    --------
    Exactly on the boundary (``z = 0``), ReLU stays silent but the step function fires:

    >>> neuron_output([3, 2], [1.5, 1.25], -7.0, "relu")
    (0.0, 0.0)
    >>> neuron_output([3, 2], [1.5, 1.25], -7.0, "step")
    (0.0, 1.0)
    """
    z = weighted_sum(inputs, weights, bias)
    y = activate(z, activation, threshold=threshold, alpha=alpha)
    return z, (float(y) if np.ndim(y) == 0 else y)


def neuron_fires(
    points: ArrayLike, weights: ArrayLike, bias: float, activation: str = "sigmoid", *, threshold: float = 0.0
) -> np.ndarray:
    """Which side of its line each point is on: True where the neuron says "class 1".

    ``points`` has shape ``(m, 2)``. The neuron's decision is ``z >= threshold`` for the step
    function and ``z > 0`` for the others (where sigmoid passes 0.5 and ReLU starts to rise), so
    the boundary is always the straight line ``w1 x1 + w2 x2 + b = 0`` (or ``= threshold``).
    """
    z = weighted_sum(points, weights, bias)
    return np.asarray(z >= threshold if activation == "step" else z > 0)


# --- The 2-D input plane -------------------------------------------------------------------


def input_plane(extent: float = 5.0, resolution: int = 41) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A square grid over ``[-extent, extent]²``, for drawing decisions as a heat map.

    Returns ``(xs, ys, points)``: ``xs`` and ``ys`` of shape ``(resolution,)`` and the grid
    points of shape ``(resolution**2, 2)``, row by row (``ys`` outer, ``xs`` inner), so
    ``values.reshape(resolution, resolution)[i, j]`` belongs to ``(xs[j], ys[i])``.
    """
    xs = np.linspace(-extent, extent, resolution)
    ys = np.linspace(-extent, extent, resolution)
    gx, gy = np.meshgrid(xs, ys)
    return xs, ys, np.column_stack([gx.ravel(), gy.ravel()])


def decision_grid(
    weights: ArrayLike,
    bias: float,
    activation: str = "sigmoid",
    *,
    extent: float = 5.0,
    resolution: int = 41,
    threshold: float = 0.0,
    alpha: float = 0.3,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One two-input neuron's output over the input plane (TensorFlow Playground's background).

    Returns ``(xs, ys, out)`` with ``out`` of shape ``(resolution, resolution)``; ``out[i, j]``
    is the output for the input ``(x1, x2) = (xs[j], ys[i])``. Whatever the activation, the
    colours change only across one direction: the neuron sees the plane through one line.
    """
    xs, ys, points = input_plane(extent, resolution)
    _, out = neuron_output(points, weights, bias, activation, threshold=threshold, alpha=alpha)
    return xs, ys, np.asarray(out).reshape(resolution, resolution)


# --- Toy data sets (TensorFlow Playground style) -----------------------------------------------


def xor_data(n: int = 200, *, noise: float = 0.5, scale: float = 3.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Four clouds at the corners ``(±scale, ±scale)``; label 1 where ``x1`` and ``x2`` have the same sign.

    Returns ``(points (n, 2) float64, labels (n,) int 0/1)``. Clouds are spread with Gaussian
    ``noise`` (same units as the inputs). No straight line puts both 1-clouds on one side and
    both 0-clouds on the other: that is XOR.
    """
    rng = np.random.default_rng(seed)
    corners = np.array([[1, 1], [-1, -1], [1, -1], [-1, 1]], dtype=np.float64) * scale
    which = np.arange(n) % 4
    points = corners[which] + rng.normal(0.0, noise, size=(n, 2))
    labels = (which < 2).astype(np.int64)
    return points, labels


def circles_data(
    n: int = 200, *, noise: float = 0.3, inner: float = 1.5, outer: float = 4.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A disc of class 1 (radius ``inner``) inside a ring of class 0 (radius ``outer``).

    Returns ``(points (n, 2), labels (n,) int 0/1)``. Any straight line leaves part of the
    ring on the disc's side, so one neuron must misclassify many points.
    """
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 2 == 0).astype(np.int64)
    radius = np.where(labels == 1, rng.uniform(0.0, inner, n), outer + rng.normal(0.0, noise, n))
    angle = rng.uniform(0.0, 2 * np.pi, n)
    points = np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])
    points += rng.normal(0.0, noise, size=points.shape) * (labels == 1)[:, None]
    return points, labels


DATASETS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {"xor": xor_data, "circles": circles_data}
"""Toy problems by name, for the page's selector."""


# --- Learning: one neuron vs. two layers -------------------------------------------------------


class Network(NamedTuple):
    """Weights of a trained network and how its loss fell.

    ``hidden`` is ``None`` for a single sigmoid neuron (``w1``/``b1`` unused). Otherwise
    ``w1`` has shape ``(2, hidden)``, ``b1`` ``(hidden,)``, ``w2`` ``(hidden,)``; ``b2`` is a float.
    ``losses[k]`` is the mean binary cross-entropy (nats) before update ``k``.
    """

    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: float
    hidden: int | None
    losses: np.ndarray


def predict(net: Network, points: ArrayLike) -> np.ndarray:
    """Probability of class 1 for each point, shape ``(m,)``, from ``points`` of shape ``(m, 2)``.

    A single neuron: ``sigmoid(points @ w2 + b2)``. Two layers: a hidden layer of ``tanh``
    neurons, each drawing its own line, then one sigmoid neuron that combines their outputs.
    """
    x = np.asarray(points, dtype=np.float64)
    h = x if net.hidden is None else np.tanh(x @ net.w1 + net.b1)
    return activate(h @ net.w2 + net.b2, "sigmoid")


def train(
    points: ArrayLike,
    labels: ArrayLike,
    *,
    hidden: int | None = 4,
    epochs: int = 1500,
    learning_rate: float = 0.5,
    seed: int = 0,
) -> Network:
    """Fit one sigmoid neuron (``hidden=None``) or a 2-``hidden``-1 network by gradient descent.

    Full-batch gradient descent on the mean binary cross-entropy, with the gradients written
    out by hand (backpropagation in four lines). Inputs are used as given (keep them within
    a few units of 0). Deterministic: the same ``seed`` gives the same weights.
    """
    x = np.asarray(points, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    m = len(y)
    rng = np.random.default_rng(seed)
    n_in = x.shape[1] if hidden is None else hidden
    w1 = rng.normal(0.0, 1.0 / np.sqrt(x.shape[1]), size=(x.shape[1], hidden or 0))
    b1 = np.zeros(hidden or 0)
    w2 = rng.normal(0.0, 1.0 / np.sqrt(n_in), size=n_in)
    b2 = 0.0
    losses = np.empty(epochs)
    eps = 1e-12
    for k in range(epochs):
        h = x if hidden is None else np.tanh(x @ w1 + b1)
        p = activate(h @ w2 + b2, "sigmoid")
        losses[k] = -np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps))
        dz2 = (p - y) / m  # d loss / d output-neuron's weighted sum
        grad_w2, grad_b2 = h.T @ dz2, dz2.sum()
        if hidden is not None:
            dz1 = np.outer(dz2, w2) * (1 - h**2)  # back through tanh
            w1 -= learning_rate * (x.T @ dz1)
            b1 -= learning_rate * dz1.sum(axis=0)
        w2 -= learning_rate * grad_w2
        b2 -= learning_rate * grad_b2
    return Network(w1, b1, w2, float(b2), hidden, losses)


def accuracy(net: Network, points: ArrayLike, labels: ArrayLike) -> float:
    """Fraction (0–1) of points whose predicted class (probability ≥ 0.5) equals the label."""
    return float(np.mean((predict(net, points) >= 0.5) == np.asarray(labels).astype(bool)))


def network_grid(
    net: Network, *, extent: float = 5.0, resolution: int = 41
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A trained network's class-1 probability over the input plane; shapes as :func:`decision_grid`."""
    xs, ys, points = input_plane(extent, resolution)
    return xs, ys, predict(net, points).reshape(resolution, resolution)
