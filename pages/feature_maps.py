"""Page 3 · Feature maps: what does the network see, layer by layer?

Lecture outline: pick a trained network and an image; read its layer list (shapes, strides,
receptive fields); look at all channels of one layer; enlarge one channel over the picture;
the first layer's kernels; which channels fire most; what the network answers; Grad-CAM
(where the evidence for a class was found); the same layer for two images side by side.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from ui.router import ensure_app_shell

ensure_app_shell()  # before heavy imports: a bookmark opened first on a fresh server goes through app.py

from cnnviz.model import features
from cnnviz.model import registry, shipped
from cnnviz.charts.features import top_k_chart
from ui import present, settings
from cnnviz.text import plain
from ui import feature_view as view
from ui.memo import digest, memo, token
from ui.models import image_model_picker
from ui.state import visitor_images
from ui.widgets import image_picker, samples, show_image

TOP_K = 5
ENLARGED = 448  # pixels: one channel blown up so a lecture hall can see single activations


@st.cache_resource(show_spinner=False, max_entries=4)
def _warm_shipped(name: str, _model) -> int:
    """Build and trace the compiled feature and Grad-CAM functions of a shipped model once per process
    (the warm start of ``serve.py`` has usually done it: then this costs milliseconds)."""
    shipped.trace(_model)
    return len(features.feature_layers(_model))


def _layer_label(row: features.LayerRow) -> str:
    h, w, c = row.output_shape
    return f"{row.name} · {row.type} · {h}×{w}×{c}"


def _enlarge(channel: np.ndarray, size: int = ENLARGED) -> np.ndarray:
    """One channel coloured and blown up with nearest neighbour: every activation stays a visible block."""
    h, w = channel.shape
    return features.tile_channels(channel[:, :, None], cell=max(h, w) * max(1, size // max(h, w)))


st.title("3 · Feature maps")
present.explain(
    "A convolutional network turns a picture into a stack of **feature maps**: every filter of a layer "
    "slides over the layer's input and lights up where it finds its pattern. Early layers answer "
    "*“is there an edge, a colour, a texture here?”*; deeper layers combine those answers into parts "
    "and objects, at coarser and coarser resolution."
)

present.step(1)
# Presenter mode: the picture on the left of the first screen, every control beside it, not above.
presenting = present.presenting()
picture_side, control_side = st.columns([1, 1], gap="large") if presenting else (st.container(), st.container())
with control_side:
    model_name, model, card = image_model_picker("fm_model", otherwise="it has no feature maps to show")
    if card.get("kind") in ("imagenet", "bundled"):
        with st.status("Preparing the feature-map viewer for this network…", expanded=False) as status:
            _warm_shipped(model_name, model)
            status.update(label="Feature-map viewer ready.", state="complete")
    st.caption(plain(card.get("description", "")))
# Everything below that depends only on (model, image) is kept per session (ui.memo): a click on a
# layer, a channel or a class reruns only its own section (st.fragment) and recomputes only what changed.
mkey = token(model)

left, right = (picture_side, control_side) if presenting else st.columns([1, 1], gap="large")
with right if presenting else left:
    image_name, image = image_picker("fm_image", label="Image")
    ikey = digest(image)
    # A shipped model on a sample picture: its results are kept for every visitor (ui.feature_view).
    public = view.is_public(card, image_name, samples=samples(), mine=visitor_images())
    shown = view.shown(image, ikey, shared=public)
with left:
    show_image(shown, alt=f"The input image: {image_name}.", caption=f"Input: {plain(image_name)}")
try:
    with st.spinner("Running the network once, keeping every layer's output…"):
        features.feature_model(model)  # a model without feature maps says so here, in one sentence
        probs = view.probabilities(model, image, ikey, shared=public)
except ValueError as err:
    st.error(plain(err), icon="🚫")
    st.stop()
names = registry.class_names(card)
predictions = registry.top_k(probs, names, TOP_K)
with right:
    st.subheader(f"What the network answers (top {len(predictions)})")
    st.altair_chart(
        top_k_chart(predictions),
        width="stretch",
        alt="Bar chart of the network's most probable classes for this image: "
        + ", ".join(f"{n} {100 * p:.1f} %" for n, p in predictions)
        + ".",
    )
    st.caption(
        "Look at how the probability is shared: one long bar means a confident network, "
        "several similar bars mean it is unsure (confident is not the same as right)."
    )

# --- 1. The layer list -------------------------------------------------------------------
present.step(2)
st.header("1 · The layers")
table = view.layer_table(model, shared=view.is_shipped(card))
with_maps = [r for r in table if r.has_feature_map]
deepest = with_maps[-1] if with_maps else table[-1]
st.markdown(
    f"**{len(table)} layers**, {len(with_maps)} of them with feature maps. The deepest of those, "
    f"*{plain(deepest.name)}*, is {' × '.join(str(d) for d in deepest.output_shape)}: its neighbouring values "
    f"lie **{deepest.jump} input pixels** apart. "
    + features.receptive_field_sentence(deepest.receptive_field, model.input_shape[1]).replace(
        "Every block covers", "Each of them covers", 1
    )
)
# The table is drawn only while its panel is open (on_change="rerun"): a data grid is the heaviest
# thing a browser draws on this page (about 0.6 s of a first visit on a two-core machine).
panel = st.expander(f"📋 All {len(table)} layers, one per row", key="fm_table_panel", on_change="rerun")
if panel.open:
    with panel:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "layer": r.name,
                        "type": r.type,
                        "output (H × W × C)": " × ".join(str(d) for d in r.output_shape),
                        "parameters": r.params,
                        "stride": r.stride,
                        "jump (px)": r.jump,
                        "receptive field (px)": r.receptive_field,
                        "feature maps": "✔" if r.has_feature_map else "",
                    }
                    for r in table
                ]
            ),
            hide_index=True,
            height=320,
            width="stretch",
            alt="Table of every layer of the network with its type, output shape, parameters, stride, jump "
            "and receptive field.",
        )
        st.caption(
            "Look at the last two columns: every stride multiplies the **jump** (how many input pixels lie between "
            "two neighbouring outputs) and every window widens the **receptive field** (the square of the input one "
            "output value can see). Deep layers see large parts of the picture, but coarsely."
        )

present.step(3)  # sections 2 and 3 are one fragment, so one step
layer_slot = st.container()  # sections 2 and 3: drawn last (below), they need the second image of section 6


@st.fragment(key="fm_channel_section")
def channel_section(fmap: np.ndarray, layer: str, order: np.ndarray, sentence: str) -> None:
    """Section 3's enlarged channel: a channel step reruns only this."""
    channel = settings.slider(
        "Channel",
        0,
        max(fmap.shape[2] - 1, 1),
        key="fm_channel",
        default=int(order[0]),
        url="channel",
        disabled=fmap.shape[2] < 2,
    )
    channel = min(channel, fmap.shape[2] - 1)
    one = fmap[:, :, channel]
    c1, c2 = st.columns(2, gap="large")
    with c1:
        show_image(
            _enlarge(one),
            alt=f"Channel {channel} of layer {layer}, enlarged: a {one.shape[0]}×{one.shape[1]} grid "
            f"of activations from {one.min():.2f} to {one.max():.2f}.",
            caption=f"Channel {channel} of {plain(layer)} (min {one.min():.2f}, mean {one.mean():.2f}, max {one.max():.2f})",
        )
    with c2:
        show_image(
            features.overlay(shown, one),
            alt=f"Channel {channel} of layer {layer} laid over the input image; "
            "bright areas are where this filter responds.",
            caption="The same channel stretched over the input image",
        )
    st.caption(
        "Look at where the bright blocks fall on the picture: that is what this one filter responds to. " + sentence
    )


