"""Build and train a CNN from scratch: the Keras intro, the Carpentries lesson and NVIDIA DIGITS as one page.

Outline: (1) the data and a look at it, (2) the network as a layer list with its summary,
(3) training as a background job the hall can watch (curves, first-layer filters, Stop),
(4) what it learnt (test set, per class, confusion, confident mistakes, classify one,
open it on the feature-map and audit pages, take it home), (5) runs compared (overfitting).
"""

from __future__ import annotations

import numpy as np
import streamlit as st
from streamlit_drawable_canvas import st_canvas

from ui.router import ensure_app_shell

ensure_app_shell()  # before heavy imports: a bookmark opened first on a fresh server goes through app.py

from cnnviz import jobs
from cnnviz.charts import training as charts
from cnnviz.charts.scratch import compare_curves
from cnnviz.model.features import tile_images
from cnnviz.train.progress import first_conv
from cnnviz.model import registry  # noqa: E402
from cnnviz.text import plain
from cnnviz.train import scratch as S
from ui import present, settings
from ui.jobs import live_training, owner_id
from ui.state import add_visitor_model
from ui.widgets import image_picker, show_image

SS = st.session_state
SOURCES = {
    "fashion_mnist": "Fashion-MNIST (clothes, 28×28 gray)",
    "mnist": "MNIST (digits, 28×28 gray)",
    "cifar10": "CIFAR-10 (photos, 32×32 colour)",
    "demo": "Demo shapes (generated here)",
    "zip": "Your own images (a zip of class folders)",
}
BATCHES, RATES = [16, 32, 64, 128, 256], [0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.1]


@st.cache_resource(show_spinner="Reading the data set from Keras's cache…", max_entries=3)
def _keras_data(name: str) -> S.Dataset:
    return S.load_keras_dataset(name)  # identical for every visitor: shared, never written to


@st.cache_resource(show_spinner=False, max_entries=4)
def _demo_data(size: int, colour: bool) -> S.Dataset:
    return S.demo_shapes(300, size=size, colour=colour)


def _dataset() -> S.Dataset | None:
    source = settings.radio(
        "Data set",
        list(SOURCES),
        key="scratch_source",
        default="fashion_mnist",
        url="data",
        format_func=SOURCES.get,
        horizontal=True,
    )
    if source in ("fashion_mnist", "mnist", "cifar10"):
        try:
            return _keras_data(source)
        except S.DataError as err:
            st.warning(f"{err}", icon="📭")
            return None
    size = settings.radio(
        "Resize to",
        [32, 64],
        key="scratch_size",
        default=32,
        url="size",
        horizontal=True,
        format_func=lambda s: f"{s} px",
    )
    colour = settings.toggle(
        "Colour (off: grayscale, as DIGITS offers)", key="scratch_colour", default=source == "demo", url="colour"
    )
    if source == "demo":
        return _demo_data(size, colour)
    upload = st.file_uploader(
        "A zip with one folder per class (or training/<class>/ and testing/<class>/)", type=["zip"], key="scratch_zip"
    )
    if upload is None:
        st.info("Upload a zip of class folders, or choose another data set.", icon="📦")
        return None
    marker = (upload.file_id, size, colour)
    if SS.get("scratch_zip_key") != marker:  # read once per file and setting; kept in this visitor's session only
        try:
            with st.spinner(f"Reading {plain(upload.name)}…"):
                SS["scratch_zip_data"] = S.dataset_from_zip(
                    upload.getvalue(), size=size, colour=colour, zip_name=f"“{upload.name}”"
                )
        except S.DataError as err:
            SS["scratch_zip_data"] = str(err)
        SS["scratch_zip_key"] = marker
    data = SS["scratch_zip_data"]
    if isinstance(data, str):
        st.error(plain(data), icon="🚫")  # it names the visitor's file and folders
        return None
    if data.skipped:
        st.caption(f"{len(data.skipped)} files in the zip were not used (not images, or unreadable).")
    return data


def _load_preset(key: str) -> None:
    preset = S.PRESETS[key]
    SS["scratch_table"] = S.layers_to_table(preset.layers)
    SS.pop("scratch_table_edited", None)
    SS["scratch_editor_gen"] = SS.get("scratch_editor_gen", 0) + 1  # a fresh editor shows the new rows
    SS.update(
        {
            "scratch_epochs": preset.epochs,
            "scratch_batch": preset.batch_size,
            "scratch_lr": preset.learning_rate,
            "scratch_opt": preset.optimizer,
            "scratch_flip": preset.augment.flip,
            "scratch_rot": preset.augment.rotation,
            "scratch_shift": preset.augment.shift,
            "scratch_noise": preset.augment.noise,
        }
    )
    if preset.subset:
        SS["scratch_subset_next"] = preset.subset


