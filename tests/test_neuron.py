"""cnnviz.learn.neuron against Keras: every number the neuron page teaches must match the framework."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

from cnnviz.learn import neuron
from cnnviz.charts import neuron as charts

keras = pytest.importorskip("keras")

KERAS_NAMES = ["linear", "sigmoid", "tanh", "relu", "leaky_relu"]
XOR4 = (np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64), np.array([0, 1, 1, 0]))


def random_z(seed: int) -> np.ndarray:
    """Weighted sums of mixed sizes, both signs, with exact zeros and a few large values."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 4.0, size=(6, 17))
    z[0, :3] = [0.0, -0.0, 50.0]
    z[1, :2] = [-60.0, 1e-9]
    return z


# Inputs are float64 end to end, so the comparison is about the formula; Keras still rounds some
# constants to float32 (leaky_relu's slope 0.2 becomes 0.2000000030), hence rtol 1e-7, not 1e-15.
RTOL = 1e-7


def keras_apply(fn, z: np.ndarray, **kwargs) -> np.ndarray:
    return keras.ops.convert_to_numpy(fn(keras.ops.convert_to_tensor(z, dtype="float64"), **kwargs))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", KERAS_NAMES)
def test_activate_equals_keras_activations(name, seed):
    z = random_z(seed)
    # Compare with Keras's own default for leaky_relu (negative_slope=0.2), passing ours explicitly.
    ours = neuron.activate(z, name, alpha=0.2)
    theirs = keras_apply(getattr(keras.activations, name), z)
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=1e-15)
    assert ours.shape == z.shape


def test_leaky_relu_slope_conventions_are_explicit():
    """Our default alpha=0.3 is the LeakyReLU *layer*'s default; the *function* uses 0.2."""
    assert inspect.signature(keras.activations.leaky_relu).parameters["negative_slope"].default == 0.2
    z = random_z(3)
    layer = keras.layers.LeakyReLU(dtype="float64")
    assert layer.negative_slope == pytest.approx(0.3)
    np.testing.assert_allclose(neuron.activate(z, "leaky_relu"), keras.ops.convert_to_numpy(layer(z)), rtol=RTOL)
    np.testing.assert_allclose(
        neuron.activate(z, "leaky_relu", alpha=0.05),
        keras_apply(keras.activations.leaky_relu, z, negative_slope=0.05),
        rtol=RTOL,
    )
    assert neuron.activate(-2.0, "leaky_relu") == pytest.approx(-0.6)


def test_step_is_a_threshold_computed_by_hand():
    z = np.array([-3.0, -0.5, 0.0, 0.49, 0.5, 0.51, 7.0])
    np.testing.assert_array_equal(neuron.activate(z, "step"), [0, 0, 1, 1, 1, 1, 1])
    np.testing.assert_array_equal(neuron.activate(z, "step", threshold=0.5), [0, 0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(neuron.activate(z, "step", threshold=-1.0), [0, 1, 1, 1, 1, 1, 1])


def test_sigmoid_does_not_overflow_and_unknown_names_fail():
    with np.errstate(over="raise"):
        out = neuron.activate(np.array([-1000.0, 1000.0]), "sigmoid")
    np.testing.assert_array_equal(out, [0.0, 1.0])
    with pytest.raises(ValueError, match="softplus"):
        neuron.activate(1.0, "softplus")


@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0, 2.0, 3.7])
def test_softmax_equals_keras_softmax_of_logits_over_temperature(temperature):
    logits = np.random.default_rng(int(temperature * 10)).normal(0.0, 3.0, size=(5, 7))
    ours = neuron.softmax(logits, temperature)
    theirs = keras_apply(keras.activations.softmax, logits / temperature)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ours.sum(axis=-1), 1.0, rtol=1e-12)
    # Temperature never changes the order of the classes.
    np.testing.assert_array_equal(np.argsort(ours, axis=-1), np.argsort(logits, axis=-1))


