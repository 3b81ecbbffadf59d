"""Measures for auditing a classifier: where does it fail, and does it know?

Pure numpy functions on arrays; nothing here runs a model. Conventions:

- ``probs``: ``(N, C)`` class probabilities (rows sum to 1), one row per image.
- ``features``: ``(N, D)`` penultimate-layer features (what enters the final Dense layer).
- An **OOD score** is "higher = more out of distribution": ``1 - max softmax``,
  entropy, or a feature distance to the reference set. :func:`auroc` then measures how
  well one score tells a probe set (positives) from the reference set (negatives):
  1.0 perfectly, 0.5 not at all, below 0.5 in reverse (the probes score as *more* typical);
  how well it separates is ``|AUROC - 0.5|``.
- ``confidence`` is the maximum softmax probability, in 0–1; ``correct`` is boolean.

Why several scores: a network trained with softmax is often *confidently* wrong on
images unlike its training data, so confidence alone is not a safety net; distances in
feature space frequently separate such probes better. A seminar should see both.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "label_distribution",
    "confidence_histogram",
    "max_softmax",
    "entropy",
    "knn_distance",
    "fit_mahalanobis",
    "mahalanobis_distance",
    "mahalanobis_scores",
    "ledoit_wolf_shrinkage",
    "auroc",
    "coverage_accuracy",
    "share_abstained",
    "per_class_accuracy",
    "confusion_matrix",
    "reliability_bins",
    "expected_calibration_error",
    "OOD_SCORES",
    "cross_fit_mahalanobis",
    "evaluate",
]


def _probs(probs: np.ndarray) -> np.ndarray:
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] < 1:
        raise ValueError(f"Expected probabilities of shape (N, C), got {probs.shape}.")
    return probs


def label_distribution(top_classes: np.ndarray, n_classes: int, *, normalize: bool = True) -> np.ndarray:
    """How often each class was the top prediction: ``(n_classes,)`` counts or shares.

    With ``normalize`` the shares sum to 1 (an empty set gives all zeros). This is the
    "which topics do abstract works get?" view: a classifier must pick one of its
    categories for every image, whatever the image is.
    """
    top_classes = np.asarray(top_classes, dtype=np.int64).ravel()
    counts = np.bincount(top_classes, minlength=n_classes)[:n_classes].astype(np.float64)
    if normalize:
        total = counts.sum()
        return counts / total if total else counts
    return counts


def confidence_histogram(confidence: ArrayLike, bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Counts of confidences in ``bins`` equal bins over [0, 1]: ``(counts (bins,), edges (bins+1,))``.

    The last bin includes 1.0.
    """
    return np.histogram(np.asarray(confidence, dtype=np.float64), bins=bins, range=(0.0, 1.0))


def max_softmax(probs: np.ndarray) -> np.ndarray:
    """Maximum softmax probability per row, ``(N,)`` in [1/C, 1]: the model's "confidence"."""
    return _probs(probs).max(axis=1)


