"""4 · Train your own classifier: Teachable Machine for a seminar's own image collection.

Outline: (1) classes and their images, (2) train a small head on a frozen ImageNet base,
(3) how well did it learn, (4) test it on new images, (5) take it home or bring it back.
Everything the visitor adds or trains lives in their session state only.
"""
from __future__ import annotations

import re
import time

import numpy as np
import streamlit as st

from ui.router import ensure_app_shell

ensure_app_shell()  # before heavy imports: a bookmark opened first on a fresh server goes through app.py

from cnnviz.model import registry
from cnnviz.train import transfer as training
from cnnviz.charts import training as charts
from cnnviz.train.demo_data import demo_dataset
from cnnviz.train.export import ExportError, export_zip, import_zip
from cnnviz.images import ImageError, load_image
from cnnviz.text import ClassNameError, clean_class_name, plain
from cnnviz.zips import IMAGE_SUFFIXES, ZipError, iter_zip_images, plan_zip
from ui.models import shipped_model
from ui.state import add_visitor_model
from ui.widgets import image_picker, show_image

S = st.session_state
IMAGE_TYPES = sorted(s.lstrip(".") for s in IMAGE_SUFFIXES)
DECODE_SIDE = 512  # images are only needed at 224 px and for a thumbnail; decode no larger
SHOWN_THUMBS = 24
BATCHES = [8, 16, 32, 64, 128]
RATES = [0.0001, 0.0005, 0.001, 0.005, 0.01]


# --------------------------------------------------------------------------- state and helpers


def _state() -> None:
    S.setdefault("trainer_store", training.EmbeddingStore())
    S.setdefault("trainer_classes", [_new_class("Class 1"), _new_class("Class 2")])
    S.setdefault("trainer_testset", [])  # [{"file", "key", "label"}] from a zip's testing/ or the demo
    S.setdefault("trainer_run", None)
    S.setdefault("trainer_imported", [])
    S.setdefault("trainer_gen", 0)  # bumped to give uploaders fresh keys (clears them)


def _new_class(name: str) -> dict:
    S["trainer_next_id"] = S.get("trainer_next_id", 0) + 1
    return {"id": S["trainer_next_id"], "name": name, "keys": [], "files": []}


def _bump() -> None:
    S["trainer_gen"] += 1


@st.cache_resource(show_spinner=False, max_entries=2)
def _embedder(base: str):
    # Shipped base network cut at its pooling layer: identical for every visitor, so shared.
    return training.embedding_model_for(shipped_model(base))


def _base_title(base: str) -> str:
    return {"efficientnet_lite0": "EfficientNet-Lite0", "mobilenet_v2": "MobileNetV2"}.get(base, base)


def _embed(images: list[np.ndarray], base: str, label: str) -> list[str]:
    """Embed images (cached) with a progress bar; returns their content keys."""
    bar = st.progress(0.0, text=f"{label}: reading {len(images)} images with {_base_title(base)}…")
    keys, _ = training.embed_images(
        images, _embedder(base), base, store=S["trainer_store"],
        on_progress=lambda done, total: bar.progress(done / max(total, 1), text=f"{label}: {done}/{total} images embedded"),
    )
    bar.empty()
    return keys


def _add(cls: dict, named: list[tuple[str, np.ndarray]], base: str) -> int:
    """Embed and add images to a class; the same picture twice in a class is kept once."""
    if not named:
        return 0
    keys = _embed([img for _, img in named], base, f"Adding to “{plain(cls['name'])}”")
    added = 0
    for (name, _), key in zip(named, keys):
        if key not in cls["keys"]:
            cls["keys"].append(key)
            cls["files"].append(name)
            added += 1
    return added


def _decode(files) -> tuple[list[tuple[str, np.ndarray]], list[str]]:
    images, errors = [], []
    for f in files or []:
        try:
            images.append((f.name, load_image(f.getvalue(), max_side=DECODE_SIDE, name=f"“{f.name}”")))
        except ImageError as err:
            errors.append(str(err))
    return images, errors


