"""Page 5 · Audit where it fails: the Programming Historian lesson's last question as an experiment.

Lecture outline: (1) choose a model, (2) name a reference set (what the model is meant for) and
probe sets (abstract works, non-paintings, generated probes), (3) run the audit, (4) read the
measures one by one — labels, confidence, out-of-distribution scores, abstaining, calibration —,
(5) look at the most confident failures with Grad-CAM, (6) change only the style of one image,
(7) take the report home. Computation lives in cnnviz.audit.measures / cnnviz.audit.run / cnnviz.audit.report.
"""
from __future__ import annotations

import hashlib
from pathlib import PurePosixPath

import numpy as np
import pandas as pd
import streamlit as st

from ui.router import ensure_app_shell

ensure_app_shell()  # before heavy imports: a bookmark opened first on a fresh server goes through app.py

from cnnviz.audit import measures as audit
from cnnviz.audit import probes
from cnnviz.audit import report
from cnnviz.model import registry
from cnnviz.charts import audit as charts
from cnnviz.train.demo_data import DEMO_CLASSES, demo_dataset
from cnnviz.images import ImageError, load_image, sample_images
from cnnviz.audit.sets import read_set_zip, set_side
from cnnviz.text import plain
from cnnviz.zips import IMAGE_SUFFIXES, ZipError
from ui.models import image_model_picker
from ui.widgets import image_picker, show_image

S = st.session_state
IMAGE_TYPES = sorted(s.lstrip(".") for s in IMAGE_SUFFIXES)
DECODE_SIDE = 512  # the models see at most 224 px; decoding larger only costs memory
MAX_SET_IMAGES = 500  # per set: an audit of a seminar's sample, not of a whole archive
THUMB = 96

GENERATED = "Generated pictures (seeded)"
SHAPES = "Generated shapes (squares, triangles, circles)"
SAMPLES = "The app's sample images"
TRAINER = "My trainer's validation images"
UPLOAD = "Upload images or a folder"
ZIP = "Upload a zip (class folders)"
CAMERA = "Camera"
REFERENCE_SOURCES = [SHAPES, GENERATED, SAMPLES, UPLOAD, ZIP]
PROBE_SOURCES = [GENERATED, UPLOAD, ZIP, CAMERA]
ABSTRACT = ["Mondrian grid", "Rothko colour fields", "Kandinsky circles and lines", "Pollock drips"]


# --------------------------------------------------------------------------- URL settings
def _from_url(key: str, param: str, default, cast=str, options=None) -> None:
    """Seed a widget from the URL on the first visit (a lecturer's saved link)."""
    if key in S:
        return
    raw = st.query_params.get(param)
    try:
        value = cast(raw) if raw is not None else default
    except ValueError:
        value = default
    S[key] = value if options is None or value in options else default


def _md(text) -> str:
    """A visitor's name shown as text in Markdown: no links, emphasis or HTML can be smuggled in."""
    return plain(text)


def _to_url(param: str, value) -> None:
    st.query_params[param] = str(value)


# --------------------------------------------------------------------------- image sets
def _label_of(name: str | None, classes: list[str]) -> int | None:
    """Index of a folder/kind name among the model's classes (case-insensitive), else None."""
    if not name:
        return None
    lower = [c.lower() for c in classes]
    return lower.index(name.lower()) if name.lower() in lower else None


def _with_labels(files, images, names, classes) -> dict:
    labels = [_label_of(n, classes) for n in names]
    # Accuracy and calibration only make sense when every image's true class is one of the model's.
    known = len(labels) > 0 and all(label is not None for label in labels)
    return {"files": files, "images": images, "labels": np.array(labels, dtype=np.int64) if known else None}


