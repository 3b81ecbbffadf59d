"""Page 1 · Neuron and activation.

Lecture outline: a weighted sum, by hand (3 and 2 → 7.5); add an activation; what one neuron
decides over a plane and why it fails on XOR; two layers succeed; softmax turns scores into
probabilities. Pure numpy: this page never imports TensorFlow.

Each section is a keyed ``st.fragment``, so moving a slider reruns only its own section.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from ui.router import ensure_app_shell

ensure_app_shell()  # before heavy imports: a bookmark opened first on a fresh server goes through app.py

from cnnviz.learn import neuron
from cnnviz.charts import neuron as charts
from cnnviz.charts import style
from ui import animate, present, settings

ACTIVATION_NAMES = {
    "step": "step (threshold)",
    "linear": "linear (none)",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "relu": "ReLU",
    "leaky_relu": "leaky ReLU",
}
DATASET_NAMES = {"xor": "XOR (four clouds)", "circles": "circles (disc in a ring)"}
SOFTMAX_CLASSES = ["portrait", "landscape", "still life", "abstract"]
TARGET_INPUTS, TARGET = (3.0, 2.0), 7.5
OUTPUT_RANGE = {"sigmoid": (0.0, 1.0), "step": (0.0, 1.0), "tanh": (-1.0, 1.0)}  # others are unbounded
EXTENT = 5.0  # the input plane shown is [-5, 5]², the sliders' range
GRID = 31  # heat-map cells per side: smooth enough, small enough to redraw at every slider step

# Settings a lecturer wants to reopen live in the URL (ui.settings): name -> default.
DEFAULTS = {
    "x1": 3.0,
    "x2": 2.0,
    "w1": 0.5,
    "w2": 1.0,
    "bias": -1.0,
    "threshold": 0.0,
    "alpha": 0.3,
    "temperature": 1.0,
    **{f"logit{i + 1}": v for i, v in enumerate([2.0, 1.0, 0.1, -1.0])},
}


def slider(label: str, key: str, lo: float, hi: float, step: float = 0.1, **kwargs):
    """A slider kept in the URL under its own name (``?w1=0.8``)."""
    return settings.slider(label, lo, hi, key=key, default=DEFAULTS[key], url=key, step=step, **kwargs)


def number(label: str, key: str, default: float):
    """A weight typed by hand in the exercise, kept in the URL too (``?ex_w1=2``)."""
    return settings.number_input(label, -10.0, 10.0, key=key, default=default, url=key, step=0.1, format="%.2f")


@st.cache_data(show_spinner=False, max_entries=64)
def trained_maps(dataset: str, hidden: int, font_scale: float = 1.0):
    """Train one neuron and a two-layer network on the same toy data; return their charts' specs.

    Returns ``(one_neuron_map, two_layer_map, loss_curves, accuracy_one, accuracy_two)``.
    Deterministic and the same for every visitor, so cached per (data set, hidden neurons):
    each setting trains once (about 0.1 s), then answers instantly.
    """
    points, labels = neuron.DATASETS[dataset]()
    single = neuron.train(points, labels, hidden=None)
    double = neuron.train(points, labels, hidden=hidden)
    acc1, acc2 = neuron.accuracy(single, points, labels), neuron.accuracy(double, points, labels)
    map1 = charts.network_map(
        single, points, labels, title=f"One neuron: {acc1:.0%} correct", extent=EXTENT, resolution=GRID
    )
    map2 = charts.network_map(
        double,
        points,
        labels,
        title=f"Two layers ({hidden} + 1 neurons): {acc2:.0%} correct",
        extent=EXTENT,
        resolution=GRID,
    )
    losses = charts.loss_curves({"one neuron": single.losses, f"two layers ({hidden} hidden)": double.losses})
    return vega_lite_spec(map1), vega_lite_spec(map2), vega_lite_spec(losses), acc1, acc2


def vega_lite_spec(chart: alt.TopLevelMixin) -> dict:
    """The chart's Vega-Lite spec, with its DataFrames handed over as named datasets.

    ``st.altair_chart`` validates every spec against the Vega-Lite JSON schema and Altair turns
    every DataFrame into a list of dicts: together most of this page's time. Our builders' specs
    are validated once in tests/test_neuron.py; here each DataFrame is swapped for a reference
    (named by its content) and given to Streamlit as is, which sends it to the browser as Arrow.
    That keeps every slider under 100 ms. The chart's DataFrames are swapped in place: pass a
    freshly built chart.
    """
    datasets: dict[str, pd.DataFrame] = {}

    def detach(part) -> None:
        data = getattr(part, "data", alt.Undefined)
        if isinstance(data, pd.DataFrame):
            digest = hashlib.md5(pd.util.hash_pandas_object(data, index=False).to_numpy().tobytes())
            name = f"data-{digest.hexdigest()}"
            datasets[name] = data
            part.data = alt.NamedData(name=name)
        layers = getattr(part, "layer", alt.Undefined)
        for sub in layers if isinstance(layers, list) else []:
            detach(sub)

    detach(chart)
    spec = chart.to_dict(validate=False)
    spec.setdefault("datasets", {}).update(datasets)
    spec.get("config", {}).pop("view", None)  # Altair's 300 px default; Streamlit sizes charts itself
    return spec


def show_chart(key: str, chart: Any, *, alt_text: str, width: Literal["stretch", "content"] | int = "stretch") -> None:
    """Draw an Altair chart (or a spec from :func:`vega_lite_spec`) with its alt text.

    ``key`` keeps the chart's identity across reruns, so Vega updates it instead of redrawing.
    """
    spec = chart if isinstance(chart, dict) else vega_lite_spec(chart)
    st.vega_lite_chart(spec=spec, width=width, alt=alt_text, key=key)


def num(v: float, digits: int = 2) -> str:
    """A number for LaTeX: negative ones in brackets so ``0.5 × (-1.0)`` reads right."""
    s = f"{v:.{digits}f}"
    return f"({s})" if v < 0 else s


# ------------------------------------------------------------------------------------------------
st.title("1 · One neuron: weighted sum, then activation")
present.explain(
    "An artificial neuron multiplies each input by a **weight**, adds a **bias**, and passes "
    "that *weighted sum* through an **activation function**. A CNN is millions of these."
)


@st.fragment(key="exercise")
def weights_by_hand() -> None:
    st.header("Weights by hand: make 3 and 2 give 7.5")
    present.explain(
        "An exercise from *The Programming Historian*: a neuron without activation gets the inputs "
        "**3** and **2**. Find weights and a bias so that it outputs **7.5**. Training does exactly "
        "this, with millions of weights and the computer doing the adjusting."
    )
    controls, result = st.columns([1, 2], gap="large")
    with controls:
        w1 = number("weight w₁", "ex_w1", 1.0)
        w2 = number("weight w₂", "ex_w2", 1.0)
        b = number("bias b", "ex_b", 0.0)
        if st.button("Start again", key="ex_reset"):
            st.session_state.pop("ex_history", None)
    out = float(neuron.weighted_sum(TARGET_INPUTS, [w1, w2], b))  # one input vector: one number
    error = TARGET - out
    history = st.session_state.setdefault("ex_history", [])
    if not history or history[-1][0] != (w1, w2, b):
        history.append(((w1, w2, b), error))
    with result:
        st.latex(
            rf"\begin{{aligned}} y &= w_1 \cdot 3 + w_2 \cdot 2 + b \\ &= {num(w1)} \times 3 + {num(w2)} \times 2"
            rf" + {num(b)} = \mathbf{{{out:.2f}}} \end{{aligned}}"
        )
        previous = history[-2][1] if len(history) > 1 else None
        r1, r2 = st.columns(2)
        r1.metric("output", f"{out:.2f}")
        r2.metric(
            "error = 7.5 − output",
            f"{error:.2f}",
            delta=None if previous is None else f"{abs(error) - abs(previous):+.2f} (size of error)",
            delta_color="inverse",
        )
        if abs(error) < 0.005:
            st.success(
                "Exactly 7.5! Many other weights work too: one example cannot pin down three numbers, "
                "which is why a network learns from many examples.",
                icon="🎯",
            )
        show_chart(
            "error_chart",
            charts.error_history([e for _, e in history], TARGET),
            alt_text=f"Error after each of {len(history)} attempts; the latest error is {error:.2f}.",
        )
        st.caption(
            "Look at the pink line closing in on the green zero line: each attempt is one step of "
            "learning by hand. Gradient descent takes such steps automatically."
        )


@st.fragment(key="neuron")
def one_neuron() -> None:
    st.header("Add an activation function")
    controls, explain = st.columns([1, 2], gap="large")
    with controls:
        c1, c2 = st.columns(2)
        with c1:
            x1 = slider("input x₁", "x1", -5.0, 5.0)
            w1 = slider("weight w₁", "w1", -3.0, 3.0)
        with c2:
            x2 = slider("input x₂", "x2", -5.0, 5.0)
            w2 = slider("weight w₂", "w2", -3.0, 3.0)
        bias = slider("bias b", "bias", -5.0, 5.0)
        activation = settings.selectbox(
            "activation function f",
            list(ACTIVATION_NAMES),
            key="activation",
            default="sigmoid",
            url="activation",
            format_func=ACTIVATION_NAMES.get,
        )
        c1, c2 = st.columns(2)
        with c1:
            threshold = slider("threshold θ (step only)", "threshold", -5.0, 5.0, disabled=activation != "step")
        with c2:
            alpha = slider("slope α (leaky ReLU only)", "alpha", 0.0, 1.0, 0.05, disabled=activation != "leaky_relu")

    z, y = neuron.neuron_output([x1, x2], [w1, w2], bias, activation, threshold=threshold, alpha=alpha)
    with explain:
        # Two lines each (aligned at "="), so the numbers never run off a laptop-width column.
        st.latex(
            rf"\begin{{aligned}} z &= w_1 x_1 + w_2 x_2 + b \\ &= {num(w1)} \times {num(x1)} + {num(w2)} \times"
            rf" {num(x2)} + {num(bias)} = \mathbf{{{z:.2f}}} \end{{aligned}}"
        )
        formula = neuron.FORMULAS[activation].replace(r"\theta", num(threshold)).replace(r"\alpha", num(alpha))
        st.latex(
            rf"\begin{{aligned}} {formula.replace('=', '&=', 1)} \\ y &= f({z:.2f}) = \mathbf{{{y:.4f}}} \end{{aligned}}"
        )
        m1, m2 = st.columns(2)
        m1.metric("weighted sum z", f"{z:.2f}")
        m2.metric("output y", f"{y:.4f}")
        show_chart(
            "curve_chart",
            charts.activation_curve(activation, float(z), threshold=threshold, alpha=alpha),
            alt_text=f"Curve of the {ACTIVATION_NAMES[activation]} activation with the current point "
            f"z = {z:.2f}, y = {y:.4f} marked.",
        )
        st.caption(
            "Look at the pink dot: across is this neuron's weighted sum, up is its output. Move a "
            "weight and the dot slides along the curve; the curve's shape is the activation."
        )

    st.header("What one neuron decides: a straight line")
    present.explain(
        "Colour every point of the input plane (x₁, x₂) by this neuron's output — same weights, bias "
        "and activation. The dots are two classes to separate; the black cross is your input above."
    )
    # The trained networks below use the same data, so a new data set reruns their section too.
    dataset = settings.radio(
        "data",
        list(DATASET_NAMES),
        key="data",
        url="data",
        format_func=DATASET_NAMES.get,
        horizontal=True,
        on_change=lambda: st.rerun(["neuron", "two_layers"]),
    )
    points, labels = neuron.DATASETS[dataset]()
    correct = float(
        np.mean(neuron.neuron_fires(points, [w1, w2], bias, activation, threshold=threshold) == labels.astype(bool))
    )
    plane, text = st.columns([3, 2], gap="large")
    with plane:
        grid = neuron.decision_grid(
            [w1, w2], bias, activation, extent=EXTENT, resolution=GRID, threshold=threshold, alpha=alpha
        )
        show_chart(
            "plane_chart",
            charts.decision_map(
                *grid,
                points=points,
                labels=labels,
                current=(x1, x2),
                value_title="output y",
                mid=0.5 if activation in ("sigmoid", "step") else 0.0,
                domain=OUTPUT_RANGE.get(activation),
                title="Your neuron over the input plane",
                size=520,
            ),
            width="content",
            alt_text=f"Heat map of the neuron's output over the input plane with the {dataset} data; "
            f"it classifies {correct:.0%} of the points correctly.",
        )
    with text:
        st.metric("points your neuron gets right", f"{correct:.0%}")
        present.explain(
            "Look at the border between blue and orange: whatever you choose, it is a **straight line** "
            "(the weights turn it, the bias shifts it). On XOR no line does better than **75 %**: "
            "the orange clouds sit in opposite corners. On circles, no line can cut a disc out of a ring."
        )


@st.fragment(key="two_layers")
def two_layers() -> None:
    st.header("Two layers can do it")
    present.explain(
        "Both trained by gradient descent on the same data: a single neuron, and a small network whose "
        "hidden neurons each draw a line that one output neuron then combines."
    )
    dataset = settings.kept("data", next(iter(DATASET_NAMES)))
    hidden = settings.slider("hidden neurons", 1, 8, key="hidden", default=4, url="hidden", where=st.columns([1, 2])[0])
    map1, map2, losses, acc1, acc2 = trained_maps(dataset, hidden, style.scale())  # the scale: cached per size
    left, right = st.columns(2, gap="large")
    with left:
        show_chart(
            "one_neuron_map",
            map1,
            width="content",
            alt_text=f"Decision map of one trained neuron on {dataset}: {acc1:.0%} correct.",
        )
    with right:
        show_chart(
            "two_layer_map",
            map2,
            width="content",
            alt_text=f"Decision map of a trained two-layer network with {hidden} hidden neurons on "
            f"{dataset}: {acc2:.0%} correct.",
        )
    st.caption(
        "Look at the shapes: one neuron can only cut the plane into two halves; the two-layer network "
        "bends its border around the clouds. Try 1 or 2 hidden neurons and watch it struggle."
    )
    show_chart(
        "loss_chart",
        losses,
        alt_text=f"Training loss per step: one neuron ends at {acc1:.0%} correct, two layers at {acc2:.0%}.",
    )
    st.caption(
        "Look where each loss curve levels off: the single neuron gets stuck high, the two-layer "
        "network keeps falling towards zero."
    )


@st.fragment(key="softmax")
def softmax_panel() -> None:
    st.header("From scores to probabilities: softmax")
    present.explain(
        "A classifier's last layer gives one score (*logit*) per class. **Softmax** turns them into "
        "probabilities that add up to 1; the **temperature** T decides how sure it sounds."
    )
    controls, result = st.columns([1, 2], gap="large")
    with controls:
        logits = [slider(f"logit for “{name}”", f"logit{i + 1}", -5.0, 5.0) for i, name in enumerate(SOFTMAX_CLASSES)]
        temperature = slider("temperature T", "temperature", 0.1, 5.0)
    probs = neuron.softmax(logits, temperature)
    scaled = np.asarray(logits) / temperature
    with result:
        st.latex(r"p_i = \frac{e^{z_i / T}}{\sum_j e^{z_j / T}}, \qquad T = " + f"{temperature:.1f}")
        st.table(
            pd.DataFrame(
                {
                    "class": SOFTMAX_CLASSES,
                    "logit z": [f"{v:.2f}" for v in logits],
                    "z / T": [f"{v:.3f}" for v in scaled],
                    "e^(z/T)": [f"{v:.4g}" for v in np.exp(scaled)],
                    "probability": [f"{p:.2%}" for p in probs],
                }
            ).set_index("class")
        )
        show_chart(
            "softmax_chart",
            charts.softmax_bars(SOFTMAX_CLASSES, logits, probs),
            alt_text="Probability of each class: " + ", ".join(f"{c} {p:.1%}" for c, p in zip(SOFTMAX_CLASSES, probs)),
        )
        st.caption(
            "Look at the bars as you move T: a high temperature evens them out, a low one hands almost "
            "everything to the largest logit. The order of the classes never changes."
        )


present.step(1)
weights_by_hand()
present.step(2)
one_neuron()
present.step(3)
two_layers()
present.step(4)
animate.training_player(settings.kept("data", next(iter(DATASET_NAMES))), settings.kept("hidden", 4))
present.step(5)
softmax_panel()