def _class_named(name: str) -> dict:
    for cls in S["trainer_classes"]:
        if cls["name"] == name:
            return cls
    # Reuse an empty default class before adding a new card.
    for cls in S["trainer_classes"]:
        if not cls["keys"] and re.fullmatch(r"Class \d+", cls["name"]):
            cls["name"] = name
            S.pop(f"trainer_name_{cls['id']}", None)
            return cls
    cls = _new_class(name)
    S["trainer_classes"].append(cls)
    return cls


def _show_errors(errors: list[str], what: str = "Some files were skipped") -> None:
    if errors:
        with st.expander(f"⚠️ {what} ({len(errors)})", expanded=len(errors) <= 5):
            st.markdown("\n".join(f"- {plain(e)}" for e in errors[:200]) + (f"\n- … and {len(errors) - 200} more" if len(errors) > 200 else ""))


# --------------------------------------------------------------------------- page

_state()
st.title("4 · Train your own classifier")
st.markdown(
    "Teach a computer your own categories, as [Teachable Machine](https://teachablemachine.withgoogle.com/) "
    "does: give a few dozen example images per class, and a network that already learnt to see from "
    "ImageNet's 1.2 million photos turns each image into **1 280 numbers**. Only a small last layer (the "
    "*head*) is trained on those numbers — this is **transfer learning**, and it takes seconds."
)

cards = {c["name"]: c for c in registry.available() if c.get("kind") == "imagenet"}
bases = [n for n in ("efficientnet_lite0", "mobilenet_v2") if n in cards and cards[n].get("available")]
if not bases:
    st.error("No pretrained base network is available on this machine, so nothing can be trained here.")
    st.stop()
has_images = any(c["keys"] for c in S["trainer_classes"])
wanted_base = st.query_params.get("base")
if "trainer_base" not in S or S["trainer_base"] not in bases:
    S["trainer_base"] = wanted_base if wanted_base in bases else bases[0]
base = st.selectbox(
    "Pretrained base network", bases, key="trainer_base", format_func=_base_title, disabled=has_images,
    help="The network that turns each image into 1 280 numbers. Remove all images to change it.",
)
st.query_params["base"] = base
for name in ("efficientnet_lite0", "mobilenet_v2"):
    if name in cards and name not in bases:
        st.caption(f"{_base_title(name)} is not offered: {cards[name].get('reason', 'its weights are missing')}")
st.caption(f"Base model: **{_base_title(base)}** — {cards[base].get('description', '')}")

# ---------------------------------------------------------------- 1 · classes and images
st.header("1 · Your classes and images")
st.markdown("Each card is one category. Give it a name and at least a few images; you need at least two classes.")

left, right = st.columns([3, 2])
with left:
    zip_file = st.file_uploader(
        "A zip in the lesson's layout: training/<class>/… (classes) and testing/… (test images); "
        "a plain <class>/… zip works too", type=["zip"], key=f"trainer_zip_{S['trainer_gen']}",
    )
with right:
    st.write("")
    if st.button("🔷 Load the demo dataset: squares, triangles and circles", key="trainer_demo"):
        shapes = demo_dataset(30, seed=0)
        for name, images in shapes.items():
            _add(_class_named(name), [(f"{name}-{i:02d}.png", im) for i, im in enumerate(images)], base)
        tests = demo_dataset(4, seed=1)
        named = [(f"test-{name}-{i}.png", im, name) for name, ims in tests.items() for i, im in enumerate(ims)]
        keys = _embed([im for _, im, _ in named], base, "Demo test images")
        S["trainer_testset"] = [{"file": f, "key": k, "label": lab} for (f, _, lab), k in zip(named, keys)]
        st.rerun()
    st.caption("Generated on this machine (no download): 30 images per shape with random size, colour, "
               "rotation and background, plus 12 test images.")

