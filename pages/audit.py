"""Page 5 · Audit where it fails: the Programming Historian lesson's last question as an experiment.

Lecture outline: (1) choose a model, (2) name a reference set (what the model is meant for) and
probe sets (abstract works, non-paintings, generated probes), (3) run the audit, (4) read the
measures one by one — labels, confidence, out-of-distribution scores, abstaining, calibration —,
(5) look at the most confident failures with Grad-CAM, (6) take the report home, (7) change only
the style of one image. The rules live in cnnviz.audit (sets, measures, run, report); the widgets
in ui.audit. Everything the visitor adds lives in their session only.
"""

from __future__ import annotations

import streamlit as st

from ui.router import ensure_app_shell

ensure_app_shell()  # before heavy imports: a bookmark opened first on a fresh server goes through app.py

from cnnviz.audit import report  # noqa: E402
from cnnviz.audit import sets as audit_sets  # noqa: E402
from cnnviz.model import registry  # noqa: E402
from cnnviz.text import plain  # noqa: E402
from ui import audit as aud  # noqa: E402
from ui import first_screen, present, settings  # noqa: E402
from ui.models import image_model_picker  # noqa: E402
from ui.widgets import image_picker  # noqa: E402

st.title("5 · Audit where it fails")
present.explain(
    "The Programming Historian lesson ends with a question: *what does the classifier say about an abstract "
    "painting, or about something that is not a painting at all?* It must answer with one of its categories, "
    "whatever it is shown. This page turns the question into an experiment: a **reference set** (what the model "
    "was meant for) against **probe sets** (what it was not), measured in several ways, with a report to take home."
)

# ---------------------------------------------------------------- 1 · the model
present.step(1)
# Presenter mode: the sets' first pictures on the left of the first screen, the model beside them
# (the picture is drawn once the sets below are filled).
presenting = present.presenting()
picture_side, control_side = st.columns([1, 1], gap="large") if presenting else (None, st.container())
with control_side:
    st.header("1 · The model")
    model_name, model, card = image_model_picker("audit_model", otherwise="it cannot be audited here")
    classes = registry.class_names(card)
    st.caption(
        f"{plain(card.get('title', model_name))} · {len(classes)} categories"
        + (": " + ", ".join(plain(c) for c in classes) if len(classes) <= 20 else "")
        + ". "
        + plain(card.get("description") or "")
        + (" " + plain(card["note"]) if card.get("note") else "")
    )
    if card.get("kind") == "imagenet":
        st.caption(
            "Its 1 000 ImageNet categories were chosen for photographs of objects and animals in 2009: "
            "no “painting”, no “abstract”, no “portrait”. Keep that in mind when you read its answers."
        )

# ---------------------------------------------------------------- 2 · the sets
st.header("2 · The sets")
left, right = st.columns(2, gap="large")
with left:
    st.subheader("Reference set")
    st.caption(
        "Images of the kind the model was made for. With class folders named like the model's classes, "
        "accuracy and calibration are measured too. A zip in the lesson's layout gives its testing/ images."
    )
    reference = aud.image_set_input(
        "audit_ref",
        audit_sets.sources(card, reference=True),
        classes,
        audit_sets.REFERENCE_DEFAULTS,
        model_name=model_name,
        card=card,
        reference=True,
    )
with right:
    st.subheader("Probe sets")
    st.caption("Images the model was not made for: abstract paintings, text, noise, your own photos.")
    n_probes = settings.radio(
        "How many probe sets",
        list(range(1, audit_sets.MAX_PROBE_SETS + 1)),
        key="audit_probe_sets",
        url="probe_sets",
        horizontal=True,
    )
    probe_inputs = []
    for i in range(int(n_probes)):
        with st.container(border=True):
            probe_inputs.append(
                aud.image_set_input(
                    f"audit_probe{i}",
                    audit_sets.sources(card, reference=False),
                    classes,
                    audit_sets.probe_defaults(i),
                    model_name=model_name,
                    card=card,
                )
            )

