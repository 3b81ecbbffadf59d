"""The audit's measures match values computed by hand on tiny arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cnnviz.audit import measures as audit


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
    np.testing.assert_allclose(
        audit.mahalanobis_distance(np.array([[3.0, 2.0], [1.0, 6.0], [1.0, 2.0]]), mean, precision), [2.0, 2.0, 0.0]
    )
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


@pytest.mark.parametrize("shrinkage", [None, 0.0, 0.3, 1.0])
@pytest.mark.parametrize("shape", [(5, 20), (40, 6)])
def test_fast_mahalanobis_equals_explicit_inverse(shrinkage, shape):
    rng = np.random.default_rng(2)
    reference = rng.normal(size=shape) * rng.uniform(0.5, 3, shape[1])
    features = rng.normal(1, 2, size=(7, shape[1]))
    mean, precision = audit.fit_mahalanobis(reference, shrinkage)
    expected = audit.mahalanobis_distance(features, mean, precision)
    np.testing.assert_allclose(audit.mahalanobis_scores(features, reference, shrinkage), expected, rtol=1e-6, atol=1e-8)


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


def test_evaluate_scores_reference_without_looking_at_itself():
    rng = np.random.default_rng(3)
    ref = rng.normal(size=(12, 5))
    sets: dict[str, dict] = {
        "ref": {"probs": rng.dirichlet([3, 1], 12), "features": ref, "labels": rng.integers(0, 2, 12)},
        "copy of ref": {"probs": rng.dirichlet([3, 1], 12), "features": ref.copy(), "labels": None},
    }
    result = audit.evaluate(sets, "ref", threshold=0.7, k=1)
    # The same features as a probe set sit at distance 0; the reference itself is scored leave-one-out.
    np.testing.assert_allclose(result["scores"]["copy of ref"]["knn"], 0.0, atol=1e-12)
    assert (result["scores"]["ref"]["knn"] > 0).all()
    assert result["auroc"]["copy of ref"]["kNN cosine distance"] == 0.0
    assert set(result["auroc"]["copy of ref"]) == set(audit.OOD_SCORES)
    conf = sets["ref"]["probs"].max(axis=1)
    assert result["caught"]["ref"] == pytest.approx((conf < 0.7).mean())
    assert result["accuracy"] == pytest.approx((sets["ref"]["probs"].argmax(1) == sets["ref"]["labels"]).mean())
    with pytest.raises(ValueError):
        audit.evaluate(sets, "missing")


# ------------------------------------------------------------- with a real (tiny) Keras model
@pytest.fixture(scope="module")
def tiny():
    from tests.audit_tiny_model import tiny_model

    return tiny_model()


@pytest.mark.slow
def test_runner_matches_keras(tiny):
    from cnnviz.audit import run as audit_model
    from cnnviz.model import registry as models
    from tests.audit_tiny_model import styles

    model, _card = tiny
    images, _ = styles(2, seed=5)
    probs, feats = audit_model.predict_with_features(model, images, batch_size=4)
    batch = np.concatenate([models.prepare(img, model) for img in images])
    np.testing.assert_allclose(probs, model.predict(batch, verbose=0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(feats, models.embedding_model(model).predict(batch, verbose=0), rtol=1e-4, atol=1e-5)


def test_far_probe_set_gets_higher_feature_distance_auroc_than_near_one(tiny):
    from cnnviz.audit import run as audit_model
    from cnnviz.audit import probes
    from tests.audit_tiny_model import SIZE, styles

    model, card = tiny
    ref_images, ref_labels = styles(15, seed=2)
    near_images, _ = styles(8, seed=3)  # the same kinds of picture, drawn fresh
    far = probes.probe_set(
        ["Printed text", "Noise", "Blank page", "Gradient", "Geometric shapes"], 24, size=(SIZE, SIZE), seed=9
    )
    image_sets = {
        "reference": {"files": [f"r{i}" for i in range(len(ref_images))], "images": ref_images, "labels": ref_labels},
        "near": {"files": [f"n{i}" for i in range(len(near_images))], "images": near_images, "labels": None},
        "far": {"files": list(far), "images": list(far.values()), "labels": None},
    }
    run = audit_model.run_audit(model, card, card["classes"], image_sets, "reference", k=3, gallery_size=4)
    aurocs = run["evaluation"]["auroc"]
    assert aurocs["far"]["Mahalanobis distance"] > aurocs["near"]["Mahalanobis distance"] + 0.2, aurocs
    assert aurocs["far"]["kNN cosine distance"] > aurocs["near"]["kNN cosine distance"], aurocs
    assert len(run["gallery"]) == 4
    assert all(g["cam"].shape == g["image"].shape[:2] for g in run["gallery"])
    assert run["evaluation"]["accuracy"] > 0.9  # the tiny model did learn its three styles


def test_transformation_effect_reports_every_transformation(tiny):
    from cnnviz.audit import run as audit_model
    from cnnviz.audit import probes
    from tests.audit_tiny_model import styles

    model, card = tiny
    image = styles(1, seed=11)[0][0]
    rows, images = audit_model.transformation_effect(model, image, card["classes"])
    assert [r["transformation"] for r in rows] == list(probes.TRANSFORMATIONS)
    assert rows[0]["changed"] is False and rows[0]["original_class_confidence"] == pytest.approx(rows[0]["confidence"])
    assert all(img.shape == image.shape for img in images.values())


def test_batched_grad_cam_equals_one_image_at_a_time(tiny):
    from cnnviz.audit import run as audit_model
    from cnnviz.model import features
    from tests.audit_tiny_model import styles

    model, _card = tiny
    images, _ = styles(2, seed=12)
    images[1] = np.ascontiguousarray(np.repeat(np.repeat(images[1], 2, axis=0), 3, axis=1))  # any size works
    classes = [None, 2, 0, None, 1, 1]
    one_by_one = [features.grad_cam(model, img, c) for img, c in zip(images, classes)]
    batched = audit_model.grad_cams(model, images, [-1 if c is None else c for c in classes])
    for single, batch in zip(one_by_one, batched):
        assert single.shape == batch.shape
        np.testing.assert_allclose(batch, single, atol=1e-4)
    assert any(m.max() > 0 for m in batched)  # not trivially all-zero maps
