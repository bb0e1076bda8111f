"""Segmentation of whole images and stacks: the one computation behind the "Segment layer"
widget, ``napari-unet segment`` and Python.

Axes (:mod:`~napari_unet.core.images`): a model with one input channel takes (H, W) images
or (Z, H, W) stacks (Z = time or depth: each plane is segmented on its own); a model with
C > 1 channels takes (C, H, W) or (Z, C, H, W). Labels are numbered without repeats across
the whole stack, so one value is one object in one plane.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from .cells.instances import cell_probability, labels_from_probabilities
from .cells.rules import InstanceRules
from .config import NormalizationConfig
from .events import PlaneDone, Status, TilesDone
from .images import colour_channels, count_planes, labels_to_image, network_shape, resize_image
from .network.model import UNet
from .network.predict import predict_tiled

__all__ = ["Segmentation", "segment"]


@dataclass(frozen=True)
class Segmentation:
    """labels: (H, W) or (Z, H, W), uint16/uint32, 0 = background.
    cell_probability: float32 of the same shape, when asked for (else None).
    probabilities: when asked for, what :func:`relabel` needs to label again with other
    rules without running the network: each plane's class probabilities (classes, h, w)
    at the network's scale."""

    labels: np.ndarray
    cell_probability: np.ndarray | None = None
    probabilities: Probabilities | None = None


@dataclass(frozen=True)
class Probabilities:
    """A segmentation's class probabilities, per plane, and how they map to the image:
    ``planes`` (classes, h, w) float32 at the network's scale; ``shape``, the image's (H, W);
    ``single``, a 2D image (not a stack of one plane); ``threshold`` and ``method``, the
    labelling options besides the rules; ``memos``, per plane, the labelling stages that
    :func:`relabel` reuses when the rules that made them have not moved."""

    planes: tuple[np.ndarray, ...]
    shape: tuple[int, int]
    scale: float
    single: bool
    threshold: float = 0.5
    method: str = "components"
    memos: tuple[dict, ...] = field(default=(), compare=False, repr=False)


def label_plane(
    probabilities: np.ndarray, rules: InstanceRules, kept: Probabilities, memo: dict | None = None
) -> np.ndarray:
    """The cells of one plane's class probabilities, at the image's pixels (``memo``:
    :func:`~napari_unet.core.cells.instances.label_instances`)."""
    plane = labels_from_probabilities(
        probabilities,
        threshold=kept.threshold,
        method=kept.method,
        memo=memo,
        **rules.labelling(),
    )
    return labels_to_image(plane, kept.shape) if kept.scale != 1 else plane


def relabel(kept: Probabilities, rules: InstanceRules) -> np.ndarray:
    """Labels made again from kept probabilities with other ``rules`` (their ``flips``
    aside: that is how the probabilities were predicted); with the rules the segmentation
    used, equal to its labels. For tuning the rules without running the network."""
    labels = np.zeros((len(kept.planes), *kept.shape), np.uint32)
    count = 0
    memos = kept.memos or tuple({} for _ in kept.planes)
    for z, probabilities in enumerate(kept.planes):
        count = _add_plane(labels, z, label_plane(probabilities, rules, kept, memos[z]), count)
    return _finish_labels(labels, count, kept.single)


def _add_plane(labels: np.ndarray, z: int, plane: np.ndarray, count: int) -> int:
    """Put a plane's labels into the stack, numbered after the planes before it."""
    labels[z] = np.where(plane > 0, plane.astype(np.uint32) + count, 0)
    return count + int(plane.max())


def _finish_labels(labels: np.ndarray, count: int, single: bool) -> np.ndarray:
    labels = labels.astype(np.uint16) if count < 2**16 else labels
    return labels[0] if single else labels


