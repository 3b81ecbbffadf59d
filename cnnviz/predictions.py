"""One table of predictions, one row per image, for the trainer, the audit and the command line.

The lesson ends with a loop that writes each image's topic to a CSV; a seminar then opens
it in a spreadsheet, sorts by confidence and looks again at the pictures the model was
unsure about. :func:`prediction_rows` builds those rows and :func:`rows_to_csv` writes
them; every CSV this app offers goes through these two functions, so the columns mean the
same everywhere:

``file``, ``folder``, ``true class`` (empty when unknown), ``predicted class``,
``confidence``, ``correct`` (empty when the true class is unknown), ``unsure``, then one
``probability: <class>`` column per class in the model's output order.

Never imports TensorFlow.
"""

from __future__ import annotations

import csv
import io
from typing import Sequence

import numpy as np

__all__ = [
    "UNSURE_THRESHOLD",
    "PROBABILITY_PREFIX",
    "prediction_rows",
    "rows_to_csv",
    "no_formula",
    "UNSURE_EXPLANATION",
]

#: Default confidence below which a row is flagged ``unsure``.
UNSURE_THRESHOLD = 0.5
#: Prefix of the per-class probability columns (a class may be called "file" or "folder").
PROBABILITY_PREFIX = "probability: "
#: The ``unsure`` column in words a page or README can show as it is ({threshold} filled in).
UNSURE_EXPLANATION = (
    "“unsure” is yes when the model's confidence (the probability of the class it chose) is "
    "below {threshold:.0%}. The probabilities always add up to 100 %, so the model must pick one of "
    "its classes even for an image that fits none of them; a low confidence is its way of saying "
    "that several classes looked about as likely. Look at those images yourself."
)


def prediction_rows(
    files: Sequence[str],
    probabilities: np.ndarray,
    class_names: Sequence[str],
    *,
    folders: Sequence[str] | None = None,
    true_classes: Sequence[str | None] | None = None,
    threshold: float = UNSURE_THRESHOLD,
    decimals: int | None = 4,
) -> list[dict]:
    """Rows for a table or CSV, one per image, in the order given.

    ``probabilities`` is ``(N, C)`` over ``class_names``; ``files`` and ``folders`` are
    ``N`` strings (``folders`` defaults to ""), ``true_classes`` ``N`` class names or
    ``None`` per image (unknown). Columns as in the module docstring; numbers are rounded
    to ``decimals`` places (``None``: not rounded; the CSV writes 6 significant digits).

    The ``unsure`` flag is ``True`` when the confidence (the probability of the predicted
    class) is below ``threshold``. A classifier trained with softmax must give every image
    one of its classes, and its probabilities always add up to 100 %; a low top
    probability means several classes looked about as likely, so the answer deserves a
    person's second look. A high confidence is no guarantee: a model can be confidently
    wrong on an image unlike its training images.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(len(files), len(class_names))
    folders = list(folders) if folders is not None else [""] * len(files)
    truths = list(true_classes) if true_classes is not None else [None] * len(files)
    if not len(folders) == len(truths) == len(files):
        raise ValueError("files, folders and true_classes must have one entry per image.")

    def r(value: float) -> float:
        return round(value, decimals) if decimals is not None else value

    rows = []
    for name, folder, truth, probs in zip(files, folders, truths, probabilities):
        best = int(np.argmax(probs))
        predicted = str(class_names[best])
        confidence = float(probs[best])
        row = {
            "file": str(name),
            "folder": str(folder),
            "true class": "" if truth is None else str(truth),
            "predicted class": predicted,
            "confidence": r(confidence),
            "correct": "" if truth is None else truth == predicted,
            "unsure": confidence < threshold,
        }
        row.update({f"{PROBABILITY_PREFIX}{cls}": r(float(p)) for cls, p in zip(class_names, probs)})
        rows.append(row)
    return rows


def no_formula(value: object) -> str:
    """``value`` as text that a spreadsheet shows as text: a leading ``= + - @`` gets an apostrophe.

    A file called ``=HYPERLINK(…).png`` would otherwise run as a formula when the CSV is opened.
    """
    value = str(value)
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def rows_to_csv(rows: Sequence[dict]) -> str:
    """CSV text (header + one line per row) of :func:`prediction_rows` output (or any list of same-keyed dicts).

    Text cells are protected with :func:`no_formula`; ``True``/``False`` are written as
    ``yes``/``no`` (what a spreadsheet reader expects), numbers as they are.
    """
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=[no_formula(k) for k in rows[0]], lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({no_formula(k): _cell(v) for k, v in row.items()})
    return buffer.getvalue()


def _cell(value: object) -> object:
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, str):
        return no_formula(value)
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}"
    return value