@st.fragment(key="fm_layer_section")
def layer_section(other: np.ndarray, other_shown: np.ndarray, other_name: str, okey: str, compare) -> None:
    """Sections 2 and 3, and section 6's two grids (in ``compare``): a layer switch reruns only these."""
    st.header("2 · One layer, all its channels")
    rows = {r.name: r for r in table if r.has_feature_map}
    layer = settings.selectbox(
        "Layer", list(rows), key="fm_layer", url="layer", format_func=lambda n: _layer_label(rows[n])
    )
    sort = settings.toggle(
        "Sort channels by mean activation (strongest first)", key="fm_sort", default=True, url="sort"
    )
    # Only this layer's map is kept (one pass computes all of them in ~40 ms; all of them would be ~50 MB a visitor).
    fmap, other_map = view.layer_maps(model, image, ikey, other, okey, layer, shared=both_public)  # one pass
    order = features.top_channels(fmap) if sort else np.arange(fmap.shape[2])
    grid = view.grid_png(model, fmap, order, ikey, layer, sort, shared=public)
    st.image(
        grid,
        width="stretch",
        output_format="PNG",
        alt=f"All {fmap.shape[2]} channels of layer {layer}, each {fmap.shape[0]}×{fmap.shape[1]}, "
        "tiled in one image; bright yellow is strong activation, dark purple weak.",
        caption=f"{plain(layer)}: {fmap.shape[2]} channels, {'strongest first' if sort else 'in filter order'} "
        "(reading order, left to right)",
    )
    st.caption(
        "Each tile is one filter's answer for the whole picture, scaled on its own from dark (its weakest) "
        "to yellow (its strongest). Look for tiles that trace edges, fill colour regions or stay dark: a dark "
        "tile means this filter found nothing it looks for in this image."
    )

    st.header("3 · One channel, enlarged and laid over the picture")
    if settings.kept("fm_channel_layer") not in (None, layer):
        st.session_state["fm_channel"] = int(order[0])  # a new layer opens on its most active channel
    settings.set_value("fm_channel_layer", layer, default=None)
    channel_section(
        fmap, layer, order, features.receptive_field_sentence(rows[layer].receptive_field, model.input_shape[1])
    )

    st.subheader("The most active channels for this image")
    top = features.top_channels(fmap, 8)
    means = features.channel_means(fmap)
    st.image(
        [_enlarge(fmap[:, :, c], 160) for c in top],
        caption=[f"channel {c} · mean {means[c]:.2f}" for c in top],
        alt=[f"Channel {c} of layer {layer}, mean activation {means[c]:.2f}." for c in top],
        width=160,
    )
    st.caption(
        "These filters fired most on average for this picture; set the channel slider to one of their numbers "
        "to enlarge it. Another picture wakes other channels."
    )

    with compare:
        st.caption(
            f"Both images go through the same network; below is layer {plain(layer)} for each, channels in the same order."
        )
        other_grid = view.grid_png(model, other_map, order, okey, layer, sort, ordered_by=ikey, shared=both_public)
        a, b = st.columns(2, gap="large")
        with a:
            show_image(shown, alt=f"The first image: {image_name}.", width=220)
            st.image(
                grid,
                width="stretch",
                output_format="PNG",
                alt=f"All channels of layer {layer} for {image_name}.",
                caption=plain(image_name),
            )
        with b:
            show_image(other_shown, alt=f"The second image: {other_name}.", width=220)
            st.image(
                other_grid,
                width="stretch",
                output_format="PNG",
                alt=f"All channels of layer {layer} for {other_name}, in the same channel order as the left image.",
                caption=plain(other_name),
            )
        st.caption(
            "Look at the same tile position on both sides: it is the same filter. Which filters wake up for one "
            "picture and stay dark for the other?"
        )