if zip_file is not None:
    try:
        plan = plan_zip(zip_file.getvalue(), zip_name=f"“{zip_file.name}”")
    except ZipError as err:
        st.error(plain(err), icon="🚫")  # what was added before stays; remove the file to try another
    else:
        bar = st.progress(0.0, text=f"Reading {len(plan.entries)} images from {plain(zip_file.name)}…")
        chunk: list = []
        test_rows: list[dict] = []
        done = 0

        def _flush(items: list) -> None:
            keys = training.embed_images([z.image for z in items], _embedder(base), base, store=S["trainer_store"])[0]
            for z, key in zip(items, keys):
                if z.part == "training":
                    cls = _class_named(z.label)
                    if key not in cls["keys"]:
                        cls["keys"].append(key)
                        cls["files"].append(z.name)
                else:
                    test_rows.append({"file": z.path, "key": key, "label": z.label})

        for item in iter_zip_images(zip_file.getvalue(), plan, max_side=DECODE_SIDE):
            chunk.append(item)
            if len(chunk) == 32:
                _flush(chunk)
                done += len(chunk)
                chunk = []
                bar.progress(done / max(len(plan.entries), 1), text=f"{done}/{len(plan.entries)} images read")
        _flush(chunk)
        if test_rows:
            S["trainer_testset"] = test_rows
        S["trainer_zip_report"] = plan.skipped
        S["trainer_zip_summary"] = (
            f"Read “{plain(zip_file.name)}” ({plan.layout} layout): "
            f"{sum(1 for e in plan.entries if e.part == 'training')} training images in {len(plan.classes)} classes, "
            f"{len(test_rows)} test images; {len(plan.skipped)} files skipped."
        )
        _bump()
        st.rerun()
if S.get("trainer_zip_summary"):
    st.success(S["trainer_zip_summary"], icon="📦")
_show_errors(S.get("trainer_zip_report", []), "Files in the zip that were not used")

gen = S["trainer_gen"]
classes = S["trainer_classes"]
store = S["trainer_store"]
for row_start in range(0, len(classes), 3):
    for col, cls in zip(st.columns(3), classes[row_start:row_start + 3]):
        with col, st.container(border=True):
            cid = cls["id"]
            name_key = f"trainer_name_{cid}"
            S.setdefault(name_key, cls["name"])
            try:  # one line, no control characters, never blank (the rule of labels.txt)
                new_name = clean_class_name(st.text_input("Class name", key=name_key))
            except ClassNameError:
                new_name = ""
            others = {c["name"] for c in classes if c is not cls}
            if new_name and new_name not in others:
                cls["name"] = new_name
            elif new_name != cls["name"]:
                st.error("Each class needs its own, non-empty name.")
            st.markdown(f"**{len(cls['keys'])} images**")
            files = st.file_uploader("Add images", type=IMAGE_TYPES, accept_multiple_files=True,
                                     key=f"trainer_up_{cid}_{gen}")
            folder = st.file_uploader("…or a whole folder", type=IMAGE_TYPES, accept_multiple_files="directory",
                                      key=f"trainer_dir_{cid}_{gen}")
            photo = None
            if st.toggle("Use the webcam", key=f"trainer_camon_{cid}"):
                photo = st.camera_input("Take a photo", key=f"trainer_cam_{cid}_{gen}")
            incoming = list(files or []) + list(folder or []) + ([photo] if photo is not None else [])
            if incoming:
                images, errors = _decode(incoming)
                _add(cls, images, base)
                S["trainer_upload_errors"] = errors
                _bump()
                st.rerun()
            thumbs = [(k, f) for k, f in zip(cls["keys"], cls["files"]) if store.thumbnail(k) is not None]
            if thumbs:
                shown = thumbs[:SHOWN_THUMBS]
                st.image([store.thumbnail(k) for k, _ in shown], width=64,
                         alt=[f"Training image {f} of class {cls['name']}" for _, f in shown])
                if len(thumbs) > SHOWN_THUMBS:
                    st.caption(f"… and {len(thumbs) - SHOWN_THUMBS} more images.")
                drop = st.multiselect("Remove images", list(range(len(thumbs))), format_func=lambda i: thumbs[i][1],
                                      key=f"trainer_rmsel_{cid}_{gen}", placeholder="Choose images to remove")
                if drop and st.button(f"Remove {len(drop)} image(s)", key=f"trainer_rm_{cid}_{gen}"):
                    gone = {thumbs[i][0] for i in drop}
                    kept = [(k, f) for k, f in zip(cls["keys"], cls["files"]) if k not in gone]
                    cls["keys"], cls["files"] = [k for k, _ in kept], [f for _, f in kept]
                    _bump()
                    st.rerun()
            if st.button("🗑 Delete this class", key=f"trainer_del_{cid}", disabled=len(classes) <= 2,
                         help="At least two classes are needed."):
                S["trainer_classes"] = [c for c in classes if c is not cls]
                st.rerun()
