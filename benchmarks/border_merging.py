"""Cells that tile the image, made by merging regions along their borders (measured in
``separation.py --rules borders-T``, and as a splitter of the rules' cells,
``split-borders-T``; not in the product: see
docs/decisions/2026-12-07-border-merging-not-adopted.md); and the rules' cells joined
where the border between them is not membrane (``across-T``; not in the product:
docs/decisions/2026-12-07-joining-across-borders-not-adopted.md). (Cells joined to the
cell whose hole they lie in, measured here first, are now the product's:
``core/cells/enclosed.py``.)

The way EM pipelines usually part cells whose membranes have gaps: the image is cut into
many small regions by a watershed of the background probability (seeded at the maxima of
the cell mask's distance transform, not masked, so that the borders between regions run
along the membranes), then neighbouring regions are merged, the pair whose common border
is least like background first, while that border's mean background probability is below
``threshold``. A gap of a few pixels in a membrane leaves most of the border between two
cells on the membrane, so they stay apart; a dark organelle inside a cell leaves most of
the border between its pieces in the cell, so they join.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.measure import label
from skimage.segmentation import expand_labels, watershed

from napari_unet.core.cells.borders import (
    BORDER_REACH,
    SEED_DISTANCE,
    SMOOTHING,
    merged_regions,
)
from napari_unet.core.cells.instances import _drop_small, cell_probability
from napari_unet.core.cells.regions import with_holes_filled


def oversegment(background: np.ndarray, foreground: np.ndarray) -> np.ndarray:
    """Regions of a watershed of the smoothed ``background`` probability over the whole
    image, from the maxima of the smoothed distance transform of ``foreground`` (each
    connected piece of it seeded at least once)."""
    distance = ndi.gaussian_filter(ndi.distance_transform_edt(foreground), SMOOTHING)
    pieces = ndi.label(foreground)[0]
    peaks = peak_local_max(
        distance, min_distance=SEED_DISTANCE, labels=pieces, exclude_border=False
    )
    markers = np.zeros(background.shape, np.int64)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return watershed(ndi.gaussian_filter(background, SMOOTHING), markers)


def cells_merged_along_borders(
    probabilities: np.ndarray, threshold: float, min_size: int
) -> np.ndarray:
    """(H, W) cells from (classes, H, W) class probabilities: :func:`oversegment`, regions
    merged while the mean background probability along their common border is below
    ``threshold``, then cut to the cell mask (cell probability above 0.5, holes filled);
    each connected piece one cell, pieces under ``min_size`` px dropped."""
    cell = cell_probability(probabilities)
    background = (1.0 - cell).astype(np.float64)
    foreground = with_holes_filled(cell > 0.5)
    if not foreground.any():
        return np.zeros(cell.shape, np.int64)
    merged = merged_regions(oversegment(background, foreground), background, threshold)
    return _drop_small(label(np.where(foreground, merged + 1, 0), connectivity=1), min_size)[0]


def split_along_borders(labels: np.ndarray, merged: np.ndarray, min_size: int) -> np.ndarray:
    """``labels`` (the rules' cells) cut where ``merged`` (:func:`cells_merged_along_borders`)
    keeps two regions apart: each connected piece of one cell and one merged region is a
    cell, pieces under ``min_size`` px dropped. It only splits: where border merging
    merges what the rules keep apart, the rules win."""
    pairs = np.where(labels > 0, labels.astype(np.int64) * (int(merged.max()) + 2) + merged + 1, 0)
    return _drop_small(label(pairs, connectivity=1), min_size)[0]


def join_across_borders(labels: np.ndarray, background: np.ndarray, threshold: float) -> np.ndarray:
    """``labels`` (the rules' cells) with neighbours joined, the pair whose common border
    is least like background first, while that border's mean ``background`` probability
    is below ``threshold``. The border between two cells is that of their zones (each
    cell grown ``BORDER_REACH`` px into the background, as the product's cut reads it).
    It only joins: the reverse of the cut along membranes."""
    zones = expand_labels(labels, BORDER_REACH)
    return np.where(labels > 0, merged_regions(zones, background, threshold) + 1, 0)