def _decode_uploads(uploads, key: str) -> tuple[list[str], list[np.ndarray]]:
    """Decode uploaded images once per file (kept in this visitor's session); bad files get a sentence."""
    cache = S.setdefault(f"{key}_decoded", {})
    files, images, problems = [], [], []
    for up in uploads or []:
        if up.file_id not in cache:
            try:
                cache[up.file_id] = (up.name, load_image(up.getvalue(), max_side=DECODE_SIDE, name=f"“{up.name}”"))
            except ImageError as err:
                cache[up.file_id] = (up.name, str(err))
        name, image = cache[up.file_id]
        if isinstance(image, str):
            problems.append(image)
        else:
            files.append(name)
            images.append(image)
    for problem in problems[:5]:
        st.error(plain(problem), icon="🚫")
    if len(problems) > 5:
        st.error(f"… and {len(problems) - 5} more files could not be read.", icon="🚫")
    return files[:MAX_SET_IMAGES], images[:MAX_SET_IMAGES]


def _zip_set(upload, key: str, classes: list[str]) -> dict | None:
    if upload is None:
        return None
    cache = S.setdefault(f"{key}_zip", {})
    if upload.file_id not in cache:
        try:
            # Kept at the model's size (``card`` is the page's chosen model), never as full decodes.
            cache[upload.file_id] = read_set_zip(upload.getvalue(), zip_name=f"“{upload.name}”",
                                                 side=set_side(card), max_images=MAX_SET_IMAGES)
        except ZipError as err:
            cache[upload.file_id] = str(err)
    found = cache[upload.file_id]
    if isinstance(found, str):
        st.error(plain(found), icon="🚫")
        return None
    items, skipped = found
    if skipped:
        with st.expander(f"{len(skipped)} files in the zip were not used"):
            st.markdown("\n".join(f"- {plain(s)}" for s in skipped[:50]))
    if not items:
        st.error("The zip holds no usable images (PNG, JPEG, WebP, BMP, GIF or TIFF).", icon="🚫")
        return None
    return _with_labels([i.path for i in items], [i.image for i in items], [i.label for i in items], classes)


def _generated_set(key: str, classes: list[str], default_kinds: list[str], default_seed: int) -> dict | None:
    _from_url(f"{key}_kinds", f"{key}_kinds", default_kinds, lambda raw: [k for k in raw.split(",") if k in probes.GENERATORS])
    _from_url(f"{key}_count", f"{key}_n", 24, int)
    _from_url(f"{key}_seed", f"{key}_seed", default_seed, int)
    kinds = st.multiselect("Kinds of picture", list(probes.GENERATORS), key=f"{key}_kinds")
    a, b = st.columns(2)
    count = a.slider("How many", 4, 100, step=4, key=f"{key}_count")
    seed = b.number_input("Seed (same seed, same pictures)", 0, 1_000_000, step=1, key=f"{key}_seed")
    _to_url(f"{key}_kinds", ",".join(kinds))
    _to_url(f"{key}_n", count)
    _to_url(f"{key}_seed", seed)
    if not kinds:
        st.info("Choose at least one kind of picture.", icon="ℹ️")
        return None
    made = probes.probe_set(kinds, int(count), size=(224, 224), seed=int(seed))
    return _with_labels(list(made), list(made.values()), [n.rsplit(" #", 1)[0] for n in made], classes)


def _trainer_set(model_name: str, classes: list[str]) -> dict | None:
    run, store = S.get("trainer_run"), S.get("trainer_store")
    if not run or not run.get("finished") or store is None:
        st.info("Train a model on page 4 first; its validation images then appear here.", icon="ℹ️")
        return None
    if run.get("registered") != model_name:
        st.info(f"These are the validation images of “{_md(run.get('registered'))}”; choose that model above to use them.", icon="ℹ️")
        return None
    keys = run.get("judged_keys") or []
    judged = run["val_idx"] if len(run["val_idx"]) else run["train_idx"]
    pairs = [(k, int(run["y"][i])) for k, i in zip(keys, judged) if store.thumbnail(k) is not None]
    if not pairs:
        st.info("The trainer's images are no longer in memory; please add them again on page 4.", icon="ℹ️")
        return None
    st.caption(f"{len(pairs)} images the model never trained on (kept as {THUMB}-pixel thumbnails, so the model sees them a little blurred).")
    return {"files": [f"validation {i + 1} ({run['classes'][y]})" for i, (_, y) in enumerate(pairs)],
            "images": [store.thumbnail(k) for k, _ in pairs], "labels": np.array([y for _, y in pairs])}