_show_errors(S.pop("trainer_upload_errors", []), "Some uploads were not images this app can read")
if st.button("➕ Add a class", key="trainer_add_class"):
    taken = {c["name"] for c in classes}
    n = len(classes) + 1
    while f"Class {n}" in taken:
        n += 1
    classes.append(_new_class(f"Class {n}"))
    st.rerun()

# ---------------------------------------------------------------- 2 · training
st.header("2 · Train")
with st.expander("⚙️ Advanced settings", expanded=False):
    q = st.query_params
    epochs = st.number_input("Epochs", 1, 500, int(q.get("epochs", training.DEFAULTS["epochs"])), key="trainer_epochs")
    st.caption("An **epoch** is one pass through all training images; more epochs let the model look again "
               "and again, but too many make it memorise the training images instead of learning the category.")
    default_batch = int(q.get("batch", training.DEFAULTS["batch_size"]))
    batch_size = st.selectbox("Batch size", BATCHES, BATCHES.index(default_batch) if default_batch in BATCHES else 1,
                              key="trainer_batch")
    st.caption("The **batch size** is how many images the model sees before it adjusts its weights once; "
               "small batches mean more, noisier adjustments per epoch.")
    default_lr = float(q.get("lr", training.DEFAULTS["learning_rate"]))
    learning_rate = st.selectbox("Learning rate", RATES, RATES.index(default_lr) if default_lr in RATES else 2,
                                 format_func=lambda r: f"{r:g}", key="trainer_lr")
    st.caption("The **learning rate** is how big each adjustment is: too large and training jumps around "
               "without settling, too small and it needs many more epochs.")
    st.caption(f"15 % of each class is held out for validation (fixed seed {training.DEFAULTS['seed']}): "
               "the model never trains on those images, so they show how it does on new ones.")
    for k, v, d in (("epochs", epochs, training.DEFAULTS["epochs"]), ("batch", batch_size, training.DEFAULTS["batch_size"]),
                    ("lr", learning_rate, training.DEFAULTS["learning_rate"])):
        if v != d:
            st.query_params[k] = str(v)
        elif k in st.query_params:
            del st.query_params[k]

usable = [c for c in S["trainer_classes"] if c["keys"]]
problems = []
if len(usable) < 2:
    problems.append("Add images to at least two classes.")
if any(len(c["keys"]) < 2 for c in usable):
    problems.append("Every class with images needs at least two (one to train on, one to check).")
for p in problems:
    st.info(p, icon="ℹ️")

run = S["trainer_run"]


def _finish(run: dict, *, stopped: bool) -> None:
    """Evaluate the head, build the full model and register it for this visitor's other pages."""
    head, emb = run["head"], _embedder(run["base"])
    x, y, val = run["x"], run["y"], run["val_idx"]
    judged = val if len(val) else run["train_idx"]
    run["eval"] = training.evaluate(training.head_probabilities(head, x[judged]), y[judged], run["classes"])
    run["judged_on"] = "validation" if len(val) else "training"
    run["judged_keys"] = [run["keys"][i] for i in judged]
    run["history"].stopped = stopped or run["history"].stopped
    run["model"] = training.full_model(emb, head, name=re.sub(r"\W+", "_", run["name"]).strip("_") or "classifier")
    run["card"] = {
        "name": run["name"], "title": f"Your model · {run['name']}", "kind": "visitor", "classes": run["classes"],
        "input_size": [int(d) for d in run["model"].input_shape[1:3]], "channels": 3, "base": run["base"],
        "test_accuracy": run["eval"].accuracy,
        "description": f"Trained here on {len(x)} images ({_base_title(run['base'])} base + a small head, "
                       f"{len(run['history'].rows)} epochs).",
    }
    run["registered"] = add_visitor_model(run["name"], run["model"], run["card"])
    run["finished"] = True
    S.pop("trainer_export", None)


