"""Export an audit: a self-contained HTML report and a CSV with one row per image.

The HTML file has no external resources: charts are rendered to SVG (``vl-convert``)
and embedded as ``data:`` images, thumbnails as PNG ``data:`` URIs, so a seminar can
e-mail it, open it offline, or print it. Every name a visitor typed or uploaded (set
names, file names, class names of an uploaded model) is HTML-escaped: a file called
``<script>…</script>.png`` shows up as text, never runs.

The report ends with prompts for a seminar discussion, because an audit's numbers are
where the argument starts, not where it ends.

An audit ``run`` is a plain dict:

- ``card``: the model card (``name``, ``title``, ``kind``, ``classes``, ``input_size`` …);
- ``class_names``: ``list[str]``;
- ``sets``: ``{set name: {"files": [str], "probs": (N, C), "features": (N, D), "labels": (N,) | None}}``;
- ``evaluation``: the dict from :func:`cnnviz.audit.measures.evaluate`;
- ``settings``: ``{name: value}`` shown as they were chosen (seed, threshold, k …).

Never imports TensorFlow.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np
import pandas as pd
from PIL import Image

from cnnviz.images import thumbnail

if TYPE_CHECKING:
    import altair as alt

__all__ = [
    "DISCUSSION_PROMPTS",
    "with_threshold",
    "best_separating_scores",
    "results_table",
    "to_csv",
    "to_html",
    "chart_svg",
    "png_data_uri",
    "most_confident_failures",
]

#: Closing questions for a seminar (shown at the end of every report).
DISCUSSION_PROMPTS = (
    "Who chose the categories? The model can only answer with the classes it was given; what does "
    "forcing every image into one of them do to an abstract painting, a photograph, a page of text?",
    "What did the training images leave out? Which periods, places, makers, media and subjects are "
    "missing, and which probe sets exposed that?",
    "What does “confidence” mean here? A maximum softmax probability of 95 % on random noise is not "
    "knowledge; compare it with the feature-distance scores and the share the model abstained on.",
    "Where would you set the abstain threshold for your collection, and who pays for the images it still gets wrong?",
    "What do the Grad-CAM maps show, and what can they not show about why a label was chosen?",
)


def with_threshold(run: dict, threshold: float) -> dict:
    """``run`` re-scored for another abstain threshold, in place, from its stored outputs (no model run).

    Abstaining is arithmetic on the stored probabilities, so the page can move the threshold
    live; the report's settings follow. A run already at ``threshold`` is returned unchanged.
    """
    evaluation = run["evaluation"]
    if evaluation["threshold"] != float(threshold):
        from cnnviz.audit import measures  # pure numpy

        run["evaluation"] = measures.evaluate(
            run["sets"], evaluation["reference"], threshold=threshold, k=evaluation["k"]
        )
        run.setdefault("settings", {})["abstain threshold"] = threshold
    return run


def best_separating_scores(evaluation: Mapping) -> dict[str, tuple[str, float]]:
    """For each probe set, the score that tells it from the reference best: ``{probe: (score, AUROC)}``.

    Scores whose AUROC is undefined (NaN) are passed over; a probe set without any defined
    AUROC is left out.
    """
    best: dict[str, tuple[str, float]] = {}
    for probe, aurocs in evaluation["auroc"].items():
        defined = {score: float(v) for score, v in aurocs.items() if v == v}
        if defined:
            score = max(defined, key=defined.__getitem__)
            best[probe] = (score, defined[score])
    return best


def results_table(run: Mapping) -> pd.DataFrame:
    """One row per image: set, file, true class, top class, confidence, OOD scores, abstained, all class scores.

    Class-score columns are named ``score: <class>``, in the model's class order.
    """
    names = list(run["class_names"])
    evaluation = run["evaluation"]
    frames = []
    for set_name, data in run["sets"].items():
        s = evaluation["scores"][set_name]
        probs = np.asarray(data["probs"], dtype=float)
        labels = data.get("labels")
        frame = pd.DataFrame(
            {
                "set": set_name,
                "role": "reference" if set_name == evaluation["reference"] else "probe",
                "file": list(data["files"]),
                "true_class": [names[int(i)] for i in labels] if labels is not None else [""] * len(probs),
                "top_class": [names[int(i)] for i in s["top_class"]],
                "confidence": s["confidence"],
                "entropy": s["entropy"],
                "knn_distance": s["knn"],
                "mahalanobis": s["mahalanobis"],
                "abstained": s["abstained"].astype(bool),
            }
        )
        scores = (
            pd.DataFrame(probs, columns=[f"score: {n}" for n in names])
            if len(probs)
            else pd.DataFrame(columns=[f"score: {n}" for n in names])
        )
        frames.append(pd.concat([frame, scores], axis=1))
    return pd.concat(frames, ignore_index=True)


def to_csv(run: Mapping) -> bytes:
    """One row per image as UTF-8 CSV bytes (opens in a spreadsheet), built by :mod:`cnnviz.predictions`.

    Columns: ``set``, ``role``, then the shared prediction columns (``file``, ``folder``,
    ``true class``, ``predicted class``, ``confidence``, ``correct``, ``unsure`` — below the
    audit's abstain threshold —, ``probability: <class>`` …), then the audit's own
    ``entropy``, ``knn_distance`` and ``mahalanobis``. Cells a spreadsheet would run as a
    formula (starting with ``= + - @``) get a leading apostrophe.
    """
    from cnnviz.predictions import prediction_rows, rows_to_csv

    names = list(run["class_names"])
    evaluation = run["evaluation"]
    rows: list[dict] = []
    for set_name, data in run["sets"].items():
        s = evaluation["scores"][set_name]
        labels = data.get("labels")
        files = [str(f) for f in data["files"]]
        folders = [f.rsplit("/", 1)[0] if "/" in f else "" for f in files]
        shared = prediction_rows(
            [f.rsplit("/", 1)[-1] for f in files],
            np.asarray(data["probs"], dtype=float).reshape(len(files), len(names)),
            names,
            folders=folders,
            true_classes=None if labels is None else [names[int(i)] for i in labels],
            threshold=float(evaluation["threshold"]),
            decimals=None,
        )
        role = "reference" if set_name == evaluation["reference"] else "probe"
        for i, row in enumerate(shared):
            rows.append(
                {
                    "set": set_name,
                    "role": role,
                    **row,
                    "entropy": float(s["entropy"][i]),
                    "knn_distance": float(s["knn"][i]),
                    "mahalanobis": float(s["mahalanobis"][i]),
                }
            )
    return rows_to_csv(rows).encode("utf-8")


def chart_svg(chart: alt.TopLevelMixin) -> str | None:
    """An Altair chart as SVG text (rendered offline by ``vl-convert``), or ``None`` if it cannot be."""
    try:
        buffer = io.StringIO()
        chart.save(buffer, format="svg")
        return buffer.getvalue()
    except Exception:  # vl-convert missing or a chart it cannot render: the report says so instead
        return None


def png_data_uri(image: np.ndarray, max_side: int = 160) -> str:
    """A small PNG ``data:`` URI of an ``(H, W, 3)`` uint8 image (longest side ``max_side``)."""
    buffer = io.BytesIO()
    Image.fromarray(thumbnail(image, max_side)).save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def most_confident_failures(table: pd.DataFrame, n: int = 12) -> pd.DataFrame:
    """Rows of the most confident wrong (reference, labelled) or out-of-scope (probe) answers.

    A probe image is out of scope by definition: any confident answer there is a failure
    the seminar should see. Sorted by confidence, highest first; abstained images excluded.
    """
    wrong = (table["role"] == "reference") & (table["true_class"] != "") & (table["true_class"] != table["top_class"])
    out_of_scope = table["role"] == "probe"
    picked = table[(wrong | out_of_scope) & ~table["abstained"]]
    picked = picked.assign(failure=np.where(picked["role"] == "probe", "out of scope", "wrong"))
    return picked.sort_values("confidence", ascending=False).head(n)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: object) -> str:
    if isinstance(value, (float, np.floating)):
        return "—" if value != value else f"{value:.3f}"
    return _e(value)


def to_html(
    run: Mapping,
    *,
    charts: Mapping[str, tuple] | None = None,
    thumbnails: Mapping[str, Sequence[np.ndarray]] | None = None,
    gallery: Sequence[Mapping] | None = None,
    title: str = "cnnviz audit: where does the classifier fail?",
) -> str:
    """The whole audit as one self-contained HTML page (UTF-8 text).

    ``charts``: ``{heading: (altair chart, "what to look at" sentence)}``, rendered to SVG.
    ``thumbnails``: ``{set name: [image, …]}`` in the order of ``run["sets"][set]["files"]``.
    ``gallery``: ``[{"image", "heatmap" (optional overlay), "set", "file", "top_class",
    "confidence", "failure"}]``, the most confident failures with Grad-CAM.
    """
    evaluation = run["evaluation"]
    card = dict(run.get("card") or {})
    table = results_table(run)
    sets = list(run["sets"])
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # Nothing in this file may load from elsewhere or run: no scripts at all.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">",
        f"<title>{_e(title)}</title>",
        "<style>body{font:18px/1.45 system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}"
        "th{background:#f2f2f2}.num{text-align:right;font-variant-numeric:tabular-nums}"
        ".grid{display:flex;flex-wrap:wrap;gap:10px}.grid figure{margin:0;width:170px;font-size:13px;word-break:break-word}"
        ".grid img{width:160px;border:1px solid #ccc}.grid figure.pair{width:330px}.pair img{margin-right:4px}.chart img{max-width:100%}.note{color:#555;font-style:italic}"
        "</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<p>Made with cnnviz on {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC. "
        f"Reference set: <b>{_e(evaluation['reference'])}</b>; probe sets: "
        + (", ".join(f"<b>{_e(s)}</b>" for s in sets if s != evaluation["reference"]) or "none")
        + ".</p>",
        "<h2>Model card</h2>",
        _key_values({k: v for k, v in card.items() if k != "classes" and v not in ("", None)}),
        f"<p>Classes ({len(run['class_names'])}): "
        + _e(", ".join(map(str, run["class_names"][:60])))
        + (" …" if len(run["class_names"]) > 60 else "")
        + "</p>",
        "<h2>Settings</h2>",
        _key_values(run.get("settings") or {}),
        "<h2>Numbers</h2>",
        _sets_table(table, evaluation, sets),
        "<h3>Telling probes from references (AUROC)</h3>",
        "<p>1.0: the score is higher for every probe image than for every reference image; 0.5: it cannot tell "
        "them apart; below 0.5 it ranks them in reverse (the probes look more typical than the references). "
        "Separation is the distance from 0.5.</p>",
        _auroc_table(evaluation),
    ]
    if "accuracy" in evaluation:
        parts.append(
            f"<p>Reference accuracy: <b>{evaluation['accuracy']:.1%}</b>; expected calibration error (ECE): "
            f"<b>{evaluation['ece']:.3f}</b>.</p>"
        )
    for heading, (chart, sentence) in (charts or {}).items():
        svg = chart_svg(chart)
        parts.append(f"<h3>{_e(heading)}</h3>")
        if svg is None:
            parts.append('<p class="note">This chart could not be rendered offline (vl-convert is not installed).</p>')
        else:
            uri = "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")
            parts.append(f'<div class="chart"><img src="{uri}" alt="{_e(heading)}"></div>')
        parts.append(f"<p>{_e(sentence)}</p>")
    if gallery:
        parts.append(
            "<h2>Most confident wrong or out-of-scope answers (with Grad-CAM)</h2>"
            '<p>Each pair: the image, then where the evidence for its label was found.</p><div class="grid">'
        )
        for item in gallery:
            caption = (
                f"{_e(item['set'])} / {_e(item['file'])}<br>→ <b>{_e(item['top_class'])}</b> "
                f"{float(item['confidence']):.0%} ({_e(item.get('failure', ''))})"
            )
            parts.append(f'<figure class="pair"><img src="{png_data_uri(item["image"])}" alt="{_e(item["file"])}">')
            if item.get("heatmap") is not None:
                parts.append(f'<img src="{png_data_uri(item["heatmap"])}" alt="Grad-CAM of {_e(item["file"])}">')
            parts.append(f"<figcaption>{caption}</figcaption></figure>")
        parts.append("</div>")
    if thumbnails:
        parts.append("<h2>All images</h2>")
        for set_name in sets:
            images = thumbnails.get(set_name) or []
            rows = table[table["set"] == set_name].reset_index(drop=True)
            parts.append(f'<h3>{_e(set_name)}</h3><div class="grid">')
            for i, image in enumerate(images[: len(rows)]):
                row = rows.iloc[i]
                flag = " · abstained" if row["abstained"] else ""
                parts.append(
                    f'<figure><img src="{png_data_uri(image)}" alt="{_e(row["file"])}"><figcaption>{_e(row["file"])}<br>'
                    f"→ {_e(row['top_class'])} {row['confidence']:.0%}{flag}</figcaption></figure>"
                )
            parts.append("</div>")
    parts.append("<h2>For the seminar</h2><ol>" + "".join(f"<li>{_e(p)}</li>" for p in DISCUSSION_PROMPTS) + "</ol>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _key_values(values: Mapping) -> str:
    if not values:
        return '<p class="note">none</p>'
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_fmt(v)}</td></tr>" for k, v in values.items())
    return f"<table>{rows}</table>"


def _sets_table(table: pd.DataFrame, evaluation: Mapping, sets: Sequence[str]) -> str:
    head = (
        "<table><tr><th>Set</th><th>Role</th><th>Images</th><th>Mean confidence</th><th>Mean entropy</th>"
        "<th>Mean kNN distance</th><th>Share abstained</th><th>Most frequent top class</th></tr>"
    )
    rows = []
    for name in sets:
        part = table[table["set"] == name]
        common = part["top_class"].value_counts()
        top = f"{common.index[0]} ({common.iloc[0] / len(part):.0%})" if len(common) else "—"
        rows.append(
            f"<tr><td>{_e(name)}</td><td>{'reference' if name == evaluation['reference'] else 'probe'}</td>"
            f"<td class=num>{len(part)}</td><td class=num>{_fmt(part['confidence'].mean())}</td>"
            f"<td class=num>{_fmt(part['entropy'].mean())}</td><td class=num>{_fmt(part['knn_distance'].mean())}</td>"
            f"<td class=num>{evaluation['caught'][name]:.0%}</td><td>{_e(top)}</td></tr>"
        )
    return head + "".join(rows) + "</table>"


def _auroc_table(evaluation: Mapping) -> str:
    aurocs = evaluation["auroc"]
    if not aurocs:
        return '<p class="note">No probe set yet.</p>'
    scores = list(next(iter(aurocs.values())))
    head = "<table><tr><th>Probe set</th>" + "".join(f"<th>{_e(s)}</th>" for s in scores) + "</tr>"
    rows = "".join(
        f"<tr><td>{_e(name)}</td>" + "".join(f"<td class=num>{_fmt(values[s])}</td>" for s in scores) + "</tr>"
        for name, values in aurocs.items()
    )
    return head + rows + "</table>"
