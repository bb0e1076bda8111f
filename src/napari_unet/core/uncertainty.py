"""Where to paint next: where the model is unsure of the cells, measured as the
disagreement of its predictions on the image and on its three mirror images (a U-Net is
not mirror-symmetric, so where it has learnt the cells well the four agree), and the
window of the image, not yet painted, where that disagreement is largest.

Two measures: :func:`flip_disagreement`, of the cell probability pixel by pixel (high in
a band around every cell, where the probability falls from 1 to 0), and
:func:`cell_disagreement`, of the cells the four predictions make (high on the cells they
cut, merge, find or miss differently)."""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence

import numpy as np
import torch
from scipy import ndimage as ndi

from .cells.instances import cell_probability, labels_from_probabilities
from .cells.rules import InstanceRules
from .config import NormalizationConfig
from .events import TilesDone
from .images import network_shape, resize_image
from .network.model import UNet
from .network.predict import predict_tiled

__all__ = [
    "cell_disagreement",
    "flip_disagreement",
    "label_disagreement",
    "mirrored_probabilities",
    "next_region",
    "window_size",
]

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
    cells = yield from _over_mirrors(
        model, image, normalization, lambda p: (cell_probability(p),), device, precision
    )
    spread = np.std(np.stack([cell for (cell,) in cells]), axis=0).astype(np.float32)
    return resize_image(spread, image.shape[-2:])  # (a no-op at the network's own scale)


def cell_disagreement(
    model: UNet,
    image: np.ndarray,
    normalization: NormalizationConfig | None = None,
    rules: InstanceRules | None = None,
    *,
    threshold: float = 0.5,
    intensity: tuple[float, float] | None = None,
    at_network_scale: bool = False,
    device: str | torch.device | None = None,
    precision: str = "auto",
) -> Generator[TilesDone, None, np.ndarray]:
    """(H, W) float32 in [0, 1]: where the model is unsure of its cells. The cells that
    ``rules`` (the model's) make from its predictions on the image and on its three mirror
    images are compared (:func:`label_disagreement`); and where the four predictions
    together say "cell" (mean cell probability above ``threshold``) but the rules leave
    no cell on the image's own prediction, the map is 1 (a cell the rules drop). Regions
    under 3 x 3 px are left out. ``image`` is one plane: (H, W), or (C, H, W) for a
    multichannel model; ``intensity``: its raw (low, high), instead of ``normalization``
    (as for :func:`~napari_unet.core.network.predict.predict_tiled`); ``at_network_scale``:
    it is at the network's scale already (a crop of a training plane)."""
    labelling = (rules or InstanceRules()).labelling()
    made = yield from _over_mirrors(
        model,
        image,
        normalization,
        lambda p: (labels_from_probabilities(p, **labelling), cell_probability(p)),
        device,
        precision,
        intensity,
        at_network_scale,
    )
    maps = [labels for labels, _ in made]
    said_cell = np.mean([cell for _, cell in made], axis=0) > threshold
    dropped = ndi.binary_opening(said_cell & (maps[0] == 0), np.ones((3, 3), bool))
    unsure = np.maximum(label_disagreement(maps), dropped.astype(np.float32))
    return resize_image(unsure, image.shape[-2:])  # (a no-op at the network's own scale)


def mirrored_probabilities(
    model: UNet,
    image: np.ndarray,
    *,
    intensity: tuple[float, float] | None = None,
    at_network_scale: bool = False,
    device: str | torch.device | None = None,
) -> Generator[TilesDone, None, list[np.ndarray]]:
    """The (classes, h, w) probabilities of ``image`` and of its three mirror images, each
    flipped back (in ``MIRROR_AXES`` order, at the network's scale); arguments as for
    :func:`cell_disagreement`."""
    made = yield from _over_mirrors(
        model, image, None, lambda p: (p,), device, "auto", intensity, at_network_scale
    )
    return [np.ascontiguousarray(p) for (p,) in made]


def _over_mirrors(
    model: UNet,
    image: np.ndarray,
    normalization: NormalizationConfig | None,
    each: Callable[[np.ndarray], tuple[np.ndarray, ...]],
    device: str | torch.device | None,
    precision: str,
    intensity: tuple[float, float] | None = None,
    at_network_scale: bool = False,
) -> Generator[TilesDone, None, list[tuple[np.ndarray, ...]]]:
    """``each`` of the class probabilities of the image and of its three mirror images
    (in ``MIRROR_AXES`` order), every array it returns flipped back onto the image; at the
    network's scale (``model.config.scale``: the image is resized to it first)."""
    scale = model.config.scale
    if scale != 1 and not at_network_scale:
        image = resize_image(image, network_shape(image.shape[-2:], scale))
    results = []
    for axes in MIRROR_AXES:
        mirrored = np.ascontiguousarray(np.flip(image, axes)) if axes else image
        probabilities = yield from predict_tiled(
            model, mirrored, normalization, intensity=intensity, device=device, precision=precision
        )
        results.append(tuple(np.flip(a, axes) if axes else a for a in each(probabilities)))
    return results


def label_disagreement(maps: Sequence[np.ndarray]) -> np.ndarray:
    """(H, W) float32: per pixel, the share of ``maps[1:]`` that disagree with ``maps[0]``
    about the cell it belongs to. Two maps agree on a pixel where both call it background,
    or where its cells in the two are each other's best match (the cell of the other map
    that covers most of it, both ways): a cell one map cuts in two, merges with its
    neighbour, or leaves out, disagrees over its area. Disagreements one pixel thin (where
    outlines differ by a pixel, along every cell) are left out (a 3 x 3 opening)."""
    first = np.asarray(maps[0]).astype(np.int64)
    total = np.zeros(first.shape, np.float32)
    for other in maps[1:]:
        other = np.asarray(other).astype(np.int64)
        forward, backward = _best_match(first, other), _best_match(other, first)
        agree = ((first == 0) & (other == 0)) | (
            (first > 0) & (forward[first] == other) & (backward[other] == first)
        )
        total += ndi.binary_opening(~agree, np.ones((3, 3), bool))
    return total / max(len(maps) - 1, 1)


def _best_match(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For each label of ``a`` (index), the label of ``b`` that covers most of it (0 where
    background does)."""
    codes, counts = np.unique(a * (int(b.max()) + 1) + b, return_counts=True)
    owner, match = codes // (int(b.max()) + 1), codes % (int(b.max()) + 1)
    best = np.zeros(int(a.max()) + 1, np.int64)
    order = np.lexsort((counts, owner))  # per label of a, its largest overlap last
    last = np.r_[owner[order][1:] != owner[order][:-1], True]
    best[owner[order][last]] = match[order][last]
    return best


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