def image_set_input(key: str, sources: list[str], classes: list[str], *, default_name: str, default_kinds: list[str],
                    default_seed: int, model_name: str) -> tuple[str, dict | None]:
    """Name and fill one image set from the chosen source; returns ``(name, set)`` (set None when empty)."""
    _from_url(f"{key}_source", f"{key}_src", sources[0], str, sources)
    if S[f"{key}_source"] not in sources:  # e.g. "trainer's images" after switching to a shipped model
        S[f"{key}_source"] = sources[0]
    _from_url(f"{key}_name", f"{key}_name", default_name)
    name = st.text_input("Name of this set", key=f"{key}_name", max_chars=60).strip() or default_name
    source = st.selectbox("Images from", sources, key=f"{key}_source")
    _to_url(f"{key}_src", source)
    _to_url(f"{key}_name", name)
    if source == GENERATED:
        return name, _generated_set(key, classes, default_kinds, default_seed)
    if source == SHAPES:
        _from_url(f"{key}_count", f"{key}_n", 8, int)
        per_class = st.slider("Images per shape", 2, 40, key=f"{key}_count")
        _to_url(f"{key}_n", per_class)
        data = demo_dataset(int(per_class), size=128, seed=0)
        files = [f"{shape} {i + 1}" for shape in DEMO_CLASSES for i in range(len(data[shape]))]
        images = [img for shape in DEMO_CLASSES for img in data[shape]]
        return name, _with_labels(files, images, [f.rsplit(" ", 1)[0] for f in files], classes)
    if source == SAMPLES:
        samples = sample_images()
        return name, _with_labels(list(samples), list(samples.values()), [None] * len(samples), classes)
    if source == TRAINER:
        return name, _trainer_set(model_name, classes)
    if source == UPLOAD:
        uploads = st.file_uploader("Images", type=IMAGE_TYPES, accept_multiple_files=True, key=f"{key}_files")
        folder = st.file_uploader("…or a whole folder", type=IMAGE_TYPES, accept_multiple_files="directory",
                                  key=f"{key}_folder")
        files, images = _decode_uploads(list(uploads or []) + list(folder or []), key)
        folders = [PurePosixPath(f).parent.name or None for f in files]
        return name, (_with_labels(files, images, folders, classes) if images else None)
    if source == ZIP:
        return name, _zip_set(st.file_uploader("A zip of images in class folders", type=["zip"], key=f"{key}_zipfile"), key, classes)
    if source == CAMERA:
        shots = S.setdefault(f"{key}_shots", [])
        photo = st.camera_input("Take a photo for this set", key=f"{key}_camera")
        if photo is not None and photo.file_id not in [s[0] for s in shots]:
            try:
                shots.append((photo.file_id, load_image(photo.getvalue(), max_side=DECODE_SIDE, name="The photo")))
            except ImageError as err:
                st.error(plain(err), icon="🚫")
        st.caption(f"{len(shots)} photos in this set.")
        return name, ({"files": [f"photo {i + 1}" for i in range(len(shots))], "images": [s[1] for s in shots], "labels": None}
                      if shots else None)
    return name, None


def _fingerprint(image_sets: dict, extra) -> str:
    digest = hashlib.sha1(repr(extra).encode())
    for name, data in image_sets.items():
        digest.update(name.encode())
        for img in data["images"]:
            digest.update(np.ascontiguousarray(img[::16, ::16]).tobytes())
    return digest.hexdigest()


def _thumb(image: np.ndarray) -> np.ndarray:
    from PIL import Image

    pil = Image.fromarray(image)
    pil.thumbnail((THUMB, THUMB))
    return np.asarray(pil)


# --------------------------------------------------------------------------- the page
st.title("5 · Audit where it fails")
st.markdown(
    "The Programming Historian lesson ends with a question: *what does the classifier say about an abstract "
    "painting, or about something that is not a painting at all?* It must answer with one of its categories, "
    "whatever it is shown. This page turns the question into an experiment: a **reference set** (what the model "
    "was meant for) against **probe sets** (what it was not), measured in several ways, with a report to take home."
)

