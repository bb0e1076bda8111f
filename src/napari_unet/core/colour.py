"""Colour images (RGB, RGBA): what the network takes of them.

Microscopy images often reach users as PNG or JPEG files, or as napari RGB layers, with the
colour axis last: (H, W, 3) or (H, W, 4), (Z, H, W, 3) for a stack. Many of them are grey
images saved in colour (three equal channels). The network takes channels first.
"""

from __future__ import annotations

import math

import numpy as np

from .normalization import MAX_SAMPLES

__all__ = ["colour_channels", "is_colour"]


def is_colour(shape: tuple[int, ...]) -> bool:
    """napari's rule for RGB(A) data: at least 3 axes, the last of length 3 or 4."""
    return len(shape) >= 3 and shape[-1] in (3, 4)


def colour_channels(image, in_channels: int | None = None):
    """A colour image as a model with ``in_channels`` takes it; other images unchanged.

    The alpha channel is dropped. A grey image saved in colour (red = green = blue) becomes
    (..., H, W) for a one-channel model, or when ``in_channels`` is None (a new model);
    other colour images become (..., 3, H, W). numpy and dask arrays stay views.
    Raises ``ValueError`` when the model cannot take the colours.
    """
    if not is_colour(tuple(image.shape)):
        return image
    rgb = image[..., :3]
    if in_channels != 3 and _grey(rgb):
        return rgb[..., 0]
    if in_channels not in (None, 3):
        raise ValueError(
            f"the image is in colour (shape {tuple(image.shape)}, red, green and blue "
            f"differ) but the model takes {in_channels} channel(s); save the channel "
            "with the cells as a grey image, or train a model on colour images"
        )
    return np.moveaxis(rgb, -1, -3)


def _grey(rgb) -> bool:
    """Whether red, green and blue are equal (compared on a regular grid of at most
    ``MAX_SAMPLES`` pixels, as the intensity range is estimated)."""
    step = max(1, math.ceil(math.sqrt(math.prod(rgb.shape[:-1]) / MAX_SAMPLES)))
    sample = np.asarray(rgb[..., ::step, ::step, :])
    return bool(
        (sample[..., 0] == sample[..., 1]).all() and (sample[..., 0] == sample[..., 2]).all()
    )
