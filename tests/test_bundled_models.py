"""The small CNNs shipped in data/models/ and the script that rebuilds them.

Every card's numbers are re-measured here: the model loads the way an upload
would (safe_mode=True, only built-in Keras layers), takes raw 0-255 pixels and
scores on the full Fashion-MNIST test set what its card says.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "data" / "models"
SCRIPT = ROOT / "scripts" / "train_fashion_mnist.py"
CARDS = sorted(MODELS.glob("*.json"))
SHIPPED = ["fashion_mnist_carpentries", "fashion_mnist_lenet5", "fashion_mnist_better"]
FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
CARD_FIELDS = {
    "name",
    "title",
    "kind",
    "description",
    "classes",
    "input_size",
    "channels",
    "test_accuracy",
    "epochs",
    "training_time_s",
    "date",
    "keras_version",
    "tensorflow_version",
    "params",
    "size_bytes",
    "dataset",
    "rebuild",
}


def _bundled_cards() -> list[Path]:
    return [p for p in CARDS if json.loads(p.read_text()).get("kind") == "bundled"]


def _test_set(dataset: str):
    """The real Keras loader, reading the test KERAS_HOME that tests/conftest.py filled."""
    try:
        _, (x_test, y_test) = getattr(keras.datasets, dataset).load_data()
    except Exception as error:  # offline without that data set's files
        pytest.skip(f"{dataset} is not in the Keras cache here: {error}")
    if x_test.ndim == 3:
        x_test = x_test[..., None]
    return x_test.astype("float32"), y_test.reshape(-1)


def _accuracy(model, x, y) -> float:
    return float(np.mean(np.argmax(model.predict(x, batch_size=500, verbose=0), axis=1) == y))


def _layer_classes(model_path: Path) -> list[tuple[str, str]]:
    """(module, class_name) of every layer in the archive's config, read without loading the model."""
    config = json.loads(zipfile.ZipFile(model_path).read("config.json"))
    return [(layer["module"], layer["class_name"]) for layer in config["config"]["layers"]]


def _check_card(card: dict, model_path: Path, model) -> None:
    missing = CARD_FIELDS - card.keys()
    assert not missing, f"{model_path.name}'s card lacks {sorted(missing)}"
    assert card["name"] == model_path.stem
    assert card["kind"] == "bundled"
    assert card["input_size"] == list(model.input_shape[1:3])
    assert card["channels"] == model.input_shape[3]
    assert len(card["classes"]) == model.output_shape[-1]
    if card["dataset"] == "fashion_mnist":
        assert card["classes"] == FASHION_CLASSES
    assert card["params"] == model.count_params()
    assert card["size_bytes"] == model_path.stat().st_size
    assert "scripts/train_fashion_mnist.py" in card["rebuild"]
    assert f"--model {card['name'].split('_')[-1]}" in card["rebuild"]
    assert card["training_time_s"] > 0 and card["epochs"] >= 1


def test_the_three_fashion_mnist_models_are_shipped():
    names = {p.stem for p in _bundled_cards()}
    assert set(SHIPPED) <= names, f"missing bundled cards: {sorted(set(SHIPPED) - names)}"


@pytest.mark.parametrize("card_path", CARDS, ids=[p.stem for p in CARDS])
def test_every_card_has_its_model(card_path):
    assert card_path.with_suffix(".keras").is_file(), f"{card_path.name} has no {card_path.stem}.keras"


@pytest.mark.slow
@pytest.mark.parametrize("card_path", _bundled_cards(), ids=[p.stem for p in _bundled_cards()])
def test_bundled_model_matches_its_card(card_path):
    card = json.loads(card_path.read_text())
    model_path = card_path.with_suffix(".keras")
    # Small enough to commit, and only built-in layers (what the upload check accepts).
    assert model_path.stat().st_size < 5_000_000
    assert all(module.startswith("keras.") and name != "Lambda" for module, name in _layer_classes(model_path)), (
        _layer_classes(model_path)
    )

    model = keras.saving.load_model(model_path, safe_mode=True)
    _check_card(card, model_path, model)

    x_test, y_test = _test_set(card["dataset"])
    assert len(x_test) == 10_000 or card["dataset"] != "fashion_mnist"
    # Raw 0-255 pixels in, probabilities out: preprocessing lives inside the model.
    probabilities = model.predict(x_test[:64], verbose=0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    # Augmentation layers must be inactive at inference: the same image, the same answer.
    np.testing.assert_array_equal(probabilities, model.predict(x_test[:64], verbose=0))

    measured = _accuracy(model, x_test, y_test)
    assert abs(measured - card["test_accuracy"]) <= 0.005, (measured, card["test_accuracy"])
    assert measured > 0.85  # every shipped network learned Fashion-MNIST, not just chance
    if card["name"] == "fashion_mnist_better":
        assert measured >= 0.92


def _run_script(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    # The subprocess inherits KERAS_HOME (set by tests/conftest.py), so it reads the test cache.
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )


@pytest.mark.slow
def test_script_help_lists_the_choices():
    result = _run_script("--help", timeout=120)
    assert result.returncode == 0, result.stderr
    for word in [
        "--model",
        "carpentries",
        "lenet5",
        "better",
        "--dataset",
        "fashion_mnist",
        "mnist",
        "cifar10",
        "--epochs",
        "--out",
        "--limit",
    ]:
        assert word in result.stdout


@pytest.mark.slow
def test_short_run_writes_a_loadable_model_and_a_full_card(tmp_path, shared_keras_cache):
    result = _run_script("--model", "carpentries", "--epochs", "1", "--limit", "2000", "--out", str(tmp_path))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    model_path = tmp_path / "fashion_mnist_carpentries.keras"
    card = json.loads((tmp_path / "fashion_mnist_carpentries.json").read_text())

    model = keras.saving.load_model(model_path, safe_mode=True)
    _check_card(card, model_path, model)
    assert card["epochs"] == 1 and card["train_images"] == 2000 and card["test_images"] == 10_000
    assert "--limit 2000" in card["rebuild"] and "--epochs 1" in card["rebuild"]
    assert [layer.name for layer in model.layers][:4] == ["pixels", "rescale", "conv1", "pool1"]
    assert model.layers[-1].name == "predictions"
    # Saved without optimizer state: the file holds little more than the weights.
    assert not getattr(model, "optimizer", None)
    assert model_path.stat().st_size < 3 * 4 * card["params"]
    # The card's accuracy is the saved model's accuracy, on the full test set.
    x_test, y_test = _test_set("fashion_mnist")
    assert abs(_accuracy(model, x_test, y_test) - card["test_accuracy"]) <= 0.005
    assert card["test_accuracy"] > 0.5  # 2000 images and one epoch already beat chance (0.1)