def entropy(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy per row in nats, ``(N,)``: 0 for one-hot, ``log(C)`` for uniform.

    ``0 · log 0`` counts as 0.
    """
    p = _probs(probs)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return -terms.sum(axis=1)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def knn_distance(features: np.ndarray, reference: np.ndarray, k: int = 1, *, leave_one_out: bool = False) -> np.ndarray:
    """Mean cosine distance (``1 - cos``, in [0, 2]) from each row to its ``k`` nearest reference rows.

    ``(N, D), (M, D) -> (N,)``. Use ``leave_one_out=True`` when ``features`` *is*
    ``reference`` (scoring the reference set itself): each row then ignores itself,
    otherwise every reference image would trivially be at distance 0.
    """
    feats, ref = _unit_rows(features), _unit_rows(reference)
    if ref.shape[0] - int(leave_one_out) < 1:
        raise ValueError("The reference set needs more images to measure a distance to it.")
    distance = 1.0 - feats @ ref.T
    if leave_one_out:
        if distance.shape[0] != distance.shape[1]:
            raise ValueError("leave_one_out needs features and reference to be the same set.")
        np.fill_diagonal(distance, np.inf)
    k = int(np.clip(k, 1, ref.shape[0] - int(leave_one_out)))
    nearest = np.partition(distance, k - 1, axis=1)[:, :k]
    return np.clip(nearest.mean(axis=1), 0.0, 2.0)


def ledoit_wolf_shrinkage(centred: np.ndarray) -> float:
    """Ledoit–Wolf (2004) optimal shrinkage ``alpha`` in [0, 1] towards ``mu · I``.

    ``centred`` is ``(M, D)`` with column means removed. With few images and many
    features the sample covariance is singular; shrinking it towards a scaled identity
    makes it invertible and, by Ledoit–Wolf's estimate, closest to the true covariance.
    Computed from the ``(M, M)`` Gram matrix, so 1 280 features cost no ``D × D`` matrix.
    """
    x = np.asarray(centred, dtype=np.float64)
    m, d = x.shape
    if m < 2:
        return 1.0
    gram = x @ x.T
    trace = np.trace(gram) / m  # trace of the sample covariance S = XᵀX / M
    mu = trace / d
    sum_s2 = np.sum(gram**2) / m**2  # ‖S‖²_F = ‖X Xᵀ‖²_F / M²
    delta = (sum_s2 - 2 * mu * trace + d * mu**2) / d  # ‖S − mu·I‖²_F / D
    row_norms = np.einsum("ij,ij->i", x, x)
    beta = (np.sum(row_norms**2) / m - sum_s2) / (d * m)  # Σ_i ‖x_i x_iᵀ − S‖²_F / (M² D)
    beta = min(beta, delta)
    return float(beta / delta) if delta > 0 else 1.0


def fit_mahalanobis(reference: np.ndarray, shrinkage: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and inverse covariance ``(D, D)`` of the reference features.

    The covariance is ``(1 - a) · S + a · mu · I`` with ``S`` the maximum-likelihood
    sample covariance (divided by ``M``), ``mu = trace(S) / D`` and ``a`` the shrinkage
    (Ledoit–Wolf estimate when ``None``). Explicit and ``O(D³)``: fine for small ``D``;
    the audit itself uses :func:`mahalanobis_scores`, which gives the same distances
    from an ``(M, D)`` decomposition.
    """
    ref = np.asarray(reference, dtype=np.float64)
    if ref.ndim != 2 or ref.shape[0] < 1:
        raise ValueError("The reference set needs at least one image with features.")
    mean = ref.mean(axis=0)
    centred = ref - mean
    d = ref.shape[1]
    sample = centred.T @ centred / ref.shape[0]
    alpha = ledoit_wolf_shrinkage(centred) if shrinkage is None else float(np.clip(shrinkage, 0, 1))
    mu = np.trace(sample) / d
    cov = (1 - alpha) * sample + alpha * (mu if mu > 0 else 1.0) * np.eye(d)
    return mean, np.linalg.pinv(cov, hermitian=True)


def mahalanobis_distance(features: np.ndarray, mean: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """``sqrt((x - mean)ᵀ · precision · (x - mean))`` per row, ``(N, D) -> (N,)``."""
    diff = np.asarray(features, dtype=np.float64) - mean
    squared = np.einsum("nd,de,ne->n", diff, precision, diff)
    return np.sqrt(np.maximum(squared, 0.0))


def mahalanobis_scores(features: np.ndarray, reference: np.ndarray, shrinkage: float | None = None) -> np.ndarray:
    """Mahalanobis distance of each row to the reference set, as :func:`fit_mahalanobis` defines it.

    ``(N, D), (M, D) -> (N,)`` without ever forming a ``D × D`` matrix: with the thin SVD
    ``X = U s Vᵀ`` of the centred reference, the shrunk covariance is
    ``c·I + V diag(b·s²) Vᵀ`` (``c = a·mu``, ``b = (1 - a) / M``), whose inverse acts on the
    span of ``V`` as ``1 / (c + b·s²)`` and on the rest as ``1 / c``. For 1 280 features
    and 30 reference images this is thousands of times cheaper than inverting ``D × D``.
    """
    ref = np.asarray(reference, dtype=np.float64)
    if ref.ndim != 2 or ref.shape[0] < 1:
        raise ValueError("The reference set needs at least one image with features.")
    m, d = ref.shape
    mean = ref.mean(axis=0)
    centred = ref - mean
    alpha = ledoit_wolf_shrinkage(centred) if shrinkage is None else float(np.clip(shrinkage, 0, 1))
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    mu = float(np.sum(s**2) / m / d)
    c = alpha * (mu if mu > 0 else 1.0)
    eig = c + (1 - alpha) * s**2 / m
    keep = eig > 1e-12 * max(float(eig.max(initial=0.0)), 1e-300)
    diff = np.asarray(features, dtype=np.float64).reshape(-1, d) - mean
    inside = diff @ vt.T  # coordinates along the reference's principal directions
    squared = np.sum(inside[:, keep] ** 2 / eig[keep], axis=1)
    if c > 0:  # the rest of the space, where only the shrinkage target's variance c remains
        squared += np.maximum(np.sum(diff**2, axis=1) - np.sum(inside**2, axis=1), 0.0) / c
    return np.sqrt(np.maximum(squared, 0.0))


def _midranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    ranks = np.empty(len(values), dtype=np.float64)
    # Tied values share the mean of the ranks they occupy.
    unique, first, counts = np.unique(sorted_values, return_index=True, return_counts=True)
    mean_rank = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(mean_rank, counts)
    return ranks


def auroc(negative_scores: ArrayLike, positive_scores: ArrayLike) -> float:
    """Area under the ROC curve: P(score of a random positive > a random negative), ties count ½.

    Computed from ranks (Mann–Whitney U). Positives are the probe images, negatives the
    reference images, scores "higher = more out of distribution". Returns ``nan`` when
    either set is empty.
    """
    neg = np.asarray(negative_scores, dtype=np.float64).ravel()
    pos = np.asarray(positive_scores, dtype=np.float64).ravel()
    if len(neg) == 0 or len(pos) == 0:
        return float("nan")
    ranks = _midranks(np.concatenate([neg, pos]))
    u = ranks[len(neg) :].sum() - len(pos) * (len(pos) + 1) / 2.0
    return float(u / (len(neg) * len(pos)))


def coverage_accuracy(
    confidence: ArrayLike, correct: ArrayLike, thresholds: ArrayLike | None = None
) -> dict[str, np.ndarray]:
    """For each abstain threshold ``t``: the model answers only when ``confidence >= t``.

    Returns ``{"threshold", "coverage", "accuracy"}`` arrays: coverage is the share of
    images answered, accuracy the share correct among those answered (``nan`` when none is).
    Default thresholds: 0, 0.05, …, 1.
    """
    conf = np.asarray(confidence, dtype=np.float64).ravel()
    ok = np.asarray(correct, dtype=bool).ravel()
    thresholds = np.linspace(0, 1, 21) if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    answered = conf[None, :] >= thresholds[:, None]
    n_answered = answered.sum(axis=1)
    coverage = n_answered / max(len(conf), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(n_answered > 0, (answered & ok[None, :]).sum(axis=1) / n_answered, np.nan)
    return {"threshold": thresholds, "coverage": coverage, "accuracy": accuracy}


def share_abstained(confidence: ArrayLike, threshold: float) -> float:
    """Share of images whose confidence is below ``threshold`` (the model says "unsure")."""
    conf = np.asarray(confidence, dtype=np.float64).ravel()
    return float((conf < threshold).mean()) if len(conf) else float("nan")


def confusion_matrix(true: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """``(n_classes, n_classes)`` counts; row = true class, column = predicted class."""
    true = np.asarray(true, dtype=np.int64).ravel()
    predicted = np.asarray(predicted, dtype=np.int64).ravel()
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (true, predicted), 1)
    return matrix


def per_class_accuracy(true: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Recall per true class, ``(n_classes,)``; ``nan`` for classes with no image."""
    matrix = confusion_matrix(true, predicted, n_classes)
    totals = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(matrix) / np.where(totals > 0, totals, 1), np.nan)


def reliability_bins(confidence: ArrayLike, correct: ArrayLike, n_bins: int = 10) -> dict[str, np.ndarray]:
    """Group images into ``n_bins`` equal confidence bins over [0, 1] (right-closed: ``(lo, hi]``, first bin ``[0, hi]``).

    Returns ``{"lower", "upper", "count", "confidence", "accuracy"}`` arrays of length
    ``n_bins``: mean confidence and accuracy per bin (``nan`` when empty). A calibrated
    model has accuracy ≈ confidence in every bin.
    """
    conf = np.asarray(confidence, dtype=np.float64).ravel()
    ok = np.asarray(correct, dtype=np.float64).ravel()
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(index, minlength=n_bins).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(index, weights=conf, minlength=n_bins) / count
        accuracy = np.bincount(index, weights=ok, minlength=n_bins) / count
    return {
        "lower": edges[:-1],
        "upper": edges[1:],
        "count": count,
        "confidence": np.where(count > 0, mean_conf, np.nan),
        "accuracy": np.where(count > 0, accuracy, np.nan),
    }


def expected_calibration_error(confidence: ArrayLike, correct: ArrayLike, n_bins: int = 10) -> float:
    """ECE: ``sum_b (n_b / N) · |accuracy_b - confidence_b|`` over the reliability bins, in [0, 1]."""
    bins = reliability_bins(confidence, correct, n_bins)
    total = bins["count"].sum()
    if total == 0:
        return float("nan")
    filled = bins["count"] > 0
    gaps = np.abs(bins["accuracy"][filled] - bins["confidence"][filled])
    return float(np.sum(bins["count"][filled] / total * gaps))


# ----------------------------------------------------------------------------- whole audit
#: Names of the out-of-distribution scores, in the order charts and reports show them.
OOD_SCORES = ("1 − max softmax", "Entropy", "kNN cosine distance", "Mahalanobis distance")


def cross_fit_mahalanobis(reference: np.ndarray, folds: int = 5, shrinkage: float | None = None) -> np.ndarray:
    """Mahalanobis distance of each reference row to a model fitted *without* it, ``(M,)``.

    Scoring the reference set against a covariance fitted on itself would make reference
    images look closer than new in-distribution images ever are, and inflate the AUROC;
    so each of ``folds`` slices is scored against the other slices.
    """
    ref = np.asarray(reference, dtype=np.float64)
    m = len(ref)
    folds = int(np.clip(folds, 2, m)) if m >= 3 else m
    out = np.empty(m)
    if m < 3:  # too few images to hold any out: score in-sample
        return mahalanobis_scores(ref, ref, shrinkage)
    for part in np.array_split(np.arange(m), folds):
        rest = np.setdiff1d(np.arange(m), part)
        out[part] = mahalanobis_scores(ref[part], ref[rest], shrinkage)
    return out


def evaluate(
    sets: dict[str, dict],
    reference: str,
    *,
    threshold: float = 0.5,
    k: int = 5,
    n_bins: int = 10,
) -> dict:
    """Every measure of the audit from model outputs, for a reference set and probe sets.

    ``sets`` maps a set name to ``{"probs": (N, C), "features": (N, D), "labels": (N,) | None}``
    (labels are true class indices, only for sets whose classes the model knows).
    Returns a JSON-able-ish dict of numpy arrays:

    - ``scores[set]``: ``top_class``, ``confidence``, ``entropy``, ``knn``, ``mahalanobis``,
      ``abstained`` (confidence below ``threshold``), ``correct`` (or ``None``);
    - ``auroc[probe_set][score_name]`` for each of :data:`OOD_SCORES` (probe = positive);
    - ``caught[set]``: share abstained; ``coverage``: :func:`coverage_accuracy` on the
      reference set (needs labels); ``reliability``/``ece``/``confusion``/``per_class``
      for the reference set when it has labels.
    """
    if reference not in sets:
        raise ValueError(f"The reference set “{reference}” has no images.")
    ref_feats = np.asarray(sets[reference]["features"], dtype=np.float64)
    if len(ref_feats) < 2:
        raise ValueError("The reference set needs at least two images to compare the others with.")
    k_eff = int(min(k, len(ref_feats) - 1))
    scores: dict[str, dict] = {}
    for name, data in sets.items():
        probs = _probs(data["probs"])
        feats = np.asarray(data["features"], dtype=np.float64)
        if name == reference:
            knn = knn_distance(feats, ref_feats, k_eff, leave_one_out=True)
            maha = cross_fit_mahalanobis(feats)
        else:
            knn = knn_distance(feats, ref_feats, k_eff) if len(feats) else np.zeros(0)
            maha = mahalanobis_scores(feats, ref_feats) if len(feats) else np.zeros(0)
        conf = max_softmax(probs) if len(probs) else np.zeros(0)
        top = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=np.int64)
        labels = data.get("labels")
        correct = None if labels is None else (np.asarray(labels) == top)
        scores[name] = {
            "top_class": top,
            "confidence": conf,
            "entropy": entropy(probs) if len(probs) else np.zeros(0),
            "knn": knn,
            "mahalanobis": maha,
            "abstained": conf < threshold,
            "correct": correct,
        }

    def ood(s: dict) -> dict[str, np.ndarray]:
        return dict(zip(OOD_SCORES, (1 - s["confidence"], s["entropy"], s["knn"], s["mahalanobis"])))

    ref_ood = ood(scores[reference])
    result = {
        "reference": reference,
        "threshold": float(threshold),
        "k": k_eff,
        "scores": scores,
        "auroc": {
            name: {score: auroc(ref_ood[score], values) for score, values in ood(s).items()}
            for name, s in scores.items()
            if name != reference
        },
        "caught": {name: share_abstained(s["confidence"], threshold) for name, s in scores.items()},
    }
    ref = scores[reference]
    if ref["correct"] is not None:
        n_classes = _probs(sets[reference]["probs"]).shape[1]
        labels = np.asarray(sets[reference]["labels"])
        result["coverage"] = coverage_accuracy(ref["confidence"], ref["correct"])
        result["reliability"] = reliability_bins(ref["confidence"], ref["correct"], n_bins)
        result["ece"] = expected_calibration_error(ref["confidence"], ref["correct"], n_bins)
        result["accuracy"] = float(np.mean(ref["correct"]))
        result["confusion"] = confusion_matrix(labels, ref["top_class"], n_classes)
        result["per_class"] = per_class_accuracy(labels, ref["top_class"], n_classes)
    return result