if run is not None and not run["finished"]:
    # A training interrupted by Stop (or any other click) keeps what it learnt so far.
    if run["history"].rows:
        _finish(run, stopped=True)
    else:
        S["trainer_run"] = run = None
        st.info("Training was cancelled before its first epoch finished.", icon="⏹")

start = st.button("▶️ Train the model", type="primary", disabled=bool(problems), key="trainer_train")
if start:
    keys = [k for c in usable for k in c["keys"]]
    labels = np.array([i for i, c in enumerate(usable) for _ in c["keys"]])
    missing = [k for k in keys if store.embedding(k, base) is None]
    if missing:
        st.error(f"{len(missing)} images are no longer in memory (the store keeps at most "
                 f"{store.max_images:,}); please add them again.")
        st.stop()
    x = np.stack([store.embedding(k, base) for k in keys])
    train_idx, val_idx = training.stratified_split(labels, training.DEFAULTS["validation_fraction"], training.DEFAULTS["seed"])
    n_runs = S.get("trainer_runs", 0) + 1
    S["trainer_runs"] = n_runs
    run = {
        "name": f"My classifier {n_runs}", "base": base, "classes": [c["name"] for c in usable], "keys": keys,
        "x": x, "y": labels, "train_idx": train_idx, "val_idx": val_idx, "finished": False,
        "settings": {"epochs": int(epochs), "batch_size": int(batch_size), "learning_rate": float(learning_rate)},
        "head": training.build_head(x.shape[1], len(usable), seed=training.DEFAULTS["seed"]),
        "history": training.History(),
    }
    S["trainer_run"] = run  # kept even if the visitor stops the run half way
    st.button("⏹ Stop training", key="trainer_stop", help="Stops after the current epoch; the model keeps what it learnt.")
    waiting = st.empty()
    with training.training_slot(on_wait=lambda s: waiting.warning(
            f"⏳ Waiting for a free slot: {training.MAX_CONCURRENT_TRAININGS} trainings are already running "
            f"on this server ({s:.0f} s so far).")):
        waiting.empty()
        progress = st.progress(0.0, text="Starting…")
        chart_slot = st.empty()
        began = time.perf_counter()
        # Built once; each epoch only swaps in the new rows (rebuilding costs more than the epoch).
        curves = charts.training_curves([], epochs=run["settings"]["epochs"]).to_dict()

        def on_epoch(row: dict) -> None:
            val = f" · validation accuracy {row['val_accuracy']:.0%}" if row["val_accuracy"] is not None else ""
            progress.progress(row["epoch"] / run["settings"]["epochs"],
                              text=f"Epoch {row['epoch']}/{run['settings']['epochs']} · "
                                   f"{time.perf_counter() - began:.1f} s elapsed{val}")
            chart_slot.vega_lite_chart(spec=charts.with_rows(curves, run["history"].rows), width="content",
                                       alt="Training and validation loss and accuracy per epoch")

        training.train_head(run["head"], x[train_idx], labels[train_idx], x[val_idx], labels[val_idx],
                            **run["settings"], seed=training.DEFAULTS["seed"], on_epoch=on_epoch, history=run["history"])
    _finish(run, stopped=False)
    st.rerun()