# ---------------------------------------------------------------- 3 · run
if picture_side is not None:
    with picture_side:
        first_screen.audit_picture([reference, *probe_inputs])

present.step(2)
st.header("3 · Run the audit")
a, b, c = st.columns(3)
threshold = settings.slider(
    "Abstain below this confidence",
    0.0,
    1.0,
    step=0.05,
    key="audit_threshold",
    default=0.5,
    url="threshold",
    where=a,
    help="The model says “unsure / not in my categories” when its top probability is lower.",
)
k = settings.slider("Neighbours for the kNN distance", 1, 20, key="audit_k", default=5, url="k", where=b)
gallery_size = settings.slider(
    "Images in the Grad-CAM gallery", 0, 24, key="audit_gallery", default=8, url="gallery", where=c
)
cam_all = settings.toggle(
    "Grad-CAM for every image, not only the gallery (slower: about twice the time)",
    key="audit_cam_all",
    default=False,
    url="gradcam_all",
)

image_sets, problems = audit_sets.audit_sets(reference, probe_inputs)
for problem in problems:
    st.info(plain(problem), icon="ℹ️")
fingerprint = audit_sets.fingerprint(image_sets, (model_name, aud.model_key(model), k, gallery_size, cam_all))
if st.button("🔎 Run the audit", type="primary", disabled=bool(problems), key="audit_run_button"):
    aud.run(
        model,
        card,
        classes,
        image_sets,
        reference[0],
        threshold=threshold,
        k=k,
        gallery_size=gallery_size,
        gradcam_all=cam_all,
        fingerprint=fingerprint,
    )

run = st.session_state.get(aud.RESULT)
present.step(3)
if run is None:
    st.info("Choose the sets, then press **Run the audit**.", icon="👆")
    if presenting:  # steps 3–5 hold the results; say so rather than show an empty slide
        for n in (4, 5):
            present.step(n)
            st.info("Run the audit first (step 2): the results are shown here.", icon="👈")
else:
    if run["fingerprint"] != fingerprint:
        st.warning(
            "The sets or settings changed since this audit ran; press **Run the audit** again to update it.", icon="⚠️"
        )
    report.with_threshold(run, threshold)  # abstaining is arithmetic on stored outputs: the slider acts live
    table = report.results_table(run)

    # ------------------------------------------------------------ 4 · the measures
    st.header("4 · What the measures say")
    aud.measures_summary(run, table)

    # ------------------------------------------------------------ 5 · the failures
    present.step(4)
    st.header("5 · The most confident failures, with Grad-CAM")
    aud.gallery(run)
    aud.every_cam(run, table)
    with st.expander("Every image, one row each (the same table as the CSV)"):
        st.dataframe(
            table[
                [
                    "set",
                    "file",
                    "true_class",
                    "top_class",
                    "confidence",
                    "entropy",
                    "knn_distance",
                    "mahalanobis",
                    "abstained",
                ]
            ],
            hide_index=True,
        )
        st.caption(
            "Sort by a column to find the images the model is surest or least sure about, or farthest "
            "from the reference set."
        )

    # ------------------------------------------------------------ 6 · the report
    present.step(5)
    st.header("6 · Take the report home")
    st.caption(
        "The HTML report is one self-contained file (charts, thumbnails, numbers, settings, model card and "
        "questions for the seminar); the CSV has one row per image with every class score."
    )
    aud.downloads(run)

# ---------------------------------------------------------------- 7 · style only
present.step(6)
st.header("7 · Change only the style")
st.markdown(
    "Does the label change when only the *style* of a picture changes — its colour, orientation, sharpness, "
    "or the way it is painted? Pick any image and watch the answer move."
)
t_left, t_right = st.columns([1, 2], gap="large")
with t_left:
    t_name, t_image = image_picker("audit_transform", label="Image to transform", query_param="transform_image")
if settings.toggle("Show how each transformation moves the prediction", key="audit_transform_on", default=True):
    effect = aud.style_effect(model, t_image, classes)
    if effect is not None:
        aud.style_panel(t_name, *effect, where=t_right)
