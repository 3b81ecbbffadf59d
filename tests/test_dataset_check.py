"""The dataset check before training: generated cases with known answers, then real images."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from cnnviz.images import load_image_file
from cnnviz.train import dataset_check as dc


def _img(seed: int, size=(120, 160), gray=False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if gray:
        return np.repeat(rng.integers(0, 256, (*size, 1), dtype=np.uint8), 3, axis=2)
    return rng.integers(0, 256, (*size, 3), dtype=np.uint8)


def _facts(spec):
    return [dc.image_facts(path, part, label, image) for path, part, label, image in spec]


def test_generated_collection_finds_every_problem_it_was_given():
    a, b, c = _img(1), _img(2), _img(3)
    spec = [
        ("training/cats/a.png", "training", "cats", a),
        ("training/cats/a-copy.png", "training", "cats", a),  # same picture twice in one class
        ("training/dogs/b.png", "training", "dogs", b),
        ("training/cats/b-again.png", "training", "cats", b),  # in two classes
        ("training/cats/gray.png", "training", "cats", _img(4, gray=True)),
        ("training/cats/tiny.png", "training", "cats", _img(5, size=(40, 300))),
        ("testing/cats/c.png", "testing", "cats", c),
        ("testing/dogs/a-leak.png", "testing", "dogs", a),  # training image in testing/: leakage
        ("testing/birds/x.png", "testing", "birds", _img(6)),  # a class training lacks
    ]
    facts = _facts(spec)
    check = dc.check_dataset(facts, skipped=["“notes.txt” is not an image (.txt) and was skipped."])
    rows = {r["class"]: r for r in check.rows}
    assert rows["cats"] == {"class": "cats", "training images": 5, "testing images": 1, "grayscale": 1, "very small": 1}
    assert rows["dogs"]["training images"] == 1 and rows["birds"]["testing images"] == 1
    assert check.imbalance == 5.0
    assert check.duplicates_within_class == [["training/cats/a.png", "training/cats/a-copy.png"]]
    assert sorted(check.duplicates_across_classes[0]) == ["training/cats/b-again.png", "training/dogs/b.png"]
    assert check.leaks == [["training/cats/a.png", "training/cats/a-copy.png", "testing/dogs/a-leak.png"]]
    assert check.grayscale == ["training/cats/gray.png"] and check.small == ["training/cats/tiny.png"]
    text = " ".join(check.warnings)
    for phrase in (
        "unbalanced",
        "same class",
        "two or more classes",
        "Leakage",
        "grayscale",
        "smaller than 100 pixels",
        "no training class has",
    ):
        assert phrase in text, phrase
    assert any("1 file(s) were skipped" in s for s in check.sentences)
    assert any("checked once the images are embedded" in s for s in check.sentences)


def test_near_duplicates_come_from_the_embeddings_given():
    facts = _facts(
        [
            ("training/a/1.png", "training", "a", _img(1)),
            ("training/b/2.png", "training", "b", _img(2)),
            ("testing/a/3.png", "testing", "a", _img(3)),
            ("testing/b/4.png", "testing", "b", _img(4)),
        ]
    )
    emb = np.array([[1.0, 0, 0], [0, 1.0, 0], [0.95, 0.1, 0.05], [0.5, 0.5, 0.7]])
    check = dc.check_dataset(facts, embeddings=emb)
    assert [(a, b) for a, b, _ in check.near_leaks] == [("training/a/1.png", "testing/a/3.png")]
    assert check.near_leaks[0][2] == pytest.approx(0.95 / np.linalg.norm([0.95, 0.1, 0.05]))
    assert any("look almost the same" in w for w in check.warnings)
    strict = dc.check_dataset(facts, embeddings=emb, near_cosine=0.999)
    assert strict.near_leaks == [] and any("No testing image is a near-copy" in s for s in strict.sentences)


def test_a_clean_balanced_collection_only_gets_facts():
    facts = _facts(
        [(f"training/{c}/{i}.png", "training", c, _img(10 * k + i)) for k, c in enumerate("ab") for i in range(3)]
    )
    check = dc.check_dataset(facts)
    assert check.warnings == []
    assert any("about balanced" in s for s in check.sentences) and any(
        "No picture appears twice" in s for s in check.sentences
    )
    assert any("no testing/ folder" in s for s in check.sentences)
    assert dc.check_dataset([]).sentences == ["There are no images to check yet."]


def test_the_key_is_the_trainers_embedding_cache_key():
    from cnnviz.train.transfer import image_key

    image = _img(7)
    assert dc.image_facts("x", "training", "a", image).key == image_key(image)


def test_real_images_grayscale_and_recompressed_copies(shared_images):
    camera = load_image_file(shared_images / "non-paintings" / "camera-man-grayscale-photo.png", max_side=512)
    cat = load_image_file(shared_images / "non-paintings" / "chelsea-the-cat-photo.png", max_side=512)
    text = load_image_file(shared_images / "non-paintings" / "text-corner-scan.png", max_side=512)
    painting = load_image_file(
        shared_images / "paintings" / "landscape" / "van-gogh-starry-night-1889.jpg", max_side=512
    )
    assert dc.image_facts("camera", "training", "photo", camera).grayscale
    assert dc.image_facts("text", "training", "photo", text).grayscale
    assert not dc.image_facts("cat", "training", "photo", cat).grayscale
    assert not dc.image_facts("starry", "training", "painting", painting).grayscale
    # The same painting saved again as JPEG is a different file and different pixels: not an exact duplicate.
    buffer = io.BytesIO()
    Image.fromarray(painting).save(buffer, format="JPEG", quality=80)
    again = np.asarray(Image.open(buffer).convert("RGB"))
    facts = [
        dc.image_facts("training/landscape/starry.jpg", "training", "landscape", painting),
        dc.image_facts("training/photo/cat.png", "training", "photo", cat),
        dc.image_facts("testing/landscape/starry-again.jpg", "testing", "landscape", again),
        dc.image_facts("testing/landscape/starry-same.jpg", "testing", "landscape", painting.copy()),
    ]
    check = dc.check_dataset(facts)
    assert check.leaks == [["training/landscape/starry.jpg", "testing/landscape/starry-same.jpg"]]


@pytest.mark.slow
def test_real_near_copy_is_found_by_efficientnet_embeddings(shared_images, keras_home):
    from cnnviz.model.registry import load_model
    from cnnviz.train import transfer as training

    paths = sorted((shared_images / "paintings" / "seascape").iterdir())[:3]
    images = [load_image_file(p, max_side=512) for p in paths]
    small = Image.fromarray(images[0]).resize((images[0].shape[1] * 3 // 5, images[0].shape[0] * 3 // 5))
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=70)
    copy = np.asarray(Image.open(buffer).convert("RGB"))
    other = load_image_file(
        shared_images / "paintings" / "portrait" / "velazquez-juan-de-pareja-1650.png", max_side=512
    )
    spec = [(f"training/seascape/{p.name}", "training", "seascape", im) for p, im in zip(paths, images)]
    spec += [
        ("testing/seascape/copy.jpg", "testing", "seascape", copy),
        ("testing/portrait/juan.png", "testing", "portrait", other),
    ]
    embedder = training.embedding_model_for(load_model("efficientnet_lite0"))
    _, emb = training.embed_images([s[3] for s in spec], embedder, "efficientnet_lite0")
    check = dc.check_dataset(_facts(spec), embeddings=emb)
    assert [(a, b) for a, b, _ in check.near_leaks] == [
        (f"training/seascape/{paths[0].name}", "testing/seascape/copy.jpg")
    ]
    assert check.leaks == []