# ---------------------------------------------------------------- 3 · results
run = S["trainer_run"]
if run is not None and run.get("finished"):
    st.header("3 · How well did it learn?")
    hist, ev = run["history"], run["eval"]
    last = hist.last or {}
    st.markdown(
        f"**{plain(run['registered'])}** — base model **{_base_title(run['base'])}**, "
        f"{len(hist.rows)} of {hist.epochs_planned} epochs"
        + (" (stopped early)" if hist.stopped else "")
        + f", {last.get('seconds', 0):.1f} s of training, {len(run['x'])} images "
        f"({len(run['train_idx'])} to train on, {len(run['val_idx'])} held out)."
    )
    cols = st.columns(3)
    cols[0].metric(f"Accuracy on {run['judged_on']} images", f"{ev.accuracy:.0%}")
    cols[1].metric("Training accuracy (last epoch)", f"{last.get('accuracy', 0):.0%}")
    cols[2].metric("Misclassified", f"{len(ev.misclassified)} of {len(ev.labels)}")
    st.altair_chart(charts.training_curves(hist.rows, epochs=hist.epochs_planned), width="content",
                    alt="Training and validation loss and accuracy per epoch")
    st.caption("Look at the orange validation curves: if they flatten or rise while the blue training curves keep "
               "improving, the model has started memorising its training images.")
    if run["judged_on"] == "training":
        st.warning("No class had enough images to hold any out, so these numbers are on the training images "
                   "and are too optimistic.")
    left, right = st.columns([2, 3])
    with left:
        st.subheader("Per-class accuracy")
        st.dataframe(
            {"class": ev.class_names, "images": ev.confusion.sum(axis=1).tolist(),
             "accuracy": [None if np.isnan(a) else round(float(a), 3) for a in ev.per_class_accuracy]},
            hide_index=True, column_config={"accuracy": st.column_config.ProgressColumn("accuracy", min_value=0, max_value=1, format="percent")},
        )
        st.caption("A class with a low score is one the model cannot yet tell from the others: add more varied examples.")
    with right:
        st.altair_chart(charts.confusion_matrix(ev.confusion, ev.class_names), width="content",
                        alt=f"Confusion matrix of {run['registered']} on the {run['judged_on']} images")
        st.caption("Numbers on the diagonal were classified correctly; a number off the diagonal shows which class "
                   "the model confused with which.")
    st.subheader("Misclassified images")
    if not ev.misclassified:
        st.success(f"Every {run['judged_on']} image was classified correctly.")
    else:
        grid = st.columns(6)
        for i, idx in enumerate(ev.misclassified[:24]):
            key = run["judged_keys"][idx]
            probs = ev.probabilities[idx]
            true, pred = ev.class_names[ev.labels[idx]], ev.class_names[int(probs.argmax())]
            thumb = store.thumbnail(key)
            with grid[i % 6]:
                if thumb is not None:
                    show_image(thumb, alt=f"A {true} image the model called {pred}",
                               caption=f"{plain(true)} → {plain(pred)} ({probs.max():.0%})", width=160)
        st.caption("Under each image: its true class → what the model said, and how sure it was. "
                   "Are these images unusual, or mislabelled?")


# ---------------------------------------------------------------- 4 · test
def _models_to_test() -> dict[str, dict]:
    found = {}
    if run is not None and run.get("finished"):
        found[run["registered"]] = {"model": run["model"], "classes": run["classes"], "base": run["base"], "head": run["head"]}
    for item in S["trainer_imported"]:
        found[item["name"]] = {"model": item["model"], "classes": item["card"]["classes"], "base": item["card"].get("base"), "head": None}
    return found


def _probabilities(chosen: dict, images: list[np.ndarray]) -> np.ndarray:
    if chosen["head"] is not None:  # embeddings are cached: a second look at a picture is instant
        _, feats = training.embed_images(images, _embedder(chosen["base"]), chosen["base"], store=store)
        return training.head_probabilities(chosen["head"], feats)
    return training.predict_probabilities(chosen["model"], images)