# --------------------------------------------------------------------------- page
st.title("Build and train a CNN from scratch")
present.explain(
    "Train a network **from random numbers**, as the Keras introduction, the Carpentries lesson and NVIDIA "
    "DIGITS do: choose images, stack layers, press Train, and watch the curves grow and the first layer's "
    "filters turn from noise into edge and blob detectors. Training runs on the server in the background: "
    "you can keep clicking while it learns."
)

present.step(1)
st.header("1 · The data")
# Presenter mode: the data set's first images on the left of the first screen, the choices beside them.
presenting = present.presenting()
picture_side, control_side = st.columns([1, 1], gap="large") if presenting else (None, st.container())
with control_side:
    data = _dataset()
    if data is None:
        st.stop()
    n_train = len(data.x_train)
    wanted = SS.pop("scratch_subset_next", None)
    if n_train <= 500:  # a small collection trains on all of its images (a slider needs a range)
        subset = n_train
    else:
        if wanted is not None:  # a preset's own subset (the overfitting lesson) replaces the visitor's
            SS["scratch_subset"] = int(min(max(wanted, 500), n_train))
        subset = settings.slider(
            "Training images (a random subset, the same for the same seed)",
            500,
            n_train,
            key="scratch_subset",
            default=min(10_000, n_train),
            url="images",
            step=max(1, min(500, n_train // 20)),
        )
    st.caption(
        f"**{plain(data.title)}**: {n_train:,} training and {len(data.x_test):,} test images of "
        f"{' × '.join(map(str, data.input_shape))}, {len(data.class_names)} classes. "
        "10 % of the chosen training images are held out for validation; the test images are never trained on."
    )
with (
    picture_side
    if picture_side is not None
    else st.expander("🔎 Explore the data: the first images of each class", expanded=False)
):
    st.image(
        S.sample_grid(
            data.x_train,
            data.y_train,
            len(data.class_names),
            per_class=6 if presenting else 12,  # fewer, larger pictures for a hall
            scale=max(1, 64 // data.input_shape[0]),
        ),
        caption=" · ".join(f"row {i + 1}: {plain(n)}" for i, n in enumerate(data.class_names)),
        alt=f"A grid with one row of sample images per class of {data.title}",
    )

present.step(2)
st.header("2 · The network")
if "scratch_table" not in SS:
    _load_preset("carpentries")
elif f"scratch_editor_{SS.get('scratch_editor_gen', 0)}" not in SS and SS.get("scratch_table_edited", (None,))[
    0
] == SS.get("scratch_editor_gen", 0):
    # Back from another page: Streamlit dropped the editor's edits, so start a fresh editor from the last table.
    SS["scratch_table"] = SS.pop("scratch_table_edited")[1]
    SS["scratch_editor_gen"] = SS.get("scratch_editor_gen", 0) + 1
preset_key = settings.selectbox(
    "Start from a lesson's network",
    list(S.PRESETS),
    key="scratch_preset",
    default="carpentries",
    url="preset",
    format_func=lambda k: S.PRESETS[k].title,
)
if SS.get("scratch_preset_loaded", "carpentries") != preset_key:
    SS["scratch_preset_loaded"] = preset_key
    _load_preset(preset_key)
    st.rerun()
preset = S.PRESETS[preset_key]
st.caption(f"From: {preset.lesson}. {preset.note}")
st.markdown(
    "Edit the layers below: change a number, add a row at the bottom, delete a row (select it, then 🗑), "
    "move a row by giving it another number in **order** (2 puts it second). "
    "The output layer (one neuron per class, softmax) is always added at the end."
)
table = st.data_editor(
    SS["scratch_table"],
    key=f"scratch_editor_{SS.get('scratch_editor_gen', 0)}",
    num_rows="dynamic",
    hide_index=False,
    column_config={
        "order": st.column_config.NumberColumn("order", help="Type another number to move this layer there."),
        "layer": st.column_config.SelectboxColumn("layer", options=list(S.LAYER_TYPES), required=True),
        "padding": st.column_config.SelectboxColumn("padding", options=["valid", "same"]),
        "activation": st.column_config.SelectboxColumn("activation", options=list(S.ACTIVATIONS)),
        "rate": st.column_config.NumberColumn("rate", min_value=0.0, max_value=0.95, step=0.05),
    },
)
table, moved = S.reorder_table(table)
if moved:  # a fresh editor shows the rows in their new order
    SS["scratch_table"] = table
    SS["scratch_editor_gen"] = SS.get("scratch_editor_gen", 0) + 1
    st.rerun()
SS["scratch_table_edited"] = (SS.get("scratch_editor_gen", 0), [dict(row) for row in table])
try:
    layers = S.layers_from_table(table)
    rows = S.summary(layers, data.input_shape, len(data.class_names))
    problem = None
except S.ArchitectureError as err:
    layers, rows, problem = (), [], str(err)
if problem:
    st.error(plain(problem), icon="🧱")  # it can quote a cell the visitor typed
else:
    st.dataframe(
        [
            {
                "layer": r.name,
                "type": r.type,
                "output shape": r.shape_text,
                "parameters": r.params,
                "what it does": r.note,
            }
            for r in rows
        ],
        hide_index=True,
    )
    st.markdown(f"**Total: {sum(r.params for r in rows):,} parameters** (the same count as Keras's `model.summary()`).")

present.step(3)
st.header("3 · Train it and watch")
c1, c2, c3, c4, c5 = st.columns(5)
epochs = settings.number_input("Epochs", 1, 100, key="scratch_epochs", default=preset.epochs, url="epochs", where=c1)
batch = settings.selectbox("Batch size", BATCHES, key="scratch_batch", default=preset.batch_size, url="batch", where=c2)
rate = settings.selectbox(
    "Learning rate",
    RATES,
    key="scratch_lr",
    default=preset.learning_rate,
    url="lr",
    where=c3,
    format_func=lambda r: f"{r:g}",
)
optimizer = settings.selectbox(
    "Optimizer", list(S.OPTIMIZERS), key="scratch_opt", default=preset.optimizer, url="optimizer", where=c4
)
seed = settings.number_input(
    "Seed",
    0,
    10_000,
    key="scratch_seed",
    default=0,
    url="seed",
    where=c5,
    help="The same seed gives the same run again.",
)
with st.expander("🎲 Augmentation: change every training image a little, every epoch", expanded=False):
    a1, a2, a3, a4 = st.columns(4)
    pa = preset.augment
    augment = S.Augment(
        flip=settings.toggle("Flip left–right", key="scratch_flip", default=pa.flip, url="flip", where=a1),
        rotation=settings.slider(
            "Rotate (share of a turn)",
            0.0,
            0.1,
            key="scratch_rot",
            default=pa.rotation,
            url="rotate",
            step=0.01,
            where=a2,
        ),
        shift=settings.slider(
            "Shift (share of the side)",
            0.0,
            0.2,
            key="scratch_shift",
            default=pa.shift,
            url="shift",
            step=0.02,
            where=a3,
        ),
        noise=settings.slider(
            "Noise (share of the pixel range)",
            0.0,
            0.2,
            key="scratch_noise",
            default=pa.noise,
            url="noise",
            step=0.02,
            where=a4,
        ),
    )
    if augment.active:
        preview = S.augment_preview(data.x_train[:6], augment, copies=5, seed=int(seed))
        for row in preview:
            st.image(list(S.enlarge(row, 96)), width=96, alt=["A training image as augmentation changed it"] * len(row))
        st.caption(
            "Each row: one training image as the network sees it in five epochs. A mirrored digit is no "
            "longer the same digit; choose changes that keep the class."
        )

running = [j for j in SS.get("scratch_jobs", []) if not j.finished]
start = st.button("▶️ Train", type="primary", key="scratch_train", disabled=bool(problem) or bool(running))
if start:
    run = S.Run(
        layers,
        data,
        augment=augment,
        epochs=int(epochs),
        batch_size=int(batch),
        learning_rate=float(rate),
        optimizer=optimizer,
        subset=int(subset),
        seed=int(seed),
        name=f"{preset_key}_{len(SS.get('scratch_jobs', [])) + 1}",
    )
    try:
        job = jobs.submit(S.training_job(run), kind="scratch", owner=owner_id())
    except jobs.QueueFull as err:
        st.error(str(err), icon="⏳")
    else:
        job.label = (
            f"Run {len(SS.get('scratch_jobs', [])) + 1} · {preset.title.split(' (')[0]} · {int(subset):,} images"
        )
        SS.setdefault("scratch_jobs", []).append(job)
        st.rerun()  # draw the page again with this run in it (and the Train button off)
for job in running:
    st.subheader(job.label)
    live_training(job, "scratch")

finished = [j for j in SS.get("scratch_jobs", []) if j.finished and j.result is not None and j.result.evaluation]
for job in SS.get("scratch_jobs", []):
    if job.state == "failed":
        st.error(plain(f"{job.label}: {job.error}"), icon="🚫")
present.step(4)
if not finished:
    if presenting:  # steps 4 and 5 hold the results; say so rather than show an empty slide
        st.info("Train a network first (step 3): what it learnt is shown here.", icon="👈")
        present.step(5)
        st.info("Train two networks to compare their runs here.", icon="👈")
    st.stop()

st.header("4 · What it learnt")
registered = SS.setdefault("scratch_registered", {})
for job in finished:  # each finished run is offered on this visitor's feature-map and audit pages
    if job.id not in registered:
        res, ev = job.result, job.result.evaluation
        card = registry.visitor_card(
            job.label,
            res.model,
            ev.class_names,
            test_accuracy=ev.accuracy,
            description=f"Trained from scratch here on {res.train_images:,} {res.run.data.title} images "
            f"for {len(res.rows)} epochs.",
        )
        registered[job.id] = card["name"] = add_visitor_model(job.label, res.model, card)
        SS["scratch_result"] = job.label  # show the run that just ended
by_label = {j.label: j for j in finished[::-1]}
chosen = by_label[settings.selectbox("Run", list(by_label), key="scratch_result")]  # runs are private: no URL
res = chosen.result
ev = res.evaluation
name = registered[chosen.id]
last = res.rows[-1] if res.rows else {}
m1, m2, m3 = st.columns(3)
m1.metric(f"Accuracy on {len(ev.labels):,} test images", f"{ev.accuracy:.1%}")
m2.metric("Training accuracy (last epoch)", f"{last.get('accuracy') or 0:.1%}")
m3.metric(
    "Training time",
    f"{res.seconds:.1f} s",
    f"{len(res.rows)} of {res.run.epochs} epochs" + (" (stopped)" if res.stopped else ""),
    delta_color="off",
)
st.altair_chart(
    charts.training_curves(res.rows, epochs=res.run.epochs),
    width="content",
    alt="Training and validation loss and accuracy per epoch",
)
left, right = st.columns([2, 3])
left.dataframe(
    {"class": ev.class_names, "accuracy": [round(float(a), 3) for a in np.nan_to_num(ev.per_class_accuracy)]},
    hide_index=True,
    column_config={"accuracy": st.column_config.ProgressColumn("accuracy", min_value=0, max_value=1, format="percent")},
)
right.altair_chart(
    charts.confusion_matrix(ev.confusion, ev.class_names, size=48 if len(ev.class_names) > 5 else 90),
    width="content",
    alt="Confusion matrix on the test images",
)
if res.first_filters is not None and (conv := first_conv(res.model)) is not None:
    st.subheader("The first layer's filters, before and after")
    f1, f2 = st.columns(2)
    for col, kernel, when in (
        (f1, res.first_filters, "before training (random)"),
        (f2, conv.kernel.numpy(), "after training"),
    ):
        col.image(
            tile_images(S.filter_tiles(kernel, scale=max(2, 48 // kernel.shape[0])), gap=3),
            width=260,
            caption=when,
            alt=f"The first layer's filters {when}",
        )
    st.caption("Gray is weight 0, light positive, dark negative. Trained filters often look for edges and blobs.")
st.subheader("The mistakes it was surest of")
worst = S.confident_errors(ev, 12)
if worst:
    tiles = S.enlarge(res.test_x[worst], 96)
    st.image(
        list(tiles),
        width=96,
        caption=[
            f"{plain(ev.class_names[ev.labels[i]])} → "
            f"{plain(ev.class_names[ev.predictions[i]])} "
            f"({ev.probabilities[i].max():.0%})"
            for i in worst
        ],
        alt=[f"A {ev.class_names[ev.labels[i]]} the network called {ev.class_names[ev.predictions[i]]}" for i in worst],
    )
    st.caption("Under each picture: the true class → what the network said, and how sure it was.")

st.subheader("Classify one")
how = settings.radio(
    "Picture",
    ["image", "draw"],
    key="scratch_one_how",
    default="image",
    url="classify",
    format_func={"image": "An image", "draw": "Draw one"}.get,
    horizontal=True,
)
if how == "draw":
    drawn = st_canvas(
        stroke_width=22,
        stroke_color="#ffffff",
        background_color="#000000",
        height=280,
        width=280,
        drawing_mode="freedraw",
        return_image_data=True,
        key="scratch_canvas",
    )
    pic_name, picture = "Your drawing", S.drawing_to_picture(drawn.image_data)
    if picture is None:
        st.info(
            "Draw with the mouse or a finger: light on dark, like the MNIST digits and Fashion-MNIST clothes.", icon="✏️"
        )
else:
    pic_name, picture = image_picker("scratch_one", label="Image", query_param=None)
if picture is not None:
    one = S.to_input(picture, res.run.data.input_shape)
    probs = S.predict(res.model, one[None])[0]
    p1, p2 = st.columns([1, 3])
    with p1:
        show_image(
            S.enlarge(one[None], 160)[0], alt=f"{pic_name} as the network sees it", caption="as the network sees it"
        )
    p2.altair_chart(
        charts.probability_bars(probs, ev.class_names),
        width="content",
        alt=f"The network says {ev.class_names[int(probs.argmax())]} with {probs.max():.0%}",
    )

o1, o2, o3 = st.columns(3)
for col, label, target in (
    (o1, "🔍 Open it on the feature-map page", "pages/feature_maps.py"),
    (o2, "🧪 Audit it", "pages/audit.py"),
):
    if col.button(label, key=f"scratch_open_{target}"):
        SS["cnnviz_requested_model"] = name
        st.switch_page(target)
with o3:
    colour = res.run.data.input_shape[-1] == 3  # TensorFlow.js only for colour models (see S.GRAY_TFJS)
    if st.button("📦 Prepare .keras, .tflite" + (" and TensorFlow.js" if colour else ""), key="scratch_export"):
        with st.spinner("Saving and converting (a few seconds)…"):
            web = S.tfjs_zip(
                res.model,
                ev.class_names,
                model_name=res.run.name,
                training={
                    "from": "scratch",
                    "epochs": len(res.rows),
                    "batchSize": res.run.batch_size,
                    "learningRate": res.run.learning_rate,
                    "optimizer": res.run.optimizer,
                    "trainImages": res.train_images,
                    "testAccuracy": round(float(ev.accuracy), 4),
                },
            )
            SS["scratch_files"] = (chosen.id, S.keras_bytes(res.model), S.tflite_bytes(res.model), *web)
    files = SS.get("scratch_files")
    if files and files[0] == chosen.id:
        st.download_button("⬇️ model.keras", files[1], file_name=f"{res.run.name}.keras", key="scratch_dl_keras")
        st.download_button("⬇️ model.tflite", files[2], file_name=f"{res.run.name}.tflite", key="scratch_dl_tflite")
        if files[3] is not None:
            st.download_button(
                "⬇️ TensorFlow.js zip (ml5.js, Teachable Machine)",
                files[3],
                file_name=f"{res.run.name}_tfjs.zip",
                key="scratch_dl_tfjs",
            )
        if files[4]:
            st.caption(plain(files[4]))  # it can quote a layer or class name
        st.caption(
            f"Input: raw pixels 0–255, {' × '.join(map(str, res.run.data.input_shape))}; output: one "
            f"probability per class in this order: {', '.join(plain(c) for c in ev.class_names)}."
        )

present.step(5)
if len(finished) == 1 and presenting:
    st.info("Train a second network to compare the two runs here.", icon="👈")
if len(finished) > 1:
    st.header("5 · Runs side by side")
    picked = settings.multiselect("Runs to compare", list(by_label), key="scratch_compare", default=list(by_label)[:2])
    st.altair_chart(
        compare_curves({label: by_label[label].result.rows for label in picked}),
        width="content",
        alt="Loss and accuracy per epoch of the chosen runs",
    )
    st.caption(
        "The overfitting lesson: train the “Overfitting” preset, then its Dropout/augmentation twin. Without "
        "them the solid validation loss turns upwards while the dashed training loss keeps falling."
    )
