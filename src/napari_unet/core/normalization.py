"""Input normalisation: what the network sees of an image's intensities."""

from __future__ import annotations

import numpy as np

from .config import NormalizationConfig

__all__ = ["normalize"]


def normalize(image: np.ndarray, config: NormalizationConfig | None = None) -> np.ndarray:
    """Map the ``low``/``high`` percentiles of ``image`` to 0 and 1 (float32, not clipped).

    Works on any shape; the percentiles are taken over the whole array. Raises
    ``ValueError`` for images with NaN or infinite values and for constant images, where
    there is nothing to segment.
    """
    config = config or NormalizationConfig()
    image = np.asarray(image)
    if image.size == 0:
        raise ValueError("the image is empty")
    if not np.issubdtype(image.dtype, np.number) or np.iscomplexobj(image):
        raise ValueError(f"the image has data type {image.dtype}; expected real numbers")
    values = image.astype(np.float32, copy=False)
    if not np.isfinite(values).all():
        raise ValueError(
            "the image contains NaN or infinite values; replace them (e.g. with the image "
            "minimum) before segmenting"
        )
    low, high = np.percentile(values, [config.low_percentile, config.high_percentile])
    if high <= low:
        low, high = float(values.min()), float(values.max())
        if high <= low:
            raise ValueError(
                f"the image is constant (every pixel is {low:g}); there is nothing to segment"
            )
    return ((values - low) / (high - low)).astype(np.float32)
