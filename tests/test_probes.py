"""Generated probes are reproducible RGB images; transformations keep the image contract."""

from __future__ import annotations

import numpy as np
import pytest

from cnnviz.audit import probes

SIZES = [(64, 96), (33, 17), (224, 224)]


@pytest.mark.parametrize("name", list(probes.GENERATORS))
@pytest.mark.parametrize("size", SIZES)
def test_generator_is_deterministic_rgb_of_requested_size(name, size):
    make = probes.GENERATORS[name]
    image = make(size, seed=7)
    assert image.shape == (*size, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, make(size, seed=7))


@pytest.mark.parametrize("name", [n for n in probes.GENERATORS])
def test_different_seeds_give_different_images(name):
    make = probes.GENERATORS[name]
    assert not np.array_equal(make((64, 64), seed=1), make((64, 64), seed=2))


def test_generators_look_like_their_kind():
    assert len(np.unique(probes.plain_colour((20, 30), 3).reshape(-1, 3), axis=0)) == 1
    assert probes.blank_page((50, 50)).mean() > 240
    mondrian = probes.mondrian((200, 200), 0).reshape(-1, 3)
    assert (np.abs(mondrian.astype(int) - [20, 20, 20]).sum(axis=1) == 0).mean() > 0.05  # black lines
    text = probes.text((100, 200), 0)
    assert (text < 100).mean() > 0.01 and (text > 240).mean() > 0.5  # ink on paper
    assert probes.noise((64, 64), 0).std() > 60


def test_probe_set_cycles_kinds_and_is_reproducible():
    first = probes.probe_set(["Mondrian grid", "Noise"], 5, size=(32, 32), seed=3)
    assert list(first) == ["Mondrian grid #0", "Noise #1", "Mondrian grid #2", "Noise #3", "Mondrian grid #4"]
    again = probes.probe_set(["Mondrian grid", "Noise"], 5, size=(32, 32), seed=3)
    assert all(np.array_equal(first[k], again[k]) for k in first)
    with pytest.raises(ValueError):
        probes.probe_set([], 3)
    with pytest.raises(ValueError):
        probes.probe_set(["Not a kind"], 3)


def test_bad_size_is_refused():
    with pytest.raises(ValueError):
        probes.mondrian((0, 10))


@pytest.mark.parametrize("name", list(probes.TRANSFORMATIONS))
@pytest.mark.parametrize("size", [(48, 80), (31, 31)])
def test_every_transformation_keeps_shape_and_dtype(name, size):
    image = probes.kandinsky(size, seed=2)
    out = probes.TRANSFORMATIONS[name](image)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert out is not image


def test_transformations_do_what_they_say():
    image = probes.kandinsky((40, 60), seed=4)
    gray = probes.grayscale(image)
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 1], gray[..., 2])
    np.testing.assert_array_equal(probes.invert(image), 255 - image)
    np.testing.assert_array_equal(probes.flip(image), image[:, ::-1])
    np.testing.assert_array_equal(probes.rotate(probes.rotate(image, 180), 180)[5:-5, 5:-5], image[5:-5, 5:-5])
    occluded = probes.occlude(image, 0.5)
    assert (occluded[10:30, 20:40] == 128).all() and np.array_equal(occluded[:5], image[:5])
    assert probes.blur(probes.noise((64, 64), 0)).std() < probes.noise((64, 64), 0).std() / 3
    assert probes.jpeg(image, 5).shape == image.shape and not np.array_equal(probes.jpeg(image, 5), image)
    sketch = probes.sketch(image)
    assert np.array_equal(sketch[..., 0], sketch[..., 2])
    grey = np.full((64, 64, 3), 128, np.uint8)  # mid-grey: no pixel is clipped, so the noise shows whole
    noisy = probes.add_noise(grey, std=25.0, seed=1)
    assert noisy.dtype == np.uint8 and 24 < (noisy.astype(float) - 128).std() < 26
    np.testing.assert_array_equal(noisy, probes.add_noise(grey, std=25.0, seed=1))  # same seed, same picture
    assert not np.array_equal(noisy, probes.add_noise(grey, std=25.0, seed=2))
    assert set(probes.transform(image, ["Original", "Grayscale"])) == {"Original", "Grayscale"}
    with pytest.raises(ValueError):
        probes.grayscale(image[..., 0])