st.header("1 · The model")
model_name, model, card = image_model_picker("audit_model", otherwise="it cannot be audited here")
classes = registry.class_names(card)
st.caption(f"{_md(card.get('title', model_name))} · {len(classes)} categories"
           + (": " + ", ".join(_md(c) for c in classes) if len(classes) <= 20 else "") + ". "
           + _md(card.get("description") or "") + (" " + _md(card["note"]) if card.get("note") else ""))
if card.get("kind") == "imagenet":
    st.caption("Its 1 000 ImageNet categories were chosen for photographs of objects and animals in 2009: "
               "no “painting”, no “abstract”, no “portrait”. Keep that in mind when you read its answers.")

st.header("2 · The sets")
reference_sources = ([TRAINER] if card.get("kind") == "visitor" else []) + REFERENCE_SOURCES
_from_url("audit_probe_sets", "probe_sets", 1, int, [1, 2, 3])
left, right = st.columns(2, gap="large")
with left:
    st.subheader("Reference set")
    st.caption("Images of the kind the model was made for. With class folders named like the model's classes, "
               "accuracy and calibration are measured too.")
    ref_name, ref_set = image_set_input("audit_ref", reference_sources, classes, default_name="Reference",
                                        default_kinds=["Geometric shapes"], default_seed=1, model_name=model_name)
with right:
    st.subheader("Probe sets")
    n_probes = st.radio("How many probe sets", [1, 2, 3], horizontal=True, key="audit_probe_sets")
    _to_url("probe_sets", n_probes)
    probe_inputs = []
    for i in range(int(n_probes)):
        with st.container(border=True):
            probe_inputs.append(image_set_input(
                f"audit_probe{i}", PROBE_SOURCES, classes, default_name=["Abstract probes", "Probe set 2", "Probe set 3"][i],
                default_kinds=ABSTRACT if i == 0 else ["Printed text", "Blank page", "Noise"], default_seed=100 * (i + 1),
                model_name=model_name))

st.header("3 · Run the audit")
_from_url("audit_threshold", "threshold", 0.5, float)
_from_url("audit_k", "k", 5, int)
_from_url("audit_gallery", "gallery", 8, int)
a, b, c = st.columns(3)
threshold = a.slider("Abstain below this confidence", 0.0, 1.0, step=0.05, key="audit_threshold",
                     help="The model says “unsure / not in my categories” when its top probability is lower.")
k = b.slider("Neighbours for the kNN distance", 1, 20, key="audit_k")
gallery_size = c.slider("Images in the Grad-CAM gallery", 0, 24, key="audit_gallery")
_from_url("audit_cam_all", "gradcam_all", False, lambda raw: raw == "True")
cam_all = st.toggle("Grad-CAM for every image, not only the gallery (slower: about twice the time)", key="audit_cam_all")
_to_url("gradcam_all", cam_all)
for param, value in (("threshold", threshold), ("k", k), ("gallery", gallery_size)):
    _to_url(param, value)

image_sets: dict[str, dict] = {}
problems = []
if ref_set is None or len(ref_set["images"]) < 2:
    problems.append("The reference set needs at least two images.")
else:
    image_sets[ref_name] = ref_set
for name, data in probe_inputs:
    if name in image_sets:
        problems.append(f"Two sets are called “{_md(name)}”; please give every set its own name.")
    elif data is not None and len(data["images"]):
        image_sets[name] = data
if len(image_sets) < 2 and not problems:
    problems.append("Add images to at least one probe set.")
for problem in problems:
    st.info(problem, icon="ℹ️")

