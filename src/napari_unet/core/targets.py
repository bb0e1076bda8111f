"""Training targets and pixel weights from a label image (paper, Sec. 3 and eq. 2), and
the weighted loss (eq. 1).

Two things teach the network to keep touching cells apart:

- **gap insertion**: where two different cells touch (8-neighbourhood), the touching
  pixels of both become background, so the target has a gap of two pixels between them;
- **the border weight**: background pixels between two cells weigh
  ``w0 * exp(-(d1 + d2)^2 / (2 sigma^2))`` more, d1 and d2 being the distances to the
  nearest and the second-nearest cell, so the loss insists on those gaps.

Plus w_c(x), which balances the classes over the annotated pixels. Pixels that are not
annotated weigh 0: the loss ignores them.

With ``outlines=True`` there is a third class instead of gap insertion: the outline of
every cell (its pixels with an 8-neighbour outside it). Where cells touch, the outline is
the contact; and because every painted cell has an outline, sparse paint teaches it even
where no neighbour was painted. The border term then also weighs the outline pixels
(there d1 = 0 and d2 is the distance to the next cell), most of all where cells touch.
Instances come from the interiors by a seeded watershed
(:func:`napari_unet.core.cells.instances.label_instances`).

The distances are computed per cell on a crop around it, as far as the border term can
matter (``border_reach``): beyond it the term is below 1e-5 and counted as 0. This is what
makes the map fast enough to recompute after every brush stroke.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi

from .config import LabelConfig, WeightMapConfig
from .labels import read_annotation

__all__ = [
    "Targets",
    "border_reach",
    "class_weights",
    "outline_pixels",
    "targets_and_weights",
    "touching_pixels",
    "two_nearest_cell_distances",
    "weighted_cross_entropy",
]

_NEGLIGIBLE = 1e-5  # border terms below this are counted as 0 (weights are >= 0.5)


@dataclass(frozen=True)
class Targets:
    """Training targets of one label image (all arrays (H, W)).

    target: uint8 class per pixel: 0 = background, 1 = cell (its interior, with outlines),
        2 = cell outline (with outlines only); 0 where not annotated.
    weight: float32 loss weight per pixel, >= 0; 0 exactly where not annotated.
    gaps: bool, the cell pixels that gap insertion turned into background (with outlines:
        the outline pixels where cells touch).
    """

    target: np.ndarray
    weight: np.ndarray
    gaps: np.ndarray


def targets_and_weights(
    labels: np.ndarray,
    config: WeightMapConfig | None = None,
    label_config: LabelConfig | None = None,
    image_shape: tuple[int, ...] | None = None,
    *,
    outlines: bool = False,
) -> Targets:
    """Class targets and loss weights for a 2D label image, in one call.

    labels: (H, W) integer label image in the label convention (``label_config``).
    image_shape: if given, the labels must match its last two axes.
    outlines: three classes (background, cell interior, cell outline) instead of the
        paper's two with gap insertion.
    Raises ``ValueError`` for labels that break the convention (see
    :func:`napari_unet.core.labels.read_annotation`).
    """
    config = config or WeightMapConfig()
    annotation = read_annotation(labels, label_config, image_shape)
    cells = annotation.cells
    if outlines:
        outline = outline_pixels(cells)
        gaps = outline & touching_pixels(cells)
        target = np.where(outline, 2, cells > 0).astype(np.uint8)
    else:
        gaps = touching_pixels(cells) if config.insert_gaps else np.zeros(cells.shape, bool)
        if gaps.any():
            cells = np.where(gaps, 0, cells)
        target = (cells > 0).astype(np.uint8)
    target[~annotation.annotated] = 0

    weight = np.zeros(cells.shape, np.float32)
    masks = [annotation.annotated & (target == k) for k in range(2 + outlines)]
    for mask, w_class in zip(
        masks, class_weights([int(m.sum()) for m in masks], config), strict=True
    ):
        weight[mask] = w_class
    bordering = annotation.annotated & (target != 1) if outlines else masks[0]
    if config.w0 > 0 and bordering.any():
        d1, d2 = two_nearest_cell_distances(cells, border_reach(config))
        between = bordering & (d2 < np.inf)  # near two cells
        total = d1[between] + d2[between]
        weight[between] += config.w0 * np.exp(-(total**2) / (2 * config.sigma**2))
    return Targets(target=target, weight=weight, gaps=gaps)


def class_weights(counts: list[int], config: WeightMapConfig) -> list[float]:
    """w_c per class from the annotated pixel count of each: every present class gets an
    equal share of the total weight, so the mean of w_c over the annotated pixels is 1."""
    if not config.balance_classes:
        return [1.0] * len(counts)
    total = sum(counts)
    present = sum(n > 0 for n in counts)
    return [total / (present * n) if n else 0.0 for n in counts]


def outline_pixels(cells: np.ndarray) -> np.ndarray:
    """Cell pixels with an 8-neighbour of another value (another cell or no cell); pixels on
    the image edge count as outline only where a neighbour inside the image differs.
    cells: (H, W) ints, 0 = none."""
    same = np.ones(cells.shape, bool)
    padded = np.pad(cells, 1, mode="edge")
    height, width = cells.shape
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            same &= padded[dy : dy + height, dx : dx + width] == cells
    return (cells > 0) & ~same


def border_reach(config: WeightMapConfig) -> int:
    """Distance (px) beyond which ``w0 * exp(-d^2 / (2 sigma^2))`` is below 1e-5."""
    if config.w0 <= _NEGLIGIBLE:
        return 0
    return math.ceil(config.sigma * math.sqrt(2 * math.log(config.w0 / _NEGLIGIBLE)))


def touching_pixels(cells: np.ndarray) -> np.ndarray:
    """Cell pixels with an 8-neighbour in a different cell. cells: (H, W) ints, 0 = none."""
    touching = np.zeros(cells.shape, bool)
    # each neighbour pair once: right, down, down-right, down-left; mark both ends
    for a, b in (
        ((slice(None), slice(None, -1)), (slice(None), slice(1, None))),
        ((slice(None, -1), slice(None)), (slice(1, None), slice(None))),
        ((slice(None, -1), slice(None, -1)), (slice(1, None), slice(1, None))),
        ((slice(None, -1), slice(1, None)), (slice(1, None), slice(None, -1))),
    ):
        first, second = cells[a], cells[b]
        pair = (first != second) & (first > 0) & (second > 0)
        touching[a] |= pair
        touching[b] |= pair
    return touching


def two_nearest_cell_distances(cells: np.ndarray, reach: int) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the Euclidean distances to the nearest and second-nearest cell.

    cells: (H, W) ints, 0 = no cell. Distances beyond ``reach`` pixels come out as inf
    (exact up to it): each cell's distance transform is computed on its bounding box
    grown by ``reach``, so a pixel outside that box does not see the cell (exact distances
    beyond ``reach`` may also come out). Returns two float64 (H, W) arrays, d1 <= d2.
    """
    d1 = np.full(cells.shape, np.inf)
    d2 = np.full(cells.shape, np.inf)
    if not cells.any():
        return d1, d2
    if cells.max() > 4 * cells.size:  # huge label values: number them 1..n first
        cells = np.unique(cells, return_inverse=True)[1].reshape(cells.shape)
    cells = cells.astype(np.int32, copy=False)
    height, width = cells.shape
    for value, box in enumerate(ndi.find_objects(cells), start=1):
        if box is None:
            continue
        rows = slice(max(box[0].start - reach, 0), min(box[0].stop + reach, height))
        cols = slice(max(box[1].start - reach, 0), min(box[1].stop + reach, width))
        distance = ndi.distance_transform_edt(cells[rows, cols] != value)
        near, second = d1[rows, cols], d2[rows, cols]  # views: updated in place
        np.minimum(second, np.maximum(near, distance), out=second)
        np.minimum(near, distance, out=near)
    return d1, d2


# --------------------------------------------------------------------------- the loss


def weighted_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor
) -> torch.Tensor:
    """Mean of ``w(x) * -log p_target(x)(x)`` over the annotated pixels of the batch.

    logits: (N, classes, H, W) class scores (any float dtype; computed in float32).
    target: (N, H, W) integer class per pixel.
    weight: (N, H, W) float weights, 0 where a pixel is not annotated.

    Dividing by the number of annotated pixels (weight > 0), not by H * W, keeps the scale
    of the loss independent of how much of a tile is annotated. Tiles without annotated
    pixels add nothing; a batch without any gives 0 (with a gradient of 0), never NaN.
    """
    if logits.ndim != 4 or target.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(
            f"logits (N, C, H, W) and target (N, H, W) do not fit: {tuple(logits.shape)} and "
            f"{tuple(target.shape)}"
        )
    if weight.shape != target.shape:
        raise ValueError(
            f"weight {tuple(weight.shape)} must have the target's shape {tuple(target.shape)}"
        )
    per_pixel = F.cross_entropy(logits.float(), target.long(), reduction="none")
    annotated = (weight > 0).sum().clamp(min=1)
    return (per_pixel * weight.float()).sum() / annotated
