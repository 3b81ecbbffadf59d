"""4 · Train your own classifier: Teachable Machine for a seminar's own image collection.

Outline: (1) classes and their images, (2) train a small head on a frozen ImageNet base (a
background job: the page stays usable), (3) how well did it learn, (4) test it on new images,
(5) take it home or bring it back. The rules live in cnnviz.train.session; the widgets in ui.trainer.
Everything the visitor adds or trains lives in their session only.
"""

from __future__ import annotations

import re

import streamlit as st

from ui.router import ensure_app_shell

ensure_app_shell()  # before heavy imports: a bookmark opened first on a fresh server goes through app.py

from cnnviz.charts import training as charts  # noqa: E402
from cnnviz.images import IMAGE_TYPES  # noqa: E402
from cnnviz.model import registry  # noqa: E402
from cnnviz.text import plain  # noqa: E402
from cnnviz.train import transfer  # noqa: E402
from cnnviz.train.export import ExportError, export_zip, import_zip  # noqa: E402
from ui import first_screen, present, settings  # noqa: E402
from ui import trainer as tr  # noqa: E402
from ui.state import add_visitor_model, pixel_budget  # noqa: E402
from ui.widgets import image_picker, show_image  # noqa: E402

BATCHES = [8, 16, 32, 64, 128]
RATES = [0.0001, 0.0005, 0.001, 0.005, 0.01]
S = st.session_state
trainer = tr.session()
gen = S[tr.GEN]
tr.collect_finished(trainer)

st.title("4 · Train your own classifier")
present.explain(
    "Teach a computer your own categories, as [Teachable Machine](https://teachablemachine.withgoogle.com/) "
    "does: give a few dozen example images per class, and a network that already learnt to see from "
    "ImageNet's 1,281,167 training photos turns each image into **1 280 numbers**. Only a small last layer (the "
    "*head*) is trained on those numbers — this is **transfer learning**, and it takes seconds."
)
present.step(1)
# Presenter mode: before any image is added the page has no picture; the hall sees the demo set's
# (or the cards' own) pictures on the left of the first screen, the controls beside them.
presenting = present.presenting()
picture_side, control_side = st.columns([1, 1], gap="large") if presenting else (None, st.container())
with control_side:
    cards = {c["name"]: c for c in registry.available() if c.get("kind") == "imagenet"}
    bases = [n for n in ("efficientnet_lite0", "mobilenet_v2") if n in cards and cards[n].get("available")]
    if not bases:
        st.error("No pretrained base network is available on this machine, so nothing can be trained here.")
        st.stop()
    base = settings.selectbox(
        "Pretrained base network",
        bases,
        key="trainer_base",
        url="base",
        format_func=tr.base_title,
        disabled=trainer.has_images,
        help="The network that turns each image into 1 280 numbers. Remove all images to change it.",
    )
    for name in cards:
        if name not in bases:
            st.caption(f"{tr.base_title(name)} is not offered: {cards[name].get('reason', 'its weights are missing')}")
    st.caption(f"Base model: **{tr.base_title(base)}** — {cards[base].get('description', '')}")
    embed = tr.embed_with(trainer, base)
    st.header("1 · Your classes and images")
    st.markdown("Each card is one category. Give it a name and at least a few images; you need at least two classes.")
    left, right = (control_side, control_side) if presenting else st.columns([3, 2])
    zip_file = left.file_uploader(
        "A zip in the lesson's layout: training/<class>/… (classes) and testing/… (test images); "
        "a plain <class>/… zip works too",
        type=["zip"],
        key=f"trainer_zip_{gen}",
    )
    if right.button("🔷 Load the demo dataset: squares, triangles and circles", key="trainer_demo"):
        if tr.in_pool(embed, "Reading the demo dataset", lambda: trainer.load_demo(embed)):
            st.rerun()
    right.caption(
        "Generated on this machine (no download): 30 images per shape with random size, colour, "
        "rotation and background, plus 12 test images."
    )
if picture_side is not None:
    with picture_side:
        first_screen.trainer_picture(trainer)
refused = S.setdefault("trainer_zip_refused", {})  # file id -> its one sentence: not read again on every run
if zip_file is not None and zip_file.file_id in refused:
    st.error(plain(refused[zip_file.file_id]), icon="🚫")  # what was added before stays; remove the file to try another
elif zip_file is not None:
    budget, data, zip_name = pixel_budget(), zip_file.getvalue(), zip_file.name
    sentences: list[str] = []
    if tr.in_pool(
        embed,
        f"Reading {zip_name}",
        lambda: trainer.add_zip(data, zip_name, embed, budget=budget),
        on_cancel=tr.fresh_uploaders,
        refusals=sentences,
    ):
        tr.fresh_uploaders()
        st.rerun()
    if sentences:
        refused[zip_file.file_id] = sentences[0]
if trainer.zip_summary:
    st.success(plain(trainer.zip_summary), icon="📦")
