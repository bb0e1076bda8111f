"""Input normalisation: what the network sees of an image's intensities."""

from __future__ import annotations

import math

import numpy as np

from .config import NormalizationConfig

__all__ = ["intensity_range", "normalize"]

MAX_SAMPLES = 2**22  # pixels read to estimate the percentiles of a large image


def intensity_range(
    image, config: NormalizationConfig | None = None, *, max_samples: int = MAX_SAMPLES
) -> tuple[float, float]:
    """The intensities that normalisation maps to 0 and 1: the ``low``/``high`` percentiles.

    ``image`` is any array with the two spatial axes last (numpy, dask, zarr). Images with
    more than ``max_samples`` pixels are sampled on a regular grid (every k-th row and
    column), which reads only those pixels from a lazy array. Raises ``ValueError`` for
    non-numeric images, NaN or infinite values, and constant images.
    """
    config = config or NormalizationConfig()
    size = math.prod(image.shape)
    if size == 0:
        raise ValueError("the image is empty")
    if not np.issubdtype(image.dtype, np.number) or np.issubdtype(image.dtype, np.complexfloating):
        raise ValueError(f"the image has data type {image.dtype}; expected real numbers")
    step = max(1, math.ceil(math.sqrt(size / max_samples)))
    sample = image[..., ::step, ::step] if len(image.shape) >= 2 else image[...]
    values = np.asarray(sample).astype(np.float32, copy=False)
    check_finite(values)
    low, high = np.percentile(values, [config.low_percentile, config.high_percentile])
    if high <= low:
        low, high = float(values.min()), float(values.max())
        if high <= low:
            raise ValueError(
                f"the image is constant (every pixel is {low:g}); there is nothing to segment"
            )
    return float(low), float(high)


def check_finite(values: np.ndarray) -> None:
    """Raise ``ValueError`` if ``values`` hold NaN or infinities."""
    if not np.isfinite(values).all():
        raise ValueError(
            "the image contains NaN or infinite values; replace them (e.g. with the image "
            "minimum) before segmenting"
        )


def normalize(image: np.ndarray, config: NormalizationConfig | None = None) -> np.ndarray:
    """Map the ``low``/``high`` percentiles of ``image`` to 0 and 1 (float32, not clipped).

    Works on any shape; see :func:`intensity_range` for how the percentiles are found and
    which images are refused.
    """
    image = np.asarray(image)
    low, high = intensity_range(image, config)
    values = image.astype(np.float32, copy=False)
    check_finite(values)
    return ((values - low) / (high - low)).astype(np.float32)
