"""The EfficientNet-Lite0 port: real photos give the right ImageNet classes, and the
torch-free weight reader refuses any pickle that names something other than tensor storages."""

from __future__ import annotations

import io
import pickle
import struct

import numpy as np
import pytest

from cnnviz.model import efficientnet_lite
from cnnviz.model.efficientnet_lite import RestrictedUnpickler, UnsafePickleError, read_torch_state_dict
from cnnviz.images import load_image_file
from cnnviz.model import registry as models

CATS = {"Egyptian cat", "tabby", "tiger cat", "Persian cat", "Siamese cat"}


@pytest.fixture(scope="module")
def lite0():
    return models.load_model("efficientnet_lite0")


@pytest.fixture(scope="module")
def state_dict():
    return read_torch_state_dict(efficientnet_lite.torch_weight_path())


def _predict(model, shared_images, filename):
    image = load_image_file(shared_images / "non-paintings" / filename)
    probs = np.asarray(model(models.prepare(image, model)))[0]
    return models.top_k(probs, models.class_names("efficientnet_lite0"), 3)


@pytest.mark.slow
def test_cat_photo_is_a_cat(lite0, shared_images):
    top = _predict(lite0, shared_images, "chelsea-the-cat-photo.png")
    assert top[0][0] == "Egyptian cat"
    assert top[0][1] == pytest.approx(0.79, abs=0.04)  # documented in the module docstring
    assert {name for name, _ in top} <= CATS


@pytest.mark.slow
def test_coffee_photo_is_espresso(lite0, shared_images):
    (name, p), *_ = _predict(lite0, shared_images, "coffee-cup-photo.png")
    assert name == "espresso"
    assert p == pytest.approx(0.90, abs=0.04)


@pytest.mark.slow
def test_architecture_and_weight_layout(lite0, state_dict):
    assert lite0.input_shape == (None, 224, 224, 3) and lite0.output_shape == (None, 1000)
    assert lite0.get_layer("avg_pool").output.shape[-1] == 1280
    assert sum(layer.name.endswith("_project_conv") for layer in lite0.layers) == 16
    assert not any("se_" in layer.name or "squeeze" in layer.name for layer in lite0.layers)
    assert lite0.count_params() == sum(v.size for k, v in state_dict.items() if "num_batches" not in k)
    # PyTorch OIHW -> Keras HWIO, depthwise C1HW -> HWC1: spot-check single numbers
    w = state_dict["_conv_stem.weight"]
    k = lite0.get_layer("stem_conv").get_weights()[0]
    assert k[2, 0, 1, 5] == w[5, 1, 2, 0]
    d = state_dict["_blocks.3._depthwise_conv.weight"]
    kd = lite0.get_layer("block4_dwconv").get_weights()[0]
    assert kd.shape == (5, 5, 144, 1) and kd[4, 1, 100, 0] == d[100, 0, 4, 1]
    assert lite0.get_layer("stem_bn").epsilon == pytest.approx(1e-3)


@pytest.mark.slow
def test_converted_once_then_loaded_from_the_keras_cache(lite0, keras_home):
    cached = keras_home / "models" / efficientnet_lite.CACHE_NAME
    assert cached.is_file()
    again = efficientnet_lite.load_efficientnet_lite0()
    x = np.random.default_rng(0).uniform(0, 255, (1, 224, 224, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(again(x)), np.asarray(lite0(x)), atol=1e-6)


def _hostile_pickle(marker) -> bytes:
    # Protocol-2 pickle that calls os.system("touch <marker>") when unpickled by plain pickle.
    cmd = f"touch {marker}".encode()
    return b"\x80\x02cos\nsystem\nq\x00X" + struct.pack("<I", len(cmd)) + cmd + b"\x85R."


def test_plain_pickle_would_run_the_hostile_payload(tmp_path):
    # Proves the test pickle is really hostile: the standard unpickler executes it.
    marker = tmp_path / "ran-with-plain-pickle"
    pickle.loads(_hostile_pickle(marker))
    assert marker.exists()


def test_restricted_unpickler_refuses_os_system_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(UnsafePickleError, match="os.system"):
        RestrictedUnpickler(io.BytesIO(_hostile_pickle(marker))).load()
    assert not marker.exists()


def test_weight_reader_refuses_a_hostile_weight_file(tmp_path):
    # A legacy-format file whose state dict pickle names os.system: refused, nothing runs.
    marker = tmp_path / "pwned"
    header = b"".join(pickle.dumps(x, protocol=2) for x in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}))
    path = tmp_path / "evil.pth"
    path.write_bytes(header + _hostile_pickle(marker) + pickle.dumps([], protocol=2))
    with pytest.raises(UnsafePickleError):
        read_torch_state_dict(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "global_name", [b"builtins\neval", b"torch\nload", b"torch._utils\n_rebuild_parameter", b"collections\ndefaultdict"]
)
def test_restricted_unpickler_refuses_every_other_global(global_name):
    with pytest.raises(UnsafePickleError):
        RestrictedUnpickler(io.BytesIO(b"\x80\x02c" + global_name + b"\n)R.")).load()


def test_restricted_unpickler_accepts_exactly_what_the_weight_file_needs(state_dict):
    assert len(state_dict) == 296
    assert state_dict["_fc.weight"].shape == (1000, 1280) and state_dict["_fc.weight"].dtype == np.float32
    assert state_dict["_bn0.num_batches_tracked"].dtype == np.int64


@pytest.mark.slow
def test_a_damaged_cache_file_is_converted_again(lite0, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / efficientnet_lite.CACHE_NAME).write_bytes(b"PK\x03\x04 half-written")
    model = efficientnet_lite.load_efficientnet_lite0()
    x = np.full((1, 224, 224, 3), 127.0, np.float32)
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(lite0(x)), atol=1e-6)
    assert (tmp_path / "models" / efficientnet_lite.CACHE_NAME).stat().st_size > 10_000_000
