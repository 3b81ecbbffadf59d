"""Widgets of page 4 (train your own classifier) over :class:`cnnviz.train.session.TrainingSession`.

The session decides (names, duplicates, splits, runs); these functions only draw it and
turn clicks into its method calls. Training runs as a background job (:mod:`cnnviz.jobs`):
a click elsewhere on the page does not stop it, Stop stops it after the current epoch.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import streamlit as st

from cnnviz import jobs
from cnnviz.charts import training as charts
from cnnviz.images import IMAGE_TYPES, ImageError, load_image
from cnnviz.text import plain
from cnnviz.predictions import UNSURE_EXPLANATION, UNSURE_THRESHOLD
from cnnviz.train import dataset_check as dataset_check_module
from cnnviz.train import transfer
from cnnviz.limits import PixelBudget
from cnnviz.train.session import ClassImages, Embed, Run, TrainingSession
from cnnviz.zips import ZipError
from ui import settings
from ui.jobs import owner_id, progress_text
from ui.pool import report, run_here
from ui.models import shipped_model
from ui.state import TRAINING_KEY, add_visitor_model, pixel_budget, request_model
from ui.widgets import show_image

DECODE_SIDE = 512  # images are only needed at 224 px and for a thumbnail; decode no larger
SHOWN_THUMBS = 24
BASE_TITLES = {"efficientnet_lite0": "EfficientNet-Lite0", "mobilenet_v2": "MobileNetV2"}
SESSION, JOB, GEN = TRAINING_KEY, "trainer_job", "trainer_gen"


def session() -> TrainingSession:
    """This visitor's training session (created on the first visit)."""
    st.session_state.setdefault(GEN, 0)
    return st.session_state.setdefault(SESSION, TrainingSession())


def fresh_uploaders() -> None:
    """Give every uploader a new key, which empties it (its files were taken)."""
    st.session_state[GEN] += 1


def base_title(base: str | None) -> str:
    return BASE_TITLES.get(base or "", base or "unknown")


@st.cache_resource(show_spinner=False, max_entries=2)
def embedder(base: str):
    """Shipped base network cut at its pooling layer: identical for every visitor, so shared."""
    return transfer.embedding_model_for(shipped_model(base))


def embed_with(trainer: TrainingSession, base: str) -> Embed:
    """``embed(images, on_progress)`` for the session's store; it runs on the job pool (:func:`in_pool`),
    so it draws nothing: its progress goes to the job, and a cancelled job stops at the next batch."""

    def embed(images: Sequence[np.ndarray], on_progress: Callable[[int, int], None] | None = None) -> list[str]:
        model = embedder(base)  # in_pool loaded it in the page's run: this is the cached one

        def moved(done: int, total: int) -> None:
            report(done / max(total, 1), f"{done} of {total} images read with {base_title(base)}")
            if on_progress is not None:
                on_progress(done, total)

        keys, _ = transfer.embed_images(images, model, base, store=trainer.store, on_progress=moved)
        return keys

    embed.base = base  # type: ignore[attr-defined]  # in_pool loads this base first
    return embed


ORIGINALS, KEEP_ORIGINALS = "trainer_originals", "trainer_keep_originals"


def in_pool(
    embed: Embed,
    label: str,
    work: Callable[[], Any],
    *,
    on_cancel: Callable[[], None] | None = None,
    refusals: list[str] | None = None,
) -> bool:
    """Run ``work()`` (reading, decoding, embedding) on the shared pool while the page waits; whether it finished.

    The base network is loaded here first, in the page's run, where Streamlit's cache belongs.
    A zip's one-sentence refusal is shown as it is.
    """
    base = getattr(embed, "base", "efficientnet_lite0")
    with st.spinner(f"Loading {base_title(base)}…"):
        embedder(base)
    done = run_here(
        lambda: (work(), True)[1],
        kind="embed",
        label=label,
        on_cancel=on_cancel,
        sentences=(ZipError,),
        refusals=refusals,
    )
    return bool(done)


def decode(
    files: Sequence[Any], budget: PixelBudget | None = None, *, originals: dict[str, tuple[str, bytes]] | None = None
) -> tuple[list[tuple[str, np.ndarray]], list[str]]:
    """Uploaded files → ``(name, image)`` pairs and one sentence per file that is not an image.

    ``budget`` is the visitor's (:func:`ui.state.pixel_budget`); pass it when this runs on the pool,
    away from the visitor's session. ``originals``, when given, receives each image's file (by
    pixel hash, the trainer's key): the visitor asked for them to be kept in the workspace
    (:func:`keep_originals_toggle`).
    """
    budget = pixel_budget() if budget is None else budget
    images, errors = [], []
    for i, f in enumerate(files or []):
        try:
            data = f.getvalue()
            image = load_image(data, max_side=DECODE_SIDE, name=f"“{f.name}”", budget=budget)
        except ImageError as err:
            errors.append(str(err))
        else:
            images.append((f.name, image))
            if originals is not None:
                originals[transfer.image_key(image)] = (f.name, data)
        if i % 16 == 15:
            report(0.5 * (i + 1) / len(files), f"{i + 1} of {len(files)} files decoded")
    return images, errors