def test_softmax_is_stable_and_temperature_behaves():
    np.testing.assert_allclose(neuron.softmax([1000.0, 1001.0]), neuron.softmax([0.0, 1.0]), rtol=1e-12)
    e = math.exp(1.0)
    np.testing.assert_allclose(neuron.softmax([0.0, 1.0]), [1 / (1 + e), e / (1 + e)], rtol=1e-12)
    assert np.ptp(neuron.softmax([2.0, 1.0, -1.0], 100.0)) < 0.01  # hot: nearly uniform
    assert neuron.softmax([2.0, 1.0, -1.0], 0.05)[0] > 0.999  # cold: winner takes all
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="temperature"):
            neuron.softmax([1.0, 2.0], bad)


def test_weighted_sum_and_output_by_hand():
    assert neuron.weighted_sum([3.0, 2.0], [1.5, 1.5], 0.0) == pytest.approx(7.5)
    assert neuron.weighted_sum([3.0, 2.0], [2.0, 0.5], 0.5) == pytest.approx(7.5)
    z, y = neuron.neuron_output([2.0, -3.0], [-1.5, 0.5], 1.0, "relu")
    assert (z, y) == (pytest.approx(-3.5), 0.0)
    z, y = neuron.neuron_output([2.0, -3.0], [-1.5, 0.5], 1.0, "sigmoid")
    assert y == pytest.approx(1 / (1 + math.exp(3.5)))


@pytest.mark.parametrize("name", KERAS_NAMES)
def test_neuron_output_equals_a_keras_dense_unit(name):
    """One neuron is a Dense layer with one unit: same weights, same outputs."""
    rng = np.random.default_rng(7)
    x = rng.normal(0.0, 3.0, size=(50, 2))
    w, b = rng.normal(size=2), float(rng.normal())
    dense = keras.layers.Dense(1, activation=name, dtype="float64")
    dense.build((None, 2))
    dense.set_weights([w.reshape(2, 1), np.array([b])])
    _, ours = neuron.neuron_output(x, w, b, name, alpha=0.2)
    np.testing.assert_allclose(ours, keras.ops.convert_to_numpy(dense(x))[:, 0], rtol=RTOL, atol=1e-15)


def test_decision_grid_orientation():
    xs, ys, out = neuron.decision_grid([1.0, -2.0], 0.5, "tanh", extent=4.0, resolution=9)
    assert out.shape == (9, 9) and xs[0] == -4.0 and ys[-1] == 4.0
    for i, j in [(0, 0), (0, 8), (8, 0), (3, 6)]:
        assert out[i, j] == pytest.approx(math.tanh(xs[j] - 2 * ys[i] + 0.5))


