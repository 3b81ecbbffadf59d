"""Sentences the app states about models and measures, checked against what is true."""

from __future__ import annotations

from cnnviz.model import features, registry


def test_receptive_field_is_a_square_and_says_when_it_outgrows_the_picture():
    assert (
        features.receptive_field_sentence(211, 224) == "Every block covers a receptive field of 211×211 input pixels."
    )
    wide = features.receptive_field_sentence(275, 224)
    assert wide.startswith(
        "Every block covers a receptive field of 275×275 input pixels, wider than the 224×224 picture"
    )


def test_mobilenet_card_does_not_call_it_teachable_machines_base():
    text = registry._mobilenet_card()["description"]
    assert "builds on" not in text and "MobileNet v1 at width 0.25" in text


def test_imagenet_size_is_the_exact_count():
    assert "1,281,167" in registry._efficientnet_card()["description"]


def test_auroc_sentences_say_what_below_half_means():
    import inspect

    from cnnviz.audit import report
    from cnnviz.charts import audit as charts

    for module in (charts, report):
        source = inspect.getsource(module)
        assert "0.5 is chance" not in source and "no better than a coin" not in source and "in reverse" in source


def test_grad_cam_is_described_as_weighted_existing_activations():
    doc = features.grad_cam.__doc__
    assert doc is not None
    assert "existing activations" in doc and "same at every position" in doc and "channel-weighted sum" in doc