def keep_originals_toggle() -> None:
    """The visitor's choice to keep their original files (not only thumbnails) in their workspace."""
    if not settings.toggle(
        "Also keep my original files in my workspace",
        key=KEEP_ORIGINALS,
        default=False,
        help="Off: only a 96-pixel thumbnail and the numbers the network computed are kept.",
    ):
        st.session_state.pop(ORIGINALS, None)  # switched off: the kept files go (from the workspace too)
        return
    kept = st.session_state.get(ORIGINALS, {})
    st.caption(
        f"{len(kept)} original files kept (from files, folders and the webcam added from now on; not from zips). "
        "They can be downloaded again from “Your workspace” in the sidebar; switch this off to delete them."
    )


def skipped_list(sentences: Sequence[str], what: str) -> None:
    """Files that were not used, with why; shown as text (their names are the visitor's)."""
    if sentences:
        with st.expander(f"⚠️ {what} ({len(sentences)})", expanded=len(sentences) <= 5):
            st.markdown(
                "\n".join(f"- {plain(s)}" for s in sentences[:200])
                + (f"\n- … and {len(sentences) - 200} more" if len(sentences) > 200 else "")
            )


def class_card(trainer: TrainingSession, cls: ClassImages, embed: Embed) -> None:
    """One class: its name, its images (upload, folder, webcam), thumbnails, remove and delete."""
    gen = st.session_state[GEN]
    name_key, shown_key = f"trainer_name_{cls.id}", f"trainer_name_shown_{cls.id}"
    if st.session_state.get(name_key) in (None, st.session_state.get(shown_key)):
        st.session_state[name_key] = cls.name  # a zip or the demo renamed the card: show its new name
    problem = trainer.rename(cls.id, st.text_input("Class name", key=name_key))
    if problem:
        st.error(plain(problem))
    st.session_state[shown_key] = st.session_state[name_key]
    st.markdown(f"**{len(cls.keys)} images**")
    files = st.file_uploader(
        "Add images", type=IMAGE_TYPES, accept_multiple_files=True, key=f"trainer_up_{cls.id}_{gen}"
    )
    folder = st.file_uploader(
        "…or a whole folder", type=IMAGE_TYPES, accept_multiple_files="directory", key=f"trainer_dir_{cls.id}_{gen}"
    )
    photo = None
    if st.toggle("Use the webcam", key=f"trainer_camon_{cls.id}"):
        photo = st.camera_input("Take a photo", key=f"trainer_cam_{cls.id}_{gen}")
    incoming = list(files or []) + list(folder or []) + ([photo] if photo is not None else [])
    if incoming:
        budget, errors = pixel_budget(), []
        # Read here, in the page's run: the pool's thread has no session.
        originals = st.session_state.setdefault(ORIGINALS, {}) if settings.kept(KEEP_ORIGINALS, False) else None

        def add() -> None:
            images, found = decode(incoming, budget, originals=originals)
            errors.extend(found)
            trainer.add_images(cls, images, embed)

        in_pool(embed, f"Adding {len(incoming)} images", add, on_cancel=fresh_uploaders)
        st.session_state["trainer_upload_errors"] = errors  # shown once, under the cards
        fresh_uploaders()
        st.rerun()
    thumbs = trainer.thumbnails(cls)
    if thumbs:
        shown = thumbs[:SHOWN_THUMBS]
        st.image(
            [t for _, _, t in shown], width=64, alt=[f"Training image {f} of class {cls.name}" for _, f, _ in shown]
        )
        if len(thumbs) > SHOWN_THUMBS:
            st.caption(f"… and {len(thumbs) - SHOWN_THUMBS} more images.")
        drop = st.multiselect(
            "Remove images",
            list(range(len(thumbs))),
            format_func=lambda i: thumbs[i][1],
            key=f"trainer_rmsel_{cls.id}_{gen}",
            placeholder="Choose images to remove",
        )
        if drop and st.button(f"Remove {len(drop)} image(s)", key=f"trainer_rm_{cls.id}_{gen}"):
            trainer.remove_images(cls, {thumbs[i][0] for i in drop})
            fresh_uploaders()
            st.rerun()
    if st.button(
        "🗑 Delete this class",
        key=f"trainer_del_{cls.id}",
        disabled=len(trainer.classes) <= 2,
        help="At least two classes are needed.",
    ):
        trainer.delete_class(cls.id)
        st.rerun()


