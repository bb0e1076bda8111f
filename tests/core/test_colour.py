"""Colour images (colour axis last): what the network is given."""

import dask.array as da
import numpy as np
import pytest

from napari_unet.core.colour import colour_channels, is_colour


def grey_and_colour(shape=(2, 12, 14)):
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 255, shape[1:], dtype=np.uint8)
    colour = rng.integers(0, 255, (*shape[1:], 3), dtype=np.uint8)
    return grey, colour


@pytest.mark.parametrize(
    ("shape", "colour"),
    [
        ((5, 6), False),
        ((5, 6, 3), True),
        ((5, 6, 4), True),
        ((2, 5, 6, 3), True),
        ((3, 5, 6), False),
        ((5, 6, 2), False),
        ((3,), False),
    ],
)
def test_napari_rule_for_colour(shape, colour):
    assert is_colour(shape) is colour


def test_grey_saved_in_colour_becomes_grey_and_alpha_is_dropped():
    grey, _ = grey_and_colour()
    rgba = np.dstack([grey, grey, grey, np.full_like(grey, 255)])
    np.testing.assert_array_equal(colour_channels(rgba), grey)
    np.testing.assert_array_equal(colour_channels(rgba, in_channels=1), grey)
    as_three = colour_channels(rgba, in_channels=3)  # a colour model gets three channels
    assert as_three.shape == (3, 12, 14)
    np.testing.assert_array_equal(as_three, np.stack([grey] * 3))


def test_colour_goes_channels_first_for_a_new_or_colour_model():
    _, colour = grey_and_colour()
    for wanted in (None, 3):
        moved = colour_channels(colour, in_channels=wanted)
        assert moved.shape == (3, 12, 14)
        for c in range(3):
            np.testing.assert_array_equal(moved[c], colour[..., c])
    stack = np.stack([colour, colour[::-1]])  # (Z, H, W, 3) -> (Z, 3, H, W)
    moved = colour_channels(stack)
    assert moved.shape == (2, 3, 12, 14)
    np.testing.assert_array_equal(moved[1, 2], colour[::-1, :, 2])


def test_colour_for_a_grey_model_is_refused():
    _, colour = grey_and_colour()
    with pytest.raises(ValueError, match="in colour .* takes 1 channel"):
        colour_channels(colour, in_channels=1)


def test_other_images_pass_unchanged_and_dask_stays_lazy():
    grey, colour = grey_and_colour()
    assert colour_channels(grey) is grey
    lazy = colour_channels(da.from_array(colour, chunks=(6, 7, 3)))
    assert isinstance(lazy, da.Array) and lazy.shape == (3, 12, 14)
    np.testing.assert_array_equal(lazy.compute(), np.moveaxis(colour, -1, 0))
