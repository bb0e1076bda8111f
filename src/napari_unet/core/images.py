"""Images as the network takes them: axes, colour, intensities and pixel scale.

**Axes.** A model with one input channel takes (H, W) images or (Z, H, W) stacks (Z = time
or depth: each plane on its own); a model with C > 1 channels takes (C, H, W) or
(Z, C, H, W). Labels are (H, W) or (Z, H, W). :func:`count_planes` and
:func:`pair_channels` are the one rule, with one wording of its error.

**Colour.** Images often reach users as PNG or JPEG files, or as napari RGB layers, with
the colour axis last: (H, W, 3) or (H, W, 4), (Z, H, W, 3) for a stack. Many of them are
grey images saved in colour (three equal channels). :func:`colour_channels` gives what the
network takes (channels first).

**Intensities.** Per plane, the low and high percentiles map to 0 and 1
(:func:`intensity_range`, :func:`normalize`).

**Scale.** A network learns what a cell edge and a contact look like within its field of
view (88 px for the light preset). When the painted cells are large, training shrinks
images and labels until the median painted cell is ``TARGET_DIAMETER`` px across
(docs/decisions/2026-11-22-cell-scale.md); the factor is stored with the network
(``UNetConfig.scale``) and :func:`~napari_unet.core.segment.segment` shrinks each plane by
it, predicts, and draws the labels back at the image's own pixels. Smaller cells keep
their pixels.
"""

from __future__ import annotations

import math

import numpy as np
from skimage.segmentation import expand_labels, relabel_sequential
from skimage.transform import resize

from .config import NormalizationConfig

__all__ = [
    "MAX_DIAMETER",
    "TARGET_DIAMETER",
    "check_finite",
    "check_plane",
    "choose_scale",
    "colour_channels",
    "count_planes",
    "intensity_range",
    "is_colour",
    "labels_to_image",
    "network_shape",
    "network_window",
    "normalize",
    "pair_channels",
    "resize_image",
    "resize_labels",
]

MAX_SAMPLES = 2**22  # pixels read to estimate the percentiles of a large image
MAX_DIAMETER = 40.0  # px: painted cells wider than this (median) are shrunk...
TARGET_DIAMETER = 24.0  # px: ...to this


# --------------------------------------------------------------------------- axes


def _shape_error(shape: tuple[int, ...], in_channels: int, stacks: bool = True) -> ValueError:
    if in_channels == 1:
        want = "(H, W) or (Z, H, W)" if stacks else "(H, W)"
    else:
        colour = " (colour as napari shows it: (H, W, 3))" if in_channels == 3 else ""
        want = (
            f"({in_channels}, H, W)" + (f" or (Z, {in_channels}, H, W)" if stacks else "") + colour
        )
    return ValueError(
        f"this model takes images of shape {want}; got shape {tuple(shape)}. Move the "
        "channel axis first for multichannel images"
    )


def count_planes(image_shape: tuple[int, ...], in_channels: int) -> int:
    """How many 2D planes an image of this shape has for a model with ``in_channels``:
    1 for (H, W) or (C, H, W), Z for (Z, H, W) or (Z, C, H, W).

    Raises ``ValueError`` for shapes that do not fit the model.
    """
    spatial = 2 + (in_channels > 1)  # (H, W) or (C, H, W)
    shape = tuple(image_shape)
    if len(shape) == spatial:
        planes = 1
    elif len(shape) == spatial + 1:
        planes = shape[0]
    else:
        planes = 0
    if planes == 0 or (in_channels > 1 and shape[-3] != in_channels):
        raise _shape_error(shape, in_channels)
    return planes


def check_plane(image_shape: tuple[int, ...], in_channels: int) -> None:
    """Raise ``ValueError`` unless the shape is one plane: (H, W), or (C, H, W) with the
    model's C ((1, H, W) is allowed for one channel)."""
    shape = tuple(image_shape)
    if not (
        (len(shape) == 2 and in_channels == 1) or (len(shape) == 3 and shape[0] == in_channels)
    ):
        raise _shape_error(shape, in_channels, stacks=False)


def pair_channels(image_shape: tuple[int, ...], labels_shape: tuple[int, ...]) -> int:
    """The input channels of an (image, labels) pair, checked: the image has one axis more
    than its labels when it has a channel axis ((C, H, W) with (H, W), (Z, C, H, W) with
    (Z, H, W)); the labels cover the image's planes.

    Raises ``ValueError`` when the shapes do not fit each other.
    """
    image_shape, labels_shape = tuple(image_shape), tuple(labels_shape)
    channels = image_shape[-3] if len(image_shape) == len(labels_shape) + 1 else 1
    planes = count_planes(image_shape, channels)
    stacked = len(image_shape) == 3 + (channels > 1)
    if labels_shape != ((planes,) if stacked else ()) + image_shape[-2:]:
        raise ValueError(
            f"the labels have shape {labels_shape} but the image has shape {image_shape}; "
            "paint the labels on a layer made for this image"
        )
    return channels


# --------------------------------------------------------------------------- colour


def is_colour(shape: tuple[int, ...]) -> bool:
    """napari's rule for RGB(A) data: at least 3 axes, the last of length 3 or 4."""
    return len(shape) >= 3 and shape[-1] in (3, 4)


def colour_channels(image, in_channels: int | None = None):
    """A colour image as a model with ``in_channels`` takes it; other images unchanged.

    The alpha channel is dropped. A grey image saved in colour (red = green = blue) becomes
    (..., H, W) for a one-channel model, or when ``in_channels`` is None (a new model);
    other colour images become (..., 3, H, W). numpy and dask arrays stay views.
    Raises ``ValueError`` when the model cannot take the colours.
    """
    if not is_colour(tuple(image.shape)):
        return image
    rgb = image[..., :3]
    if in_channels != 3 and _grey(rgb):
        return rgb[..., 0]
    if in_channels not in (None, 3):
        raise ValueError(
            f"the image is in colour (shape {tuple(image.shape)}, red, green and blue "
            f"differ) but the model takes {in_channels} channel(s); save the channel "
            "with the cells as a grey image, or train a model on colour images"
        )
    return np.moveaxis(rgb, -1, -3)


def _grey(rgb) -> bool:
    """Whether red, green and blue are equal (compared on a regular grid of at most
    ``MAX_SAMPLES`` pixels, as the intensity range is estimated)."""
    step = max(1, math.ceil(math.sqrt(math.prod(rgb.shape[:-1]) / MAX_SAMPLES)))
    sample = np.asarray(rgb[..., ::step, ::step, :])
    return bool(
        (sample[..., 0] == sample[..., 1]).all() and (sample[..., 0] == sample[..., 2]).all()
    )


# --------------------------------------------------------------------------- intensities


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


# --------------------------------------------------------------------------- scale


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