def start_training(trainer: TrainingSession, base: str, settings: dict[str, Any]) -> None:
    """Freeze the classes into a run and hand its training to the process-wide job pool."""
    try:
        run = trainer.start_run(base, settings)
    except ValueError as err:
        st.error(str(err), icon="🚫")
        return

    def work(ctx: jobs.JobContext) -> Run:
        def on_epoch(row: dict) -> bool:
            ctx.report(event="epoch", epochs=run.settings["epochs"], **row)
            return ctx.should_stop()

        ctx.partial(run)
        ctx.report(event="start", epoch=0, epochs=run.settings["epochs"])
        TrainingSession.train(run, on_epoch=on_epoch)
        return run

    try:
        job = st.session_state[JOB] = jobs.submit(work, kind="trainer", owner=owner_id())
        job.label = f"Training “{run.name}”"
    except jobs.QueueFull as err:
        trainer.run = None
        st.error(str(err), icon="⏳")


def collect_finished(trainer: TrainingSession) -> None:
    """When the training job has ended, judge its run and register the model for this visitor's pages."""
    job = st.session_state.get(JOB)
    if job is None or not job.finished:
        return
    st.session_state.pop(JOB)
    run = trainer.run
    if job.state == "failed":
        st.error(plain(job.error or "The training stopped with an error."), icon="🚫")
        trainer.run = None
        return
    if run is None or job.state == "cancelled":
        trainer.run = None
        return
    if (
        trainer.finish_run(run, embedder(run.base), base_title=base_title(run.base), stopped=job.state == "stopped")
        is None
    ):
        st.info("Training was stopped before its first epoch finished, so there is no model yet.", icon="⏹")
        return
    card = run.card
    assert card is not None  # finish_run gives every run it returns a card
    card["name"] = add_visitor_model(run.name, run.model, card)
    run.name = card["name"]
    card["title"] = f"Your model · {run.name}"


@st.fragment(run_every=1.0)
def live_training(job: jobs.Job, epochs: int) -> None:
    """The running job, redrawn every second: progress, live curves, Stop. Reruns the page when it ends."""
    job.touch()
    if job.finished:
        st.rerun(scope="app")
    st.progress(min(1.0, len(job.rows("epoch")) / max(epochs, 1)), text=progress_text(job))
    label = "⏹ Stop training" if job.state == "running" else "✖ Leave the queue"
    if st.button(
        label, key=f"trainer_stop_{job.id}", help="Stops after the current epoch; the model keeps what it learnt."
    ):
        job.stop()
    spec = charts.training_curves([], epochs=epochs).to_dict()
    st.vega_lite_chart(
        spec=charts.with_rows(spec, job.rows("epoch")),
        width="content",
        alt="Training and validation loss and accuracy per epoch, growing while it trains",
    )
    st.caption("The curves grow while it trains; you can keep using the page meanwhile.")


def open_elsewhere(name: str) -> None:
    """Buttons that open this visitor model on the feature-map and audit pages."""
    a, b, _ = st.columns([1, 1, 2])
    if a.button("🔍 See its feature maps and Grad-CAM (page 3)", key="trainer_open_fm"):
        request_model(name)
        st.switch_page("pages/feature_maps.py")
    if b.button("🧪 Audit where it fails (page 5)", key="trainer_open_audit"):
        request_model(name)
        st.switch_page("pages/audit.py")


