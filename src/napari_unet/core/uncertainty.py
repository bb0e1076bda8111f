"""Where to paint next: where the model is unsure of the cells, measured as the
disagreement of its predictions on the image and on its three mirror images (a U-Net is
not mirror-symmetric, so where it has learnt the cells well the four agree), and the
window of the image, not yet painted, where that disagreement is largest."""

from __future__ import annotations

from collections.abc import Generator, Sequence

import numpy as np
import torch
from scipy import ndimage as ndi

from .cells.instances import cell_probability
from .config import NormalizationConfig
from .events import TilesDone
from .images import network_shape, resize_image
from .network.model import UNet
from .network.predict import predict_tiled

__all__ = ["flip_disagreement", "next_region", "window_size"]

MIRROR_AXES = ((), (-1,), (-2,), (-2, -1))


def flip_disagreement(
    model: UNet,
    image: np.ndarray,
    normalization: NormalizationConfig | None = None,
    *,
    device: str | torch.device | None = None,
    precision: str = "auto",
) -> Generator[TilesDone, None, np.ndarray]:
    """(H, W) float32: the standard deviation of the cell probability over the image and
    its three mirror images (0 where all four agree, up to 0.5). ``image`` is one plane:
    (H, W), or (C, H, W) for a multichannel model. Yields the tiles' progress."""
    shape = image.shape[-2:]
    scale = model.config.scale
    if scale != 1:
        image = resize_image(image, network_shape(shape, scale))
    cells = []
    for axes in MIRROR_AXES:
        mirrored = np.ascontiguousarray(np.flip(image, axes)) if axes else image
        probabilities = yield from predict_tiled(
            model, mirrored, normalization, device=device, precision=precision
        )
        cell = cell_probability(probabilities)
        cells.append(np.flip(cell, axes) if axes else cell)
    spread = np.std(np.stack(cells), axis=0).astype(np.float32)
    return resize_image(spread, shape) if scale != 1 else spread


def window_size(labels: np.ndarray, cells_across: int = 4, least: int = 32) -> int:
    """The side of a window about ``cells_across`` painted cells wide (from the median
    area of the painted cells: values 2 and up), at least ``least`` px."""
    areas = np.bincount(labels.ravel().astype(np.int64))[2:]
    areas = areas[areas > 0]
    if not len(areas):
        return 4 * least
    diameter = 2 * np.sqrt(np.median(areas) / np.pi)
    return max(int(round(cells_across * diameter)), least)


def next_region(
    uncertainty: np.ndarray,
    painted: np.ndarray,
    size: int,
    skip: Sequence[tuple[int, int]] = (),
) -> tuple[slice, slice] | None:
    """The ``size`` x ``size`` window (rows, columns) with the most disagreement on pixels
    not painted, among windows at most a quarter painted and whose centre is at least
    ``size`` px from every centre in ``skip`` (the windows shown before); None when no
    window is left."""
    size = min(size, *uncertainty.shape)
    free = ~painted
    score = ndi.uniform_filter(np.where(free, uncertainty, 0).astype(np.float64), size)
    score[ndi.uniform_filter(painted.astype(np.float64), size) > 0.25] = -1
    half = size // 2
    rows, columns = uncertainty.shape
    inside = np.full(score.shape, -1.0)  # windows within the image only
    inside[half : rows - (size - half) + 1, half : columns - (size - half) + 1] = score[
        half : rows - (size - half) + 1, half : columns - (size - half) + 1
    ]
    for r, c in skip:
        inside[max(r - size, 0) : r + size, max(c - size, 0) : c + size] = -1
    best = np.unravel_index(int(np.argmax(inside)), inside.shape)
    if inside[best] < 0:
        return None
    r, c = int(best[0]) - half, int(best[1]) - half
    return slice(r, r + size), slice(c, c + size)