# --- 4. First-layer kernels ---------------------------------------------------------------
present.step(4)
st.header("4 · What the first layer looks for: its kernels")
try:
    kernels = memo(
        "fm_kernels", mkey, lambda: features.first_layer_kernels(model, scale=12), shared=view.is_shipped(card)
    )
    show_image(
        memo("fm_kernel_tiles", mkey, lambda: features.tile_images(kernels, gap=4), shared=view.is_shipped(card)),
        alt=f"The {len(kernels)} kernels of the first convolution as small colour squares; gray means weight zero.",
        caption=f"{len(kernels)} first-layer kernels, each {kernels.shape[1] // 12}×{kernels.shape[2] // 12} weights",
        width=min(900, 60 * int(np.ceil(np.sqrt(len(kernels)))) * 2),
    )
    st.caption(
        "Gray is a zero weight; bright colours are what a kernel adds up, dark ones what it subtracts. "
        "Look for kernels that are half dark, half bright: they are edge detectors, as on page 2."
    )
except ValueError as err:
    st.info(plain(err))


# --- 5. Grad-CAM --------------------------------------------------------------------------
@st.fragment(key="fm_gradcam_section")
def grad_cam_section() -> None:
    """Section 5: choosing another class reruns only this."""
    st.header("5 · Grad-CAM: where was the evidence for a class?")
    class_options = [-1] + [int(i) for i in np.argsort(-probs)[:TOP_K]] + list(range(len(names)))
    class_options = list(dict.fromkeys(class_options))
    cam_class = settings.selectbox(
        "Class to explain",
        class_options,
        key="fm_cam_class",
        default=-1,
        url="cam",
        format_func=lambda i: (
            f"the predicted class ({predictions[0][0]})" if i < 0 else f"{names[i]} ({100 * probs[i]:.1f} %)"
        ),
    )
    explained = names[int(np.argmax(probs))] if cam_class < 0 else names[cam_class]
    with st.spinner("Computing Grad-CAM…"):
        heat = view.grad_cam(model, image, ikey, shown, cam_class, shared=public)
    target = features.last_conv_layer(model)
    g1, g2 = st.columns(2, gap="large")
    with g1:
        show_image(
            heat,
            alt=f"Grad-CAM heat map for the class {explained} laid over the input image; bright areas counted towards its score.",
            caption=f"Grad-CAM for “{plain(explained)}” at layer {plain(target.name)}",
        )
    with g2:
        st.altair_chart(
            top_k_chart(predictions, highlight=explained),
            width="stretch",
            alt=f"The top {len(predictions)} predictions again, with {explained} highlighted if it is among them.",
        )
        present.explain(
            f"**What it shows:** where, in layer *{plain(target.name)}* (the last convolutional block, "
            f"{target.output.shape[1]}×{target.output.shape[2]} positions), the existing activations counted towards the score of "
            f"“{plain(explained)}”. Each channel is weighted by how much the score depends on it, and the positive sum is "
            "stretched over the picture.\n\n"
            "**What it does not show:** *why* the network decided, which pixels a person would call the object, or "
            "whether the evidence is the right kind (a watermark or a background can light up). It is a coarse map "
            "of one layer's influence, not a proof of understanding."
        )


present.step(5)
cam_slot = st.container()  # drawn after sections 2 and 3: the layer's maps reach the visitor first

# --- 6. Compare two images ----------------------------------------------------------------
present.step(6)
st.header("6 · Two images, the same layer")
other_name, other = image_picker(
    "fm_image2",
    label="Second image",
    query_param="image2",
    default=view.second_default(image_name),
)
okey = digest(other)
both_public = public and view.is_public(card, other_name, samples=samples(), mine=visitor_images())
compare = st.container()
with layer_slot:
    layer_section(other, view.shown(other, okey, shared=both_public), other_name, okey, compare)
with cam_slot:
    grad_cam_section()