tr.skipped_list(trainer.skipped, "Files that were not used")
tr.keep_originals_toggle()
for row_start in range(0, len(trainer.classes), 3):
    for col, cls in zip(st.columns(3), trainer.classes[row_start : row_start + 3]):
        with col, st.container(border=True):
            tr.class_card(trainer, cls, embed)
tr.skipped_list(S.pop("trainer_upload_errors", []), "Some uploads were not images this app can read")
if st.button("➕ Add a class", key="trainer_add_class"):
    trainer.add_class()
    st.rerun()
if trainer.has_images:
    tr.dataset_check(trainer.dataset_check(base))

# ---------------------------------------------------------------- 2 · training
present.step(2)
st.header("2 · Train")
d = transfer.DEFAULTS
with st.expander("⚙️ Advanced settings", expanded=False):
    epochs = settings.number_input("Epochs", 1, 500, key="trainer_epochs", default=d.epochs, url="epochs")
    st.caption(
        "An **epoch** is one pass through all training images; more epochs let the model look again "
        "and again, but too many make it memorise the training images instead of learning the category."
    )
    batch_size = settings.selectbox("Batch size", BATCHES, key="trainer_batch", default=d.batch_size, url="batch")
    st.caption(
        "The **batch size** is how many images the model sees before it adjusts its weights once; "
        "small batches mean more, noisier adjustments per epoch."
    )
    learning_rate = settings.selectbox(
        "Learning rate", RATES, key="trainer_lr", default=d.learning_rate, url="lr", format_func=lambda r: f"{r:g}"
    )
    st.caption(
        "The **learning rate** is how big each adjustment is: too large and training jumps around "
        "without settling, too small and it needs many more epochs."
    )
    st.caption(
        f"15 % of each class (rounded up, as Teachable Machine does) is held out for validation (fixed seed "
        f"{d.seed}): the model never trains on those images, so they show how it does on new ones."
    )
for problem in trainer.problems():
    st.info(problem, icon="ℹ️")
job = S.get(tr.JOB)
if st.button(
    "▶️ Train the model", type="primary", disabled=bool(trainer.problems()) or job is not None, key="trainer_train"
):
    tr.start_training(
        trainer, base, {"epochs": int(epochs), "batch_size": int(batch_size), "learning_rate": float(learning_rate)}
    )
    job = S.get(tr.JOB)
if job is not None:
    tr.live_training(job, int(trainer.run.settings["epochs"]) if trainer.run else int(epochs))

# ---------------------------------------------------------------- 3 · results
run = trainer.run
present.step(3)
if run is not None and run.finished:
    st.header("3 · How well did it learn?")
    tr.results(trainer, run)
elif presenting:
    st.info("Train a model first (step 2): how well it learnt is shown here.", icon="👈")
threshold = tr.unsure_threshold() if run is not None and run.finished and run.test else None
if threshold is not None and run is not None:
    st.markdown(
        "**All test images as a table (CSV)**: file, folder, true class, predicted class, confidence, "
        "correct, unsure and one probability per class."
    )
    st.download_button(
        "⬇️ Download the test results (CSV)",
        transfer.rows_to_csv(trainer.test_rows(run, threshold)),
        file_name="test-results.csv",
        mime="text/csv",
        key="trainer_test_csv",
    )
if run is not None and run.finished:
    st.markdown(f"**{plain(run.name)}** is also offered on the feature-map and audit pages, for you only.")
    tr.open_elsewhere(run.name)

# ---------------------------------------------------------------- 4 · test
testable = {item["name"]: item for item in S.setdefault("trainer_imported", [])}
if run is not None and run.finished:
    testable[run.name] = {"name": run.name, "model": run.model, "card": run.card, "head": run.head}
present.step(4)
if not testable and presenting:
    st.info("Train or import a model first: you can test it on new images here.", icon="👈")
