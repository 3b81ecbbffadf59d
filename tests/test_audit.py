"""The audit's measures match values computed by hand on tiny arrays."""
from __future__ import annotations

import math

import numpy as np
import pytest

from cnnviz import audit


def test_max_softmax_and_entropy_by_hand():
    probs = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.7, 0.2, 0.1]])
    np.testing.assert_allclose(audit.max_softmax(probs), [1.0, 0.5, 1 / 3, 0.7])
    expected = [0.0, math.log(2), math.log(3), -(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1))]
    np.testing.assert_allclose(audit.entropy(probs), expected, atol=1e-12)


def test_auroc_by_hand_with_ties():
    # Pairs (neg, pos): pos > neg counts 1, tie ½.  neg = [0.1, 0.4, 0.35], pos = [0.8, 0.4]
    # 0.8 beats all three (3); 0.4 beats 0.1 and 0.35 (2), ties 0.4 (½) -> 5.5 / 6.
    assert audit.auroc([0.1, 0.4, 0.35], [0.8, 0.4]) == pytest.approx(5.5 / 6)
    assert audit.auroc([0, 1], [2, 3]) == 1.0
    assert audit.auroc([2, 3], [0, 1]) == 0.0
    assert audit.auroc([1, 1, 1], [1, 1]) == 0.5
    assert math.isnan(audit.auroc([], [1.0]))


def test_auroc_matches_pairwise_definition_on_random_scores():
    rng = np.random.default_rng(0)
    neg, pos = rng.integers(0, 5, 40).astype(float), rng.integers(1, 6, 30).astype(float)
    pairwise = ((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean()
    assert audit.auroc(neg, pos) == pytest.approx(pairwise)


def test_reliability_bins_and_ece_by_hand():
    conf = np.array([0.05, 0.15, 0.25, 0.55, 0.6, 0.95, 1.0])
    ok = np.array([0, 0, 1, 1, 0, 1, 1], dtype=bool)
    bins = audit.reliability_bins(conf, ok, n_bins=2)
    # (0, .5]: .05 .15 .25 -> mean conf .15, acc 1/3;  (.5, 1]: .55 .6 .95 1.0 -> mean .775, acc 3/4
    np.testing.assert_array_equal(bins["count"], [3, 4])
    np.testing.assert_allclose(bins["confidence"], [0.15, 0.775])
    np.testing.assert_allclose(bins["accuracy"], [1 / 3, 0.75])
    expected = 3 / 7 * abs(1 / 3 - 0.15) + 4 / 7 * abs(0.75 - 0.775)
    assert audit.expected_calibration_error(conf, ok, n_bins=2) == pytest.approx(expected)
    # Boundary values are right-closed: 0.5 falls in the first of two bins, 0.0 too.
    assert audit.reliability_bins([0.0, 0.5], [1, 1], n_bins=2)["count"].tolist() == [2, 0]
    ten = audit.reliability_bins(conf, ok, n_bins=10)
    assert np.isnan(ten["accuracy"][3]) and ten["count"].sum() == len(conf)


def test_perfectly_calibrated_has_zero_ece():
    conf = np.array([0.75] * 4)
    assert audit.expected_calibration_error(conf, [1, 1, 1, 0]) == pytest.approx(0.0)


def test_knn_cosine_distance_by_hand():
    reference = np.array([[1.0, 0.0], [0.0, 2.0]])
    features = np.array([[3.0, 0.0], [1.0, 1.0], [-1.0, 0.0]])
    # cos to (1,0) and (0,1): [1, 0], [.7071, .7071], [-1, 0]
    np.testing.assert_allclose(audit.knn_distance(features, reference, k=1), [0.0, 1 - 1 / math.sqrt(2), 1.0])
    np.testing.assert_allclose(audit.knn_distance(features, reference, k=2), [0.5, 1 - 1 / math.sqrt(2), 1.5])
    # Leave-one-out: each reference row ignores itself, so the two orthogonal rows are 1 apart.
    np.testing.assert_allclose(audit.knn_distance(reference, reference, k=1, leave_one_out=True), [1.0, 1.0])


def test_mahalanobis_by_hand():
    reference = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [2.0, 4.0]])
    mean, precision = audit.fit_mahalanobis(reference, shrinkage=0.0)
    np.testing.assert_allclose(mean, [1.0, 2.0])
    # Sample covariance (÷M) is diag(1, 4): distance of (3, 2) is 2/1 = 2, of (1, 6) is 4/2 = 2.
    np.testing.assert_allclose(audit.mahalanobis_distance(np.array([[3.0, 2.0], [1.0, 6.0], [1.0, 2.0]]), mean, precision), [2.0, 2.0, 0.0])
    # Full shrinkage: covariance mu·I with mu = (1 + 4) / 2 = 2.5.
    mean, precision = audit.fit_mahalanobis(reference, shrinkage=1.0)
    np.testing.assert_allclose(precision, np.eye(2) / 2.5)


def test_ledoit_wolf_matches_its_formula_and_makes_singular_covariance_invertible():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 20))  # fewer images than features: sample covariance is singular
    centred = x - x.mean(axis=0)
    n, d = centred.shape
    s = centred.T @ centred / n
    mu = np.trace(s) / d
    delta = ((s - mu * np.eye(d)) ** 2).sum() / d
    beta = sum(((np.outer(row, row) - s) ** 2).sum() for row in centred) / n**2 / d
    assert audit.ledoit_wolf_shrinkage(centred) == pytest.approx(min(beta, delta) / delta)
    mean, precision = audit.fit_mahalanobis(x)
    assert np.all(np.isfinite(precision))
    assert np.all(np.linalg.eigvalsh(precision) > 0)


def test_coverage_accuracy_and_share_abstained():
    conf = np.array([0.9, 0.8, 0.6, 0.3])
    ok = np.array([1, 1, 0, 0], dtype=bool)
    curve = audit.coverage_accuracy(conf, ok, thresholds=np.array([0.0, 0.5, 0.85, 0.95]))
    np.testing.assert_allclose(curve["coverage"], [1.0, 0.75, 0.25, 0.0])
    np.testing.assert_allclose(curve["accuracy"][:3], [0.5, 2 / 3, 1.0])
    assert np.isnan(curve["accuracy"][3])
    assert audit.share_abstained(conf, 0.7) == 0.5


def test_labels_confusion_and_per_class_accuracy():
    true = np.array([0, 0, 1, 1, 1, 2])
    pred = np.array([0, 1, 1, 1, 0, 1])
    np.testing.assert_array_equal(audit.confusion_matrix(true, pred, 3), [[1, 1, 0], [1, 2, 0], [0, 1, 0]])
    np.testing.assert_allclose(audit.per_class_accuracy(true, pred, 3), [0.5, 2 / 3, 0.0])
    assert np.isnan(audit.per_class_accuracy(true, pred, 4)[3])
    np.testing.assert_allclose(audit.label_distribution(pred, 3), [2 / 6, 4 / 6, 0.0])
    np.testing.assert_array_equal(audit.label_distribution(pred, 3, normalize=False), [2, 4, 0])
    counts, edges = audit.confidence_histogram([0.05, 0.5, 1.0, 0.99], bins=4)
    np.testing.assert_array_equal(counts, [1, 0, 1, 2])