testable = _models_to_test()
if testable:
    st.header("4 · Test it on new images")
    which = st.selectbox("Model to test", list(testable)[::-1], key="trainer_test_model")
    chosen = testable[which]
    st.caption(f"Base model: **{_base_title(chosen['base'] or 'unknown')}** · classes: {', '.join(plain(c) for c in chosen['classes'])}")
    one, many = st.columns(2)
    with one:
        st.subheader("One image")
        name, image = image_picker("trainer_test", label="Image to test", query_param=None)
        probs = _probabilities(chosen, [image])[0]
        a, b = st.columns([1, 2])
        with a:
            show_image(image, alt=f"Test image {name}", caption=plain(name))
        with b:
            st.altair_chart(charts.probability_bars(probs, chosen["classes"]), width="content",
                            alt=f"{which} says {chosen['classes'][int(probs.argmax())]} with {probs.max():.0%}")
        st.caption("The blue bar is the model's answer; the bars always add up to 100 %, even for an image "
                   "that belongs to none of the classes.")
    with many:
        st.subheader("A batch → table and CSV")
        batch_files = st.file_uploader("Images", type=IMAGE_TYPES, accept_multiple_files=True, key=f"trainer_batch_{gen}")
        batch_dir = st.file_uploader("…or a folder", type=IMAGE_TYPES, accept_multiple_files="directory",
                                     key=f"trainer_batchdir_{gen}")
        testset = S["trainer_testset"]
        use_testset = bool(testset) and chosen["head"] is not None and chosen["base"] == base and st.button(
            f"Use the {len(testset)} test images (zip's testing/ folder or demo)", key="trainer_use_testset")
        if batch_files or batch_dir:
            images, errors = _decode(list(batch_files or []) + list(batch_dir or []))
            _show_errors(errors)
            if images:
                S["trainer_batch_result"] = (which, [n for n, _ in images], _probabilities(chosen, [im for _, im in images]), None)
        if use_testset:
            feats = np.stack([store.embedding(r["key"], base) for r in testset])
            S["trainer_batch_result"] = (which, [r["file"] for r in testset],
                                         training.head_probabilities(chosen["head"], feats), [r["label"] for r in testset])
        result = S.get("trainer_batch_result")
        if result and result[0] == which:
            _, names, probs, labels = result
            rows = training.prediction_rows(names, probs, chosen["classes"])
            if labels and any(labels):
                known = [(r["predicted class"], lab) for r, lab in zip(rows, labels) if lab]
                st.markdown(f"**{sum(p == t for p, t in known)} of {len(known)}** labelled test images classified correctly.")
            st.dataframe(rows, hide_index=True, height=min(400, 38 + 35 * len(rows)))
            st.download_button("⬇️ Download the table (CSV)", training.rows_to_csv(rows), file_name="predictions.csv",
                               mime="text/csv", key="trainer_csv")
            st.caption("One row per image: the predicted class, how sure the model is, and every class's probability.")

# ---------------------------------------------------------------- 5 · export / import
st.header("5 · Take it home, bring it back")
if run is not None and run.get("finished"):
    st.markdown(f"The zip holds **{plain(run['registered'])}** (base {_base_title(run['base'])} + head) as `model.keras` and "
                "`model.tflite`, with `labels.txt`, `metadata.json` and a README with a Python example.")
    if st.button("📦 Prepare the export zip", key="trainer_prepare_export"):
        with st.spinner("Saving the model as .keras and converting it to TFLite (about 10 s)…"):
            ev = run["eval"]
            S["trainer_export"] = export_zip(
                run["model"], run["classes"], base_model=run["base"], model_name=run["registered"],
                training={**run["settings"], "epochs_run": len(run["history"].rows), "images": int(len(run["x"])),
                          f"{run['judged_on']}_accuracy": ev.accuracy},
            )
    if S.get("trainer_export"):
        slug = re.sub(r"[^a-z0-9]+", "-", run["registered"].lower()).strip("-")
        st.download_button("⬇️ Download the model zip", S["trainer_export"], file_name=f"{slug}.zip",
                           mime="application/zip", key="trainer_download", type="primary")
else:
    st.caption("Train a model first to export it.")
imported = st.file_uploader("Import a model zip exported from this page", type=["zip"], key=f"trainer_import_{gen}")
if imported is not None:
    try:
        with st.spinner("Checking and loading the model…"):
            from ui.state import visitor_models  # local: keeps this edit to the import block
            model, card = import_zip(imported.getvalue(), filename=f"“{imported.name}”",
                                     kept_params=registry.kept_upload_params(visitor_models().values()))
    except ExportError as err:
        st.error(plain(err), icon="🚫")
    else:
        registered = add_visitor_model(card["name"], model, card)
        S["trainer_imported"].append({"name": registered, "model": model, "card": card})
        _bump()
        st.rerun()
for item in S["trainer_imported"]:
    st.caption(f"Imported: **{plain(item['name'])}** — base {plain(_base_title(item['card'].get('base') or 'unknown'))}, "
               f"classes {', '.join(plain(c) for c in item['card']['classes'])}. Test it above; it is also in the feature-map and audit pages.")
