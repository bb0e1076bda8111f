"""Per-region arithmetic on label images and masks in plain numpy: the same results as
the general scipy.ndimage and scikit-image functions they replace (tests compare them),
in a fraction of their time on large planes, where "Tune the cells" redraws
(docs/decisions/2026-12-05-fast-neck-maxima.md)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["largest_per_label", "sequential", "with_holes_filled"]


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