fingerprint = _fingerprint(image_sets, (model_name, id(model), k, gallery_size, cam_all))
if st.button("🔎 Run the audit", type="primary", disabled=bool(problems), key="audit_run_button"):
    from cnnviz.audit import run as audit_model  # TensorFlow work, imported only when an audit runs

    settings = {"model": card.get("title", model_name), "reference set": ref_name,
                "probe sets": ", ".join(n for n in image_sets if n != ref_name), "abstain threshold": threshold,
                "kNN neighbours": k, **{f"{n} · images": len(d["images"]) for n, d in image_sets.items()}}
    for key in ("audit_probe0", "audit_probe1", "audit_probe2", "audit_ref"):
        if S.get(f"{key}_source") == GENERATED and f"{key}_seed" in S:
            settings[f"seed ({S.get(f'{key}_name')})"] = S[f"{key}_seed"]
    with st.status("Auditing…", expanded=True) as status:
        bar = st.progress(0.0, text="Starting")
        try:
            result = audit_model.run_audit(
                model, card, classes, image_sets, ref_name, threshold=threshold, k=k, gallery_size=gallery_size, gradcam_all=cam_all,
                settings=settings, progress=lambda f, msg: bar.progress(min(1.0, f), text=msg))
        except (ValueError, registry.ModelError) as err:
            status.update(label="The audit could not run.", state="error")
            st.error(plain(err), icon="🚫")
            result = None
        if result is not None:
            result["thumbnails"] = {n: [_thumb(img) for img in d["images"]] for n, d in image_sets.items()}
            result["fingerprint"] = fingerprint
            S["audit_result"] = result
            status.update(label=f"Audited {sum(len(d['images']) for d in image_sets.values())} images.", state="complete",
                          expanded=False)

run = S.get("audit_result")
if run is None:
    st.info("Choose the sets, then press **Run the audit**.", icon="👆")
else:
    if run["fingerprint"] != fingerprint:
        st.warning("The sets or settings changed since this audit ran; press **Run the audit** again to update it.", icon="⚠️")
    if run["evaluation"]["threshold"] != threshold:
        # Abstaining is pure arithmetic on stored outputs: move the threshold live, no model run needed.
        run["evaluation"] = audit.evaluate(run["sets"], run["evaluation"]["reference"], threshold=threshold, k=run["evaluation"]["k"])
        run["settings"]["abstain threshold"] = threshold
    table = report.results_table(run)
    evaluation = run["evaluation"]

    st.header("4 · What the measures say")
    cols = st.columns(len(run["sets"]))
    for col, name in zip(cols, run["sets"]):
        part = table[table["set"] == name]
        col.metric(f"{_md(name)} · mean confidence", f"{part['confidence'].mean():.0%}",
                   help="Mean of the top class probability over the set's images.")
        col.caption(f"{len(part)} images · abstains on {evaluation['caught'][name]:.0%}")
    if "accuracy" in evaluation:
        st.markdown(f"On the reference set the model is right **{evaluation['accuracy']:.0%}** of the time; its "
                    f"expected calibration error is **{evaluation['ece']:.3f}** (how far confidence is from accuracy).")
    if evaluation["auroc"]:
        best = {probe: max(v, key=lambda s: v[s] if v[s] == v[s] else -1) for probe, v in evaluation["auroc"].items()}
        st.markdown("Best score for telling each probe set from the reference: " + "; ".join(
            f"**{_md(p)}** — {s} (AUROC {evaluation['auroc'][p][s]:.2f})" for p, s in best.items()) + ".")
    for heading, (chart, sentence) in charts.audit_charts(run, table, audit.OOD_SCORES).items():
        st.subheader(heading)
        st.altair_chart(chart, alt=f"{heading}: {sentence}")
        st.caption(sentence)

    st.header("5 · The most confident failures, with Grad-CAM")
    if run["gallery"]:
        st.caption("Wrong answers on the reference set and any answer on a probe set, most confident first. "
                   "Each pair: the image, and where the evidence for its label was found (bright = more).")
        grid = st.columns(4)
        for i, item in enumerate(run["gallery"]):
            with grid[i % 4]:
                show_image(np.concatenate([item["image"], item["heatmap"]], axis=1),
                           alt=f"{item['file']} from {item['set']}, answered {item['top_class']} at {item['confidence']:.0%}, "
                               "with its Grad-CAM heat map",
                           caption=f"{_md(item['set'])} · {_md(item['file'])} → {_md(item['top_class'])} ({item['confidence']:.0%}, {item['failure']})")
    else:
        st.caption("No confident failure to show (or the gallery size is 0).")

    if run["cams"]:
        with st.expander("Every image with its Grad-CAM"):
            st.caption("Bright = where the evidence for the answer under each picture was found.")
            from cnnviz.model.features import overlay

            shown = list(run["cams"].items())[:120]
            grid = st.columns(6)
            for i, ((set_name, index), cam) in enumerate(shown):
                image = run["thumbnails"][set_name][index]
                row = table[table["set"] == set_name].iloc[index]
                with grid[i % 6]:
                    show_image(overlay(image, cam, alpha=0.5, cmap="magma", normalise=False),
                               alt=f"Grad-CAM of {row['file']} from {set_name}, answered {row['top_class']}",
                               caption=f"{_md(row['file'])} → {_md(row['top_class'])} ({row['confidence']:.0%})")
            if len(run["cams"]) > len(shown):
                st.caption(f"… and {len(run['cams']) - len(shown)} more in the report.")

    with st.expander("Every image, one row each (the same table as the CSV)"):
        st.dataframe(table[["set", "file", "true_class", "top_class", "confidence", "entropy", "knn_distance",
                            "mahalanobis", "abstained"]], hide_index=True)

    st.header("6 · Take the report home")
    st.caption("The HTML report is one self-contained file (charts, thumbnails, numbers, settings, model card and "
               "questions for the seminar); the CSV has one row per image with every class score.")
    d1, d2 = st.columns(2)

    def _html() -> bytes:
        thumbnails = run["thumbnails"]
        gallery = [{**g, "image": _thumb(g["image"]), "heatmap": _thumb(g["heatmap"])} for g in run["gallery"]]
        return report.to_html(run, charts=charts.audit_charts(run, report.results_table(run), audit.OOD_SCORES),
                              thumbnails=thumbnails, gallery=gallery).encode("utf-8")

    d1.download_button("⬇️ Download the report (HTML)", data=_html, file_name="cnnviz-audit-report.html",
                       mime="text/html", key="audit_download_html", on_click="ignore")
    d2.download_button("⬇️ Download the table (CSV)", data=report.to_csv(run), file_name="cnnviz-audit.csv",
                       mime="text/csv", key="audit_download_csv", on_click="ignore")