def best_line_accuracy(points, labels, n_lines: int = 50_000) -> float:
    """Best accuracy of many random straight lines (either side may be class 1)."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(n_lines, 2))
    b = rng.normal(scale=4.0, size=n_lines)
    acc = ((points @ w.T + b > 0) == labels[:, None].astype(bool)).mean(axis=0)
    return float(np.maximum(acc, 1 - acc).max())


def test_one_neuron_cannot_learn_xor_two_layers_can():
    points, labels = XOR4
    assert best_line_accuracy(points, labels) == 0.75  # and 3 of 4 is reachable
    single = neuron.train(points, labels, hidden=None, epochs=3000, learning_rate=1.0)
    assert neuron.accuracy(single, points, labels) <= 0.75
    two = neuron.train(points, labels, hidden=4, epochs=3000, learning_rate=1.0)
    assert neuron.accuracy(two, points, labels) == 1.0
    assert two.losses[-1] < 0.05 < single.losses[-1]


@pytest.mark.parametrize("name", ["xor", "circles"])
def test_toy_data_need_two_layers(name):
    points, labels = neuron.DATASETS[name]()
    assert points.shape == (200, 2) and set(np.unique(labels)) == {0, 1}
    assert abs(labels.mean() - 0.5) < 0.05
    assert best_line_accuracy(points, labels) <= 0.76
    single = neuron.train(points, labels, hidden=None)
    two = neuron.train(points, labels, hidden=4)
    assert neuron.accuracy(single, points, labels) <= 0.76
    assert neuron.accuracy(two, points, labels) >= 0.98
    assert two.losses[-1] < 0.1 * two.losses[0]


def test_training_is_deterministic():
    points, labels = neuron.xor_data(seed=3)
    a = neuron.train(points, labels, hidden=3, epochs=200, seed=5)
    b = neuron.train(points, labels, hidden=3, epochs=200, seed=5)
    c = neuron.train(points, labels, hidden=3, epochs=200, seed=6)
    np.testing.assert_array_equal(a.losses, b.losses)
    np.testing.assert_array_equal(a.w1, b.w1)
    assert not np.array_equal(a.losses, c.losses)
    np.testing.assert_array_equal(neuron.xor_data(seed=3)[0], points)


def test_neuron_fires_on_the_side_of_its_line():
    pts = np.array([[1.0, 1.0], [-1.0, -1.0], [0.0, 0.0]])
    np.testing.assert_array_equal(neuron.neuron_fires(pts, [1.0, 1.0], 0.0, "sigmoid"), [True, False, False])
    np.testing.assert_array_equal(neuron.neuron_fires(pts, [1.0, 1.0], 0.0, "step"), [True, False, True])
    np.testing.assert_array_equal(neuron.neuron_fires(pts, [1.0, 1.0], 0.0, "step", threshold=3.0), [False] * 3)


# --- Charts: the page sends specs unvalidated for speed, so every builder is validated here. -------


def chart_data(chart) -> list[list[dict]]:
    return list(chart.to_dict()["datasets"].values())


@pytest.mark.parametrize("name", neuron.ACTIVATIONS)
def test_activation_curve_is_valid_and_marks_the_current_point(name):
    chart = charts.activation_curve(name, 1.25, threshold=0.5, alpha=0.1)
    rows = [r for data in chart_data(chart) for r in data if "label" in r]
    expected = float(neuron.activate(1.25, name, threshold=0.5, alpha=0.1))
    assert rows and rows[0]["z"] == 1.25 and rows[0]["y"] == pytest.approx(expected)
    # The plotted range grows to keep a far-away point on the chart.
    far = charts.activation_curve(name, 17.0).to_dict()
    assert far["layer"][2]["encoding"]["x"]["scale"]["domain"][1] >= 18.0


def test_other_charts_are_valid_vega_lite():
    xs, ys, out = neuron.decision_grid([1.0, 1.0], 0.0, "relu", extent=5.0, resolution=11)
    points, labels = neuron.xor_data(n=20)
    spec = charts.decision_map(xs, ys, out, points=points, labels=labels, current=(1.0, 2.0), mid=0.0).to_dict()
    sizes = sorted(len(d) for d in spec["datasets"].values())
    assert sizes == [1, 20, 121]
    loss = [
        r
        for d in chart_data(charts.loss_curves({"a": np.linspace(1, 0, 5000), "b": np.linspace(1, 0.5, 10)}))
        for r in d
    ]
    a, b = ([r for r in loss if r["model"] == m] for m in ("a", "b"))
    assert 250 <= len(a) <= 300 and len(b) == 10  # a long history is thinned, a short one kept whole
    assert (a[0]["step"], a[0]["loss"], b[-1]["step"], b[-1]["loss"]) == (0, 1.0, 9, 0.5)
    bars = charts.softmax_bars(["a", "b"], [1.0, 0.0], neuron.softmax([1.0, 0.0])).to_dict()
    texts = [r["text"] for d in bars["datasets"].values() for r in d]
    assert texts == ["73.1%  (logit 1)", "26.9%  (logit 0)"]
    history = charts.error_history([5.0, 2.0, 0.0], 7.5)
    zero, errors = chart_data(history)
    assert zero == [{"e": 0.0}]
    assert [(r["attempt"], r["error"]) for r in errors] == [(1, 5.0), (2, 2.0), (3, 0.0)]
    assert history.to_dict()["layer"][1]["encoding"]["y"]["title"] == "error = 7.5 − output"
