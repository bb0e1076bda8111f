"""From class probabilities to instance labels: one integer per cell."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["label_instances"]


def label_instances(
    cell_probability: np.ndarray, *, threshold: float = 0.5, min_size: int = 10
) -> np.ndarray:
    """Label the connected regions where the cell probability exceeds ``threshold``.

    cell_probability: (H, W) floats in [0, 1]. Regions (4-connected) smaller than
    ``min_size`` pixels are dropped. Returns (H, W) labels numbered 1..n without gaps, 0 for
    background, in the smallest unsigned dtype that holds n (uint16 or uint32).
    """
    probability = np.asarray(cell_probability)
    if probability.ndim != 2:
        raise ValueError(f"expected a 2D probability map; got shape {probability.shape}")
    labels, count = ndi.label(probability > threshold)
    if count and min_size > 1:
        sizes = np.bincount(labels.ravel())
        keep = sizes >= min_size
        keep[0] = False
        lookup = np.zeros(count + 1, np.int64)
        lookup[keep] = np.arange(1, int(keep.sum()) + 1)
        labels, count = lookup[labels], int(keep.sum())
    dtype = np.uint16 if count < 2**16 else np.uint32
    return labels.astype(dtype)