st.header("7 · Change only the style")
st.markdown("Does the label change when only the *style* of a picture changes — its colour, orientation, sharpness, "
            "or the way it is painted? Pick any image and watch the answer move.")
t_left, t_right = st.columns([1, 2], gap="large")
with t_left:
    t_name, t_image = image_picker("audit_transform", label="Image to transform", query_param="transform_image")
if st.toggle("Show how each transformation moves the prediction", key="audit_transform_on", value=True):
    from cnnviz.audit import run as audit_model

    # Kept per visitor for this model and image, so other clicks on the page do not recompute it.
    t_key = (id(model), hashlib.sha1(np.ascontiguousarray(t_image).tobytes()).hexdigest())
    if S.get("audit_transform_cache", (None,))[0] != t_key:
        with st.spinner("Predicting every version…"):
            try:
                S["audit_transform_cache"] = (t_key, audit_model.transformation_effect(model, t_image, classes))
            except (ValueError, registry.ModelError) as err:
                st.error(plain(err), icon="🚫")
                st.stop()
    rows, versions = S["audit_transform_cache"][1]
    with t_right:
        frame = pd.DataFrame(rows)
        st.altair_chart(charts.transformation_effect(frame),
                        alt="Bar chart: confidence in the top class for each transformation, orange where the label changed")
        changed = int(frame["changed"].sum())
        st.caption(f"Orange bars are versions whose top class differs from the original's ({changed} of {len(frame) - 1}); "
                   "a short bar means the model is unsure about that version.")
    grid = st.columns(7)
    for i, ((label, version), row) in enumerate(zip(versions.items(), rows)):
        with grid[i % 7]:
            show_image(version, alt=f"{t_name}, {label.lower()}", caption=f"{label}: {_md(row['top_class'])} ({row['confidence']:.0%})")
