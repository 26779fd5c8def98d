"""PNG encoding helpers: lossless round trips in RGB order, parallel order, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from gas_core.render.encode import decode_png, encode_png, encode_pngs_parallel


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.mark.parametrize("shape", [(17, 23), (17, 23, 3), (17, 23, 4)])
@pytest.mark.parametrize("compression", [0, 1, 6])
def test_round_trip_is_lossless_and_keeps_rgb_order(rng, shape, compression):
    image = rng.integers(0, 256, size=shape, dtype=np.uint8)
    decoded = decode_png(encode_png(image, compression=compression))
    np.testing.assert_array_equal(decoded, image)


def test_red_stays_red():
    image = np.zeros((4, 4, 3), np.uint8)
    image[..., 0] = 255
    decoded = decode_png(encode_png(image))
    assert decoded[0, 0].tolist() == [255, 0, 0]


def test_png_signature_and_level_changes_size(rng):
    smooth = np.tile(np.arange(64, dtype=np.uint8), (64, 1))[..., None].repeat(3, axis=2)
    fast, stored = encode_png(smooth, compression=1), encode_png(smooth, compression=0)
    assert fast[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(fast) < len(stored)


def test_parallel_keeps_order(rng):
    images = [np.full((8, 9, 3), value, np.uint8) for value in range(10)]
    encoded = encode_pngs_parallel(images, workers=2)
    assert [int(decode_png(data)[0, 0, 0]) for data in encoded] == list(range(10))
    stacked = encode_pngs_parallel(np.stack(images), workers=1)
    assert stacked == encoded


@pytest.mark.parametrize("image, message", [
    (np.zeros((4, 4, 3), np.float32), "uint8"),
    (np.zeros((4, 4, 2), np.uint8), "RGB"),
    (np.zeros((2, 4, 4, 3), np.uint8), "RGB"),
])
def test_bad_images_raise(image, message):
    with pytest.raises(ValueError, match=message):
        encode_png(image)


def test_bad_arguments_raise():
    image = np.zeros((4, 4), np.uint8)
    with pytest.raises(ValueError, match="compression"):
        encode_png(image, compression=10)
    with pytest.raises(ValueError, match="workers"):
        encode_pngs_parallel([image], workers=0)
    with pytest.raises(ValueError, match="PNG"):
        decode_png(b"not a png at all")
    with pytest.raises(ValueError, match="data"):
        decode_png(b"")