def check_arguments(model, image) -> None:
    """Raise ``TypeError`` naming the fix when a file name is given for a model or an
    image (the core takes objects; ``napari_unet.model_io`` and ``image_io`` read files)."""
    if isinstance(model, (str, os.PathLike)) or not hasattr(model, "config"):
        raise TypeError(
            f"expected a UNet, not {type(model).__name__} {str(model)[:60]!r}; for a model "
            "file use napari_unet.model_io.load_model(path), and pass its .model and .rules"
        )
    if isinstance(image, (str, os.PathLike)) or not hasattr(image, "shape"):
        raise TypeError(
            f"expected an image array, not {type(image).__name__}; read image files with "
            "napari_unet.image_io.read_image(path)"
        )


def segment(
    model: UNet,
    image: np.ndarray,
    normalization: NormalizationConfig | None = None,
    *,
    rules: InstanceRules | None = None,
    threshold: float = 0.5,
    method: str = "components",
    tile_size: int | None = None,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
    precision: str = "auto",
    keep_probability: bool = False,
    keep_classes: bool = False,
) -> Generator[TilesDone | PlaneDone | Status, None, Segmentation]:
    """Instance labels for an image or a stack, plane by plane, tile by tile.

    Colour images (colour axis last) are taken as
    :func:`~napari_unet.core.images.colour_channels` says. Yields :class:`PlaneDone` with
    ``done=0`` first (how many planes there are), then :class:`TilesDone` per batch of tiles
    and :class:`PlaneDone` per plane; returns a :class:`Segmentation` whose
    labels have the image's spatial shape ((H, W) or (Z, H, W)), uint16 or uint32 as the
    number of objects needs, and, with ``keep_probability``, the cell probability. Each
    plane is normalised on its own. A model that works at another pixel scale
    (``model.config.scale``, :mod:`.scale`) gets each plane resized to it; labels and
    probability come back at the image's pixels.
    ``rules`` (a trained model's, e.g. ``TrainResult.rules``; by default
    ``InstanceRules()``) say whether to predict with flips
    (:func:`~napari_unet.core.network.predict.predict_tiled`) and, with ``threshold`` and
    ``method`` ("components" or "watershed", for two-class networks), how
    :func:`~napari_unet.core.cells.instances.label_instances` labels. ``tile_size``,
    ``batch_size``, ``device`` and ``precision`` go to
    :func:`~napari_unet.core.network.predict.predict_tiled` (which yields a
    :class:`Status` when it changes the tile size). ``keep_classes`` keeps the class
    probabilities (:attr:`Segmentation.probabilities`, for :func:`relabel`).
    """
    check_arguments(model, image)
    image = colour_channels(image, model.config.in_channels)
    planes = count_planes(image.shape, model.config.in_channels)
    single = image.ndim == 2 + (model.config.in_channels > 1)
    labels = np.zeros((planes, *image.shape[-2:]), np.uint32)
    kept = np.zeros(labels.shape, np.float32) if keep_probability else None
    count = 0
    scale, shape = model.config.scale, labels.shape[-2:]
    rules = rules or InstanceRules()
    record = Probabilities((), shape, scale, single, threshold, method)
    planes_kept, memos = [], []
    yield PlaneDone(done=0, total=planes)
    for z in range(planes):
        image_plane = image if single else image[z]
        if scale != 1:
            image_plane = resize_image(image_plane, network_shape(shape, scale))
        probabilities = yield from predict_tiled(
            model,
            image_plane,
            normalization,
            tile_size=tile_size,
            batch_size=batch_size,
            device=device,
            precision=precision,
            flips=rules.flips,
        )
        memo = {} if keep_classes else None  # kept, so that the first relabel is fast too
        count = _add_plane(labels, z, label_plane(probabilities, rules, record, memo), count)
        if kept is not None:
            kept[z] = resize_image(cell_probability(probabilities), shape)  # no-op at scale 1
        if keep_classes:
            planes_kept.append(probabilities)
            memos.append(memo)
        yield PlaneDone(done=z + 1, total=planes)
    return Segmentation(
        _finish_labels(labels, count, single),
        None if kept is None else (kept[0] if single else kept),
        replace(record, planes=tuple(planes_kept), memos=tuple(memos)) if keep_classes else None,
    )
