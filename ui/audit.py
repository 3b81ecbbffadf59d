"""Widgets of page 5 (audit where it fails) over :mod:`cnnviz.audit.sets` and :mod:`cnnviz.audit.report`.

:mod:`cnnviz.audit.sets` decides what a set holds and whether the audit can run; these
functions only draw the inputs and results and keep the visitor's uploads decoded in their
session. Every setting goes through :mod:`ui.settings`; every name a visitor controls (sets,
files, folders, classes) is shown through :func:`cnnviz.text.plain`.
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

import numpy as np
import pandas as pd
import streamlit as st

from cnnviz.audit import measures, probes, report
from cnnviz.audit import sets as audit_sets
from cnnviz.audit.sets import ImageSet, SetDefaults
from cnnviz.charts import audit as charts
from cnnviz.images import IMAGE_TYPES, ImageError, load_image, sample_images
from cnnviz.model import registry
from cnnviz.text import plain
from cnnviz.zips import ZipError
from ui import settings
from ui.pool import report as report_progress
from ui.pool import run_here
from ui.state import last_training, pixel_budget
from ui.widgets import show_image

S = st.session_state
RESULT = "audit_result"
KEPT = "audit_kept_sets"  # sets read from the visitor's files, for the workspace (see _kept)
SHOWN_ERRORS = 5


@st.cache_resource(show_spinner=False)
def _samples() -> dict[str, np.ndarray]:
    # Shipped files, identical for every visitor: safe to share across sessions.
    return sample_images()


# --------------------------------------------------------------------------- one image set
def image_set_input(
    key: str,
    options: Sequence[str],
    class_names: Sequence[str],
    defaults: SetDefaults,
    *,
    model_name: str,
    card: dict,
    reference: bool = False,
) -> tuple[str, ImageSet]:
    """Name one image set and fill it from the chosen source; returns ``(name, set)`` (the set may be empty)."""
    typed = settings.text_input("Name of this set", key=f"{key}_name", default=defaults.name, url=f"{key}_name")
    name = audit_sets.set_name(typed, defaults.name)
    source = settings.selectbox(
        "Images from", options, key=f"{key}_source", url=f"{key}_src", format_func=audit_sets.SOURCE_TITLES.get
    )
    side = audit_sets.set_side(card)
    if source == audit_sets.GENERATED:
        kinds = settings.multiselect(
            "Kinds of picture",
            list(probes.GENERATORS),
            key=f"{key}_kinds",
            default=list(defaults.kinds),
            url=f"{key}_kinds",
        )
        a, b = st.columns(2)
        count = settings.slider(
            "How many",
            *audit_sets.GENERATED_COUNT,
            step=4,
            key=f"{key}_count",
            default=defaults.count,
            url=f"{key}_n",
            where=a,
        )
        seed = settings.number_input(
            "Seed (same seed, same pictures)",
            0,
            1_000_000,
            step=1,
            key=f"{key}_seed",
            default=defaults.seed,
            url=f"{key}_seed",
            where=b,
        )
        found = audit_sets.generated_set(kinds, int(count), seed=int(seed), class_names=class_names)
    elif source == audit_sets.SHAPES:
        per_class = settings.slider(
            "Images per shape",
            *audit_sets.SHAPES_PER_CLASS,
            key=f"{key}_per_shape",
            default=defaults.per_class,
            url=f"{key}_per_shape",
        )
        found = audit_sets.shapes_set(int(per_class), class_names)
    elif source == audit_sets.SAMPLES:
        found = audit_sets.samples_set(_samples())
    elif source == audit_sets.TRAINER:
        found = audit_sets.trainer_set(last_training(), model_name)
    elif source == audit_sets.UPLOAD:
        files = st.file_uploader("Images", type=IMAGE_TYPES, accept_multiple_files=True, key=f"{key}_files")
        folder = st.file_uploader(
            "…or a whole folder", type=IMAGE_TYPES, accept_multiple_files="directory", key=f"{key}_folder"
        )
        offered = list(files or []) + list(folder or [])
        named, problems = _decoded(offered[: audit_sets.MAX_SET_IMAGES], key, side)
        found = audit_sets.uploaded_set(named, class_names, problems=problems, offered=len(offered))
    elif source == audit_sets.ZIP:
        found = _zip_set(
            st.file_uploader("A zip of images in class folders", type=["zip"], key=f"{key}_zipfile"),
            key,
            class_names,
            side,
            reference,
        )
    else:
        found = audit_sets.camera_set(_photos(key, side))
    reopened = False
    if source in audit_sets.KEPT_SOURCES:
        found, reopened = _kept(key, source, found, class_names)
    _notes(found, loud=source == audit_sets.UPLOAD)
    if reopened and st.button("✖ Clear this set", key=f"{key}_clear"):
        del S[KEPT][key]
        st.rerun()
    return name, found


def _kept(key: str, source: str, found: ImageSet, class_names: Sequence[str]) -> tuple[ImageSet, bool]:
    """The set the visitor's files give, kept for the workspace; after a reopening, the kept one.

    ``S[KEPT]``: ``{set key: (source, class names, set, reopened)}``, saved by :mod:`ui.workspace`.
    A reload empties the file uploaders and the camera, so a reopened set (``reopened``) is
    shown until the visitor gives new files or clears it; emptying the uploader in the same
    tab removes the set, as before. Returns the set and whether it is a reopened one.
    """
    kept = S.setdefault(KEPT, {})
    entry = kept.get(key)
    if len(found):
        kept[key] = (source, list(class_names), found, False)
        return found, False
    if entry is None or entry[0] != source:
        return found, False
    if not entry[3]:
        del kept[key]
        return found, False
    return audit_sets.reopened_set(entry[2], entry[1], class_names), True


def _decoded(uploads: Sequence[Any], key: str, side: int) -> tuple[list[tuple[str, np.ndarray]], list[str]]:
    """Uploaded files decoded once each (kept in this visitor's session while uploaded): pictures and problems."""
    cache = S.setdefault(f"{key}_decoded", {})
    wanted = {(up.file_id, side) for up in uploads}
    for stale in [k for k in cache if k not in wanted]:
        del cache[stale]  # a removed file does not stay in memory
    named, problems = [], []
    for up in uploads:
        if (up.file_id, side) not in cache:
            try:
                cache[(up.file_id, side)] = load_image(
                    up.getvalue(), max_side=side, name=f"“{up.name}”", budget=pixel_budget()
                )
            except ImageError as err:
                cache[(up.file_id, side)] = str(err)
        image = cache[(up.file_id, side)]
        if isinstance(image, str):
            problems.append(image)
        else:
            named.append((up.name, image))
    return named, problems


def _zip_set(upload: Any, key: str, class_names: Sequence[str], side: int, reference: bool) -> ImageSet:
    if upload is None:
        return ImageSet(
            sentences=[
                "Upload a zip of images: one folder per class (named like the model's classes "
                "to measure accuracy), or loose images."
            ]
        )
    wanted = (upload.file_id, side, tuple(class_names), reference)
    if S.get(f"{key}_zip", (None,))[0] != wanted:
        try:
            found: ImageSet | str = audit_sets.zip_set(
                upload.getvalue(),
                class_names,
                zip_name=f"“{upload.name}”",
                side=side,
                reference=reference,
                budget=pixel_budget(),
            )
        except ZipError as err:
            found = str(err)
        S[f"{key}_zip"] = (wanted, found)  # one zip per set in memory: a new upload replaces it
    found = S[f"{key}_zip"][1]
    if isinstance(found, str):
        st.error(plain(found), icon="🚫")
        return ImageSet()
    return found


def _photos(key: str, side: int) -> list[np.ndarray]:
    shots = S.setdefault(f"{key}_shots", [])
    photo = st.camera_input("Take a photo for this set", key=f"{key}_camera")
    if photo is not None and photo.file_id not in [s[0] for s in shots]:
        try:
            shots.append(
                (photo.file_id, load_image(photo.getvalue(), max_side=side, name="The photo", budget=pixel_budget()))
            )
        except ImageError as err:
            st.error(plain(err), icon="🚫")
    return [image for _, image in shots]


def _notes(found: ImageSet, *, loud: bool) -> None:
    """What the set holds and why (as text); files not used: errors for uploads, a list for a zip."""
    for sentence in found.sentences:
        if len(found):
            st.caption(plain(sentence))
        else:
            st.info(plain(sentence), icon="ℹ️")
    if found.skipped and loud:
        for problem in found.skipped[:SHOWN_ERRORS]:
            st.error(plain(problem), icon="🚫")
        if len(found.skipped) > SHOWN_ERRORS:
            st.error(f"… and {len(found.skipped) - SHOWN_ERRORS} more files could not be read.", icon="🚫")
    elif found.skipped:
        with st.expander(f"{len(found.skipped)} files in the zip were not used"):
            st.markdown("\n".join(f"- {plain(s)}" for s in found.skipped[:50]))


# --------------------------------------------------------------------------- running
def model_key(model: Any) -> str:
    """What the audit's fingerprint knows of the model: its layers and weights, not the Python object.

    A model reopened from the workspace is a new object with the same weights, so an audit kept
    there is shown as current; a retrained model under the same name is not.
    """
    from cnnviz.model import fast_embed  # TensorFlow: the page has loaded the model already

    return fast_embed.fingerprint(model)


def run(
    model: Any,
    card: dict,
    class_names: Sequence[str],
    image_sets: dict[str, ImageSet],
    reference: str,
    *,
    threshold: float,
    k: int,
    gallery_size: int,
    gradcam_all: bool,
    fingerprint: str,
) -> None:
    """Run the audit with a progress bar; keep the result in this visitor's session, or say why it could not run."""
    from cnnviz.audit import run as audit_model  # TensorFlow work, imported only when an audit runs

    settings_used = audit_sets.run_settings(
        card.get("title", card.get("name", "")), reference, image_sets, threshold=threshold, k=k
    )

    def audit() -> dict:
        # On the shared pool: progress goes to the job (ui.pool.report), a cancel stops it at the next step.
        return audit_model.run_audit(
            model,
            card,
            class_names,
            {n: s.as_image_set() for n, s in image_sets.items()},
            reference,
            threshold=threshold,
            k=k,
            gallery_size=gallery_size,
            gradcam_all=gradcam_all,
            settings=settings_used,
            progress=report_progress,
        )

    with st.status("Auditing…", expanded=True) as status:
        result = run_here(audit, kind="audit", label="Auditing", sentences=(ValueError, registry.ModelError))
        if result is None:
            status.update(label="The audit could not run.", state="error")
            return
        result["thumbnails"] = audit_sets.set_thumbnails(image_sets)
        result["fingerprint"] = fingerprint
        S[RESULT] = result
        status.update(
            label=f"Audited {sum(len(s) for s in image_sets.values())} images.", state="complete", expanded=False
        )


# --------------------------------------------------------------------------- reading the result
def measures_summary(run: dict, table: pd.DataFrame) -> None:
    """Mean confidence and abstaining per set, accuracy and calibration, the best separating score, every chart."""
    evaluation = run["evaluation"]
    for col, name in zip(st.columns(len(run["sets"])), run["sets"]):
        part = table[table["set"] == name]
        col.metric(
            f"{plain(name)} · mean confidence",
            f"{part['confidence'].mean():.0%}",
            help="Mean of the top class probability over the set's images.",
        )
        col.caption(f"{len(part)} images · abstains on {evaluation['caught'][name]:.0%}")
    if "accuracy" in evaluation:
        st.markdown(
            f"On the reference set the model is right **{evaluation['accuracy']:.0%}** of the time; its "
            f"expected calibration error is **{evaluation['ece']:.3f}** (how far confidence is from accuracy)."
        )
    best = report.best_separating_scores(evaluation)
    if best:
        st.markdown(
            "Best score for telling each probe set from the reference: "
            + "; ".join(f"**{plain(p)}** — {plain(s)} (AUROC {v:.2f})" for p, (s, v) in best.items())
            + "."
        )
    for heading, (chart, sentence) in charts.audit_charts(run, table, measures.OOD_SCORES).items():
        st.subheader(heading)
        st.altair_chart(chart, alt=f"{heading}: {sentence}")
        st.caption(sentence)


def gallery(run: dict) -> None:
    """The most confident failures, each beside its Grad-CAM."""
    if not run["gallery"]:
        st.caption("No confident failure to show (or the gallery size is 0).")
        return
    st.caption(
        "Wrong answers on the reference set and any answer on a probe set, most confident first. "
        "Each pair: the image, and where the evidence for its label was found (bright = more)."
    )
    grid = st.columns(4)
    for i, item in enumerate(run["gallery"]):
        with grid[i % 4]:
            show_image(
                np.concatenate([item["image"], item["heatmap"]], axis=1),
                alt=f"{item['file']} from {item['set']}, answered {item['top_class']} at {item['confidence']:.0%}, "
                "with its Grad-CAM heat map",
                caption=f"{plain(item['set'])} · {plain(item['file'])} → {plain(item['top_class'])} "
                f"({item['confidence']:.0%}, {item['failure']})",
            )


def every_cam(run: dict, table: pd.DataFrame, *, shown: int = 120) -> None:
    """Every image's Grad-CAM over its thumbnail (when the audit computed them all)."""
    if not run["cams"]:
        return
    from cnnviz.model.features import overlay

    with st.expander("Every image with its Grad-CAM"):
        st.caption("Bright = where the evidence for the answer under each picture was found.")
        items = list(run["cams"].items())[:shown]
        grid = st.columns(6)
        for i, ((set_name, index), cam) in enumerate(items):
            row = table[table["set"] == set_name].iloc[index]
            with grid[i % 6]:
                show_image(
                    overlay(run["thumbnails"][set_name][index], cam, alpha=0.5, cmap="magma", normalise=False),
                    alt=f"Grad-CAM of {row['file']} from {set_name}, answered {row['top_class']}",
                    caption=f"{plain(row['file'])} → {plain(row['top_class'])} ({row['confidence']:.0%})",
                )
        if len(run["cams"]) > len(items):
            st.caption(f"… and {len(run['cams']) - len(items)} more in the report.")


def downloads(run: dict) -> None:
    """The HTML report (built when clicked) and the CSV."""

    def html() -> bytes:
        return report.to_html(
            run,
            charts=charts.audit_charts(run, report.results_table(run), measures.OOD_SCORES),
            thumbnails=run["thumbnails"],
            gallery=run["gallery"],
        ).encode("utf-8")

    a, b = st.columns(2)
    a.download_button(
        "⬇️ Download the report (HTML)",
        data=html,
        file_name="cnnviz-audit-report.html",
        mime="text/html",
        key="audit_download_html",
        on_click="ignore",
    )
    b.download_button(
        "⬇️ Download the table (CSV)",
        data=report.to_csv(run),
        file_name="cnnviz-audit.csv",
        mime="text/csv",
        key="audit_download_csv",
        on_click="ignore",
    )


def style_effect(model: Any, image: np.ndarray, class_names: Sequence[str]) -> tuple[list[dict], dict] | None:
    """Every style transformation of ``image`` predicted, kept per visitor for this model and image."""
    from cnnviz.audit import run as audit_model

    wanted = (id(model), hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest())
    if S.get("audit_transform_cache", (None,))[0] != wanted:
        with st.spinner("Predicting every version…"):
            try:
                S["audit_transform_cache"] = (wanted, audit_model.transformation_effect(model, image, class_names))
            except (ValueError, registry.ModelError) as err:
                st.error(plain(err), icon="🚫")
                return None
    return S["audit_transform_cache"][1]


def style_panel(name: str, rows: list[dict], versions: dict[str, np.ndarray], where: Any) -> None:
    """The chart of how each transformation moves the answer, and every version with its answer."""
    with where:
        frame = pd.DataFrame(rows)
        st.altair_chart(
            charts.transformation_effect(frame),
            alt="Bar chart: confidence in the top class for each transformation, orange where the label changed",
        )
        st.caption(
            f"Orange bars are versions whose top class differs from the original's ({int(frame['changed'].sum())} "
            f"of {len(frame) - 1}); a short bar means the model is unsure about that version."
        )
    grid = st.columns(7)
    for i, ((label, version), row) in enumerate(zip(versions.items(), rows)):
        with grid[i % 7]:
            show_image(
                version,
                alt=f"{name}, {label.lower()}",
                caption=f"{label}: {plain(row['top_class'])} ({row['confidence']:.0%})",
            )
