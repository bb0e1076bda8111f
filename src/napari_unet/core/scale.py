"""The pixel scale a network works at: large cells are shrunk to a size it handles well.

A network learns what a cell edge and a contact look like within its field of view (88 px
for the light preset). With nuclei of about 55 px (BBBC007 enlarged 3x) a 3-minute model
split only 25-50 % of the touching pairs and scored F1 0.89-0.93, against 0.96 and every
pair at the original 18 px (docs/benchmarks.md). So when the painted cells are large,
training shrinks images and labels until the median painted cell is ``TARGET_DIAMETER``
px across; the factor is stored with the network (``UNetConfig.scale``) and
:func:`~napari_unet.core.segment.segment` shrinks each plane by it, predicts, and draws
the labels back at the image's own pixels. Smaller cells keep their pixels.
"""

from __future__ import annotations

import math

import numpy as np
from skimage.segmentation import expand_labels, relabel_sequential
from skimage.transform import resize

__all__ = [
    "MAX_DIAMETER",
    "TARGET_DIAMETER",
    "choose_scale",
    "labels_to_image",
    "network_shape",
    "network_window",
    "resize_image",
    "resize_labels",
]

MAX_DIAMETER = 40.0  # px: painted cells wider than this (median) are shrunk...
TARGET_DIAMETER = 24.0  # px: ...to this (HeLa nuclei of 28 px, BBBC007 of 18 px score well)


def choose_scale(median_area: float) -> float:
    """Network px per image px for painted cells of ``median_area`` px (median): 1 for
    cells up to ``MAX_DIAMETER`` across, else ``TARGET_DIAMETER`` / their diameter."""
    diameter = math.sqrt(4.0 * median_area / math.pi) if median_area > 0 else 0.0
    return 1.0 if diameter <= MAX_DIAMETER else round(TARGET_DIAMETER / diameter, 4)


def network_shape(shape: tuple[int, int], scale: float) -> tuple[int, int]:
    """(rows, columns) of an image of ``shape`` at ``scale``."""
    return tuple(max(round(n * scale), 1) for n in shape)  # type: ignore[return-value]


def network_window(window: tuple[slice, slice], scale: float) -> tuple[slice, slice]:
    """The window (rows, columns) of the image at ``scale``: what covers ``window``."""
    return tuple(
        slice(math.floor(s.start * scale), max(math.ceil(s.stop * scale), 1)) for s in window
    )  # type: ignore[return-value]


def resize_image(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(..., H, W) image resized to (..., *shape), float32: linear, smoothed first when
    shrinking (no aliasing); each leading index (channel) on its own."""
    image = np.asarray(image, np.float32)
    if image.shape[-2:] == tuple(shape):
        return image
    shrinking = any(new < old for new, old in zip(shape, image.shape[-2:], strict=True))
    out = resize(
        image,
        (*image.shape[:-2], *shape),
        order=1,
        mode="reflect",
        anti_aliasing=shrinking,  # sigma (factor - 1) / 2 per axis: 0 on channels
        preserve_range=True,
    )
    return out.astype(np.float32)


def resize_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) labels resized to ``shape`` by nearest neighbour (values kept)."""
    labels = np.asarray(labels)
    if labels.shape == tuple(shape):
        return labels
    rows = np.minimum(
        ((np.arange(shape[0]) + 0.5) * labels.shape[0] / shape[0]).astype(int), labels.shape[0] - 1
    )
    columns = np.minimum(
        ((np.arange(shape[1]) + 0.5) * labels.shape[1] / shape[1]).astype(int), labels.shape[1] - 1
    )
    return labels[np.ix_(rows, columns)]


def labels_to_image(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Labels made at the network's scale, drawn at the image's ``shape``: the cells'
    mask is resized linearly (smooth outlines, not the blocks of nearest neighbour), and
    each of its pixels takes the label of the nearest labelled one within the scale's
    step (contacts between cells keep the network's pixels)."""
    if labels.shape == tuple(shape):
        return labels
    foreground = resize_image((labels > 0).astype(np.float32), shape) > 0.5
    step = max(shape[0] / labels.shape[0], shape[1] / labels.shape[1])
    grown = expand_labels(resize_labels(labels, shape), distance=math.ceil(step))
    return relabel_sequential(np.where(foreground, grown, 0).astype(labels.dtype))[0]