def results(trainer: TrainingSession, run: Run) -> None:
    """How well the run learnt: the test set as the headline (validation beside it), curves, errors."""
    hist, res = run.history, run.results
    assert res is not None, "finish_run judges every run it keeps"
    last = hist.last or {}
    st.markdown(
        f"**{plain(run.name)}** — base model **{base_title(run.base)}**, {len(hist.rows)} of {hist.epochs_planned} "
        f"epochs" + (" (stopped early)" if hist.stopped else "") + f", {last.get('seconds', 0):.1f} s of training, "
        f"{len(run.train_idx)} images trained on, {len(run.val_idx)} held out for validation, "
        f"{len(run.test)} test images."
    )
    head, val, test = res.headline, res.validation, res.test
    cols = st.columns(3)
    if test is not None:
        cols[0].metric(
            "Test accuracy (testing/ images)",
            f"{test.accuracy:.0%}",
            help="Pictures the model never saw while training: the number to report.",
        )
    else:
        cols[0].metric("Test accuracy", "no test set", help="There is no testing/ folder with class folders.")
    cols[1].metric(
        "Validation accuracy (held out of training)",
        f"{val.accuracy:.0%}" if val and val.n_images else "–",
        help="15 % of each class held out of training, as Teachable Machine does.",
    )
    cols[2].metric("Training accuracy (last epoch)", f"{last.get('accuracy', 0):.0%}")
    for sentence in res.sentences:
        if test is None and sentence.startswith("There is no testing/"):
            st.warning(plain(sentence), icon="⚠️")  # the numbers are from a handful of images: say it loudly
        else:
            st.text(sentence)
    st.altair_chart(
        charts.training_curves(hist.rows, epochs=hist.epochs_planned),
        width="content",
        alt="Training and validation loss and accuracy per epoch",
    )
    st.caption(
        "Look at the orange validation curves: if they flatten or rise while the blue training curves keep "
        "improving, the model has started memorising its training images."
    )
    if head is None or not head.n_images:
        return
    what = "test" if head is test else "validation"  # head is not None from here on
    st.subheader(f"On the {what} images" + (" (the headline)" if head is test else " (no test set)"))
    left, right = st.columns([2, 3])
    with left:
        st.markdown(f"**Per-class accuracy ({what})**")
        st.dataframe(
            head.per_class_rows(),
            hide_index=True,
            key=f"trainer_per_class_{what}",
            column_config={
                "accuracy": st.column_config.ProgressColumn("accuracy", min_value=0, max_value=1, format="percent")
            },
        )
        st.caption(
            "A class with a low score is one the model cannot yet tell from the others: add more varied examples."
        )
    with right:
        st.altair_chart(
            charts.confusion_matrix(head.confusion, head.class_names),
            width="content",
            alt=f"Confusion matrix of {run.name} on the {what} images",
        )
        st.caption(
            "Numbers on the diagonal were classified correctly; a number off the diagonal shows which class "
            "the model confused with which."
        )
    if head is test and val is not None and val.n_images:
        with st.expander(
            f"Validation: {val.n_correct} of {val.n_images} images held out of training/ right ({val.accuracy:.0%})"
        ):
            st.dataframe(val.per_class_rows(), hide_index=True, key="trainer_per_class_validation")
            st.caption(
                "Validation images come from training/: the model did not train on them, but they are few "
                "and were watched while training, so the test set above is the fairer measure."
            )
    st.subheader(f"Misclassified {what} images, most confident first")
    if not head.mistakes:
        st.success(f"Every {what} image was classified correctly.")
        return
    keys = [t.key for t in run.test] if head is test else [run.keys[i] for i in run.val_idx]
    grid = st.columns(6)
    for i, m in enumerate(head.mistakes[:24]):
        thumb = trainer.store.thumbnail(keys[m.index])
        with grid[i % 6]:
            if thumb is not None:
                show_image(
                    thumb, alt=f"{m.file}: a {m.true_class} image the model called {m.predicted_class}", width=160
                )
            st.caption(f"{plain(m.file)}  \n{plain(m.true_class)} → {plain(m.predicted_class)} ({m.confidence:.0%})")
    if len(head.mistakes) > 24:
        st.caption(f"… and {len(head.mistakes) - 24} more; the CSV below lists every image.")
    st.caption(
        "Under each image: its file name, its true class → what the model said, and how sure it was. "
        "The first ones are the model's most confident errors: are these images unusual, or mislabelled?"
    )


def dataset_check(check: dataset_check_module.DatasetCheck) -> None:
    """The dataset check before training: a short table and plain sentences (it warns, never blocks)."""
    st.subheader("Check your images before training")
    if check.rows:
        st.dataframe(check.rows, hide_index=True, key="trainer_check_table")
    for sentence in check.sentences:
        if sentence in check.warnings:
            st.warning(plain(sentence), icon="⚠️")
        else:
            st.text(sentence)
    st.caption("These are warnings, not rules: you can train anyway.")


def unsure_threshold() -> float:
    """The confidence below which the CSV's ``unsure`` column says yes, with its explanation."""
    threshold = settings.slider(
        "“unsure” below this confidence",
        0.0,
        1.0,
        key="trainer_unsure",
        default=UNSURE_THRESHOLD,
        url="unsure",
        step=0.05,
        format="%.2f",
    )
    st.caption(UNSURE_EXPLANATION.format(threshold=threshold))
    return float(threshold)