if testable:
    st.header("4 · Test it on new images")
    if threshold is None:
        threshold = tr.unsure_threshold()
    which = st.selectbox("Model to test", list(testable)[::-1], key="trainer_test_model")
    chosen = testable[which]
    classes = chosen["card"]["classes"]
    st.caption(
        f"Base model: **{tr.base_title(chosen['card'].get('base'))}** · classes: "
        + ", ".join(plain(c) for c in classes)
    )
    one, many = st.columns(2)
    with one:
        st.subheader("One image")
        name, image = image_picker("trainer_test", label="Image to test", query_param=None)
        probs = transfer.predict_probabilities(chosen["model"], [image])[0]
        a, b = st.columns([1, 2])
        with a:
            show_image(image, alt=f"Test image {name}", caption=plain(name))
        with b:
            st.altair_chart(
                charts.probability_bars(probs, classes),
                width="content",
                alt=f"{which} says {classes[int(probs.argmax())]} with {probs.max():.0%}",
            )
        st.caption(
            "The blue bar is the model's answer; the bars always add up to 100 %, even for an image "
            "that belongs to none of the classes."
        )
    with many:
        st.subheader("A batch → table and CSV")
        batch_files = st.file_uploader(
            "Images", type=IMAGE_TYPES, accept_multiple_files=True, key=f"trainer_batch_{gen}"
        )
        batch_dir = st.file_uploader(
            "…or a folder", type=IMAGE_TYPES, accept_multiple_files="directory", key=f"trainer_batchdir_{gen}"
        )
        testset = trainer.testset
        use_testset = (
            bool(testset)
            and chosen.get("head") is not None
            and st.button(
                f"Use the {len(testset)} test images (zip's testing/ folder or demo)", key="trainer_use_testset"
            )
        )
        if batch_files or batch_dir:
            images, errors = tr.decode(list(batch_files or []) + list(batch_dir or []))
            tr.skipped_list(errors, "Some files were skipped")
            if images:
                S["trainer_batch_result"] = (
                    which,
                    [n for n, _ in images],
                    transfer.predict_probabilities(chosen["model"], [im for _, im in images]),
                    None,
                )
        if use_testset and run is not None:  # only the current run's entry has a head
            try:
                S["trainer_batch_result"] = (
                    which,
                    [t.file for t in testset],
                    transfer.head_probabilities(chosen["head"], trainer.test_embeddings(run.base)),
                    [t.label for t in testset],
                )
            except ValueError as err:  # some test images were dropped from memory
                st.info(str(err), icon="ℹ️")
        result = S.get("trainer_batch_result")
        if result and result[0] == which:
            _, names, probs, labels = result
            rows = transfer.prediction_rows(
                [n.rsplit("/", 1)[-1] for n in names],
                probs,
                classes,
                threshold=threshold,
                true_classes=[lab if lab in classes else None for lab in labels or [None] * len(names)],
                folders=[n.rsplit("/", 1)[0] if "/" in n else "" for n in names],
            )
            known = [r for r in rows if r["true class"]]
            if known:
                st.markdown(
                    f"**{sum(r['correct'] for r in known)} of {len(known)}** labelled test images classified correctly."
                )
            st.dataframe(rows, hide_index=True, height=min(400, 38 + 35 * len(rows)))
            st.download_button(
                "⬇️ Download the table (CSV)",
                transfer.rows_to_csv(rows),
                file_name="predictions.csv",
                mime="text/csv",
                key="trainer_csv",
            )
            st.caption(
                "One row per image: the predicted class, how sure the model is, and every class's probability; "
                "“unsure” uses the confidence chosen above."
            )

# ---------------------------------------------------------------- 5 · export / import
present.step(5)
st.header("5 · Take it home, bring it back")
if run is not None and run.finished:
    st.markdown(
        f"The zip holds **{plain(run.name)}** (base {tr.base_title(run.base)} + head) as `model.keras`, "
        "`model.tflite` and, in the folder `model/`, a TensorFlow.js model (`model.json`, `weights.bin`, "
        "`metadata.json`) that ml5.js and Teachable Machine's library load as the lesson does; with "
        "`labels.txt`, a p5 sketch (`index.html` + `sketch.js`) that classifies `example.png` (one of your "
        "test images when there are any), and a README with a Python example."
    )
    if st.button("📦 Prepare the export zip", key="trainer_prepare_export"):
        with st.spinner("Saving the model as .keras, TFLite and TensorFlow.js (about 10 s)…"):
            S["trainer_export"] = export_zip(
                run.model,
                run.classes,
                base_model=run.base,
                model_name=run.name,
                training=trainer.training_info(run),
                example_image=trainer.example,
            )
    if S.get("trainer_export"):
        slug = re.sub(r"[^a-z0-9]+", "-", run.name.lower()).strip("-") or "model"
        st.download_button(
            "⬇️ Download the model zip",
            S["trainer_export"],
            file_name=f"{slug}.zip",
            mime="application/zip",
            key="trainer_download",
            type="primary",
        )
else:
    st.caption("Train a model first to export it.")
imported = st.file_uploader("Import a model zip exported from this page", type=["zip"], key=f"trainer_import_{gen}")
if imported is not None:
    try:
        with st.spinner("Checking and loading the model…"):
            from ui.state import visitor_models  # local: keeps this edit to the import block

            model, card = import_zip(
                imported.getvalue(),
                filename=f"“{imported.name}”",
                kept_params=registry.kept_upload_params(visitor_models().values()),
            )
    except ExportError as err:
        st.error(plain(err), icon="🚫")
    else:
        card["name"] = add_visitor_model(card["name"], model, card)
        S["trainer_imported"].append({"name": card["name"], "model": model, "card": card, "head": None})
        tr.fresh_uploaders()
        st.rerun()
for item in S["trainer_imported"]:
    st.caption(
        f"Imported: **{plain(item['name'])}** — base {tr.base_title(item['card'].get('base'))}, classes "
        f"{', '.join(plain(c) for c in item['card']['classes'])}. Test it above; it is also in the "
        "feature-map and audit pages."
    )
