"""Per-region arithmetic on label images and masks in plain numpy: the same results as
the general scipy.ndimage and scikit-image functions they replace (tests compare them),
in a fraction of their time on large planes, where "Tune the cells" redraws
(docs/decisions/2026-12-05-fast-neck-maxima.md)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import watershed

__all__ = ["flood", "largest_per_label", "sequential", "with_holes_filled"]


def largest_per_label(values: np.ndarray, labels: np.ndarray, count: int) -> np.ndarray:
    """(count + 1,) the largest of ``values`` (floats) in each label 1..count, in their
    dtype (-inf where a label has no pixel; index 0 unused), as ``ndi.maximum`` gives
    per label. (In their dtype, a comparison with a Python float rounds as before: a
    float32 0.9 is >= 0.9.)"""
    largest = np.full(count + 1, -np.inf, dtype=values.dtype)
    inside = labels > 0
    np.maximum.at(largest, labels[inside], values[inside])
    return largest


def sequential(labels: np.ndarray) -> np.ndarray:
    """``labels`` (non-negative ints) renumbered 1..n in the order of their values, 0 kept:
    ``relabel_sequential(labels)[0]``, as int64."""
    present = np.bincount(labels.ravel()) > 0
    present[0] = False
    lookup = np.zeros(len(present), np.int64)
    lookup[present] = np.arange(1, int(present.sum()) + 1)
    return lookup[labels]


def with_holes_filled(mask: np.ndarray) -> np.ndarray:
    """``mask`` with its holes filled: the parts of the background (4-connected) that do
    not reach the plane's edge, as ``ndi.binary_fill_holes`` fills them (2D)."""
    background, count = ndi.label(~mask)
    outside = np.zeros(count + 1, bool)
    for edge in (background[0], background[-1], background[:, 0], background[:, -1]):
        outside[edge] = True
    outside[0] = True  # (the mask itself)
    return mask | ~outside[background]


def flood(image: np.ndarray, markers: np.ndarray, mask: np.ndarray, connectivity: int = 1):
    """skimage's ``watershed(image, markers, mask=mask)``, with ties broken by raster
    order: ``image`` is replaced by the rank of its values on ``mask``, equal values in
    raster order. skimage floods pixels of equal value in the order of its heap, which
    depends on the whole image, so a crop's basins could differ from the whole image's
    by a pixel where two floods meet on a plateau (a distance transform has many); with
    no ties the floods, and so the labels of a block, depend only on what is near
    (docs/decisions/2026-12-05-labels-block-by-block.md)."""
    values = image[mask]
    order = np.argsort(values, kind="stable")
    rank = np.zeros(image.shape, np.int64)
    rank[mask] = _inverse(order)
    return watershed(rank, markers, connectivity=connectivity, mask=mask)


def _inverse(order: np.ndarray) -> np.ndarray:
    """The ranks of a permutation's elements: ``inverse[order] = 0..n-1``."""
    inverse = np.empty(len(order), np.int64)
    inverse[order] = np.arange(len(order))
    return inverse
