"""Scoring a model on the painted cells while it trains: validation on the held-back cells,
the choice of the best model, the calibration of its rules, and the live preview.

Everything here predicts small crops of the training planes around painted cells (and, for
cells parted at dips, one window of the painted plane, four times): without
test-time flips while training (a quarter of the time), and with the flips the model's
rules will segment with for the calibration and its check, so that a model is called
ready on the probabilities ``segment`` will label (an undertrained model's mirrored
predictions disagree, and their mean can stay below thresholds that each one reaches).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy import ndimage as ndi

from ..cells.instances import cell_probability, labels_from_probabilities
from ..cells.metrics import InstanceScores, match_instances
from ..cells.rules import (
    NECK_CELLS,
    InstanceRules,
    painted_cells_found,
    rules_for,
    rules_from_paint,
)
from ..events import Preview, drain
from ..images import resize_image
from ..network.model import UNet
from ..network.predict import predict_tiled
from ..uncertainty import cell_disagreement, mirrored_probabilities
from .trainset import VALIDATION_MARGIN, TrainingSet, ValidationRegion, with_margin

__all__ = [
    "BestModel",
    "calibrated_rules",
    "calibration_crops",
    "calibration_held_back",
    "contact_crops",
    "dip_window",
    "mirrored_window",
    "most_painted_window",
    "preview",
    "validate",
]

# validation F1 x IoU this close to the best counts as a tie (plus what one held-back cell
# can change: 1 / their number; docs/decisions/2026-12-01-best-model.md)
QUALITY_TOLERANCE = 0.03
NEAR = 3  # px: a pasted cell's host is the painted cell within this (pasted gaps are <= 2)
# px: the check of a model calls a painted cell not found where the object over it reaches
# this far outside it: it has run into a neighbour, which the crop may cut off; half the
# crop's margin, so that it shows before the crop's edge
# (docs/decisions/2026-12-06-leaks-are-not-found.md)
LEAK_PX = VALIDATION_MARGIN // 2
# px (the network's): the most of each axis of the painted plane that the dips of cells
# that tile the image are calibrated on (four predictions of it)
DIP_WINDOW = 1024


def predict_crop(
    model: UNet, image: np.ndarray, window: tuple[slice, slice], device, flips: bool = False
) -> np.ndarray:
    """(classes, h, w) probabilities of ``window`` of a training plane's (C, H, W) ``image``
    (with ``flips``: the mean of the four mirrored predictions, as ``segment`` makes them)."""
    crop = image[(slice(None), *window)]
    return drain(predict_tiled(model, crop, intensity=(0.0, 1.0), device=device, flips=flips))


def uncalibrated_rules(model: UNet, data: TrainingSet) -> InstanceRules:
    """The rules for ``model`` on the painted cells before calibration (validation scores
    with them: the same rules for every checkpoint)."""
    return rules_for(data.cells, outlines=model.config.outlines)


def validate(
    model: UNet, data: TrainingSet, regions: list[ValidationRegion], device
) -> InstanceScores:
    """Object F1 at IoU 0.5 on the held-back cells: predicted objects count only where
    they overlap a held-back cell (elsewhere nothing is known)."""
    tp = fp = fn = 0
    ious = []
    options = uncalibrated_rules(model, data).labelling()
    for region in regions:
        probabilities = predict_crop(model, data.planes[region.plane].image, region.window, device)
        predicted = labels_from_probabilities(probabilities, **options)
        touching = np.unique(predicted[region.truth > 0])
        predicted = np.where(np.isin(predicted, touching[touching > 0]), predicted, 0)
        scores = match_instances(region.truth, predicted)
        tp, fp, fn = tp + scores.tp, fp + scores.fp, fn + scores.fn
        ious += [scores.mean_matched_iou] * scores.tp
    return InstanceScores(0.5, tp, fp, fn, float(np.mean(ious)) if ious else 0.0)


class BestModel:
    """The best model so far, by F1 x mean matched IoU on the held-back cells (finer than
    F1 on a few cells); near-ties go to the later, longer-trained model, since a handful
    of held-back cells cannot tell models apart more finely. Without validation, the
    latest model is the best."""

    def __init__(self, held_back: int) -> None:
        self.tolerance = QUALITY_TOLERANCE + 1.0 / max(held_back, 1)
        self.state: dict[str, torch.Tensor] | None = None  # None: the last model
        self.step = 0
        self.f1: float | None = None
        self.iou: float | None = None  # mean IoU of the matched cells
        self._quality: float | None = None

    def offer(self, model: UNet, step: int, scores: InstanceScores) -> bool:
        """Keep ``model`` (after ``step``) if it is the best so far; True if kept."""
        quality = scores.f1 * scores.mean_matched_iou
        if self._quality is not None and quality < self._quality - self.tolerance:
            return False
        self.state, self.step, self.f1 = cpu_state(model), step, scores.f1
        self.iou = scores.mean_matched_iou
        self._quality = max(quality, self._quality or 0.0)
        return True


def calibration_crops(model: UNet, data: TrainingSet, device, flips: bool = False) -> list:
    """(probabilities, cell mask) of up to ``NECK_CELLS`` painted cells (spread evenly),
    each predicted in a crop around it (with ``flips``: as ``segment`` predicts)."""
    regions = data.validation_regions(cells="all", at_most=NECK_CELLS)
    return [
        (predict_crop(model, data.planes[r.plane].image, r.window, device, flips), r.truth > 0)
        for r in regions
    ]


def calibration_held_back(data: TrainingSet) -> list[bool]:
    """Per crop of :func:`calibration_crops`, whether its cell was held back from training."""
    return [r.held_back for r in data.validation_regions(cells="all", at_most=NECK_CELLS)]


def contact_crops(model: UNet, data: TrainingSet, device, flips: bool = False) -> list:
    """(probabilities, cell mask) of both cells of up to ``NECK_CELLS`` / 2 painted cells
    with a pasted neighbour, newly drawn (:meth:`~.trainset.TrainingSet.draw_contact_planes`),
    each pair predicted in one crop around it: contacts whose truth is known. Empty where
    nothing is pasted (rods, complete masks)."""
    pairs = []  # (plane, pasted cell, its host, the crop around both)
    for plane, first_pasted in data.draw_contact_planes():
        labels = plane.labels
        boxes = ndi.find_objects(labels.astype(np.int64))
        for value in range(first_pasted, int(labels.max()) + 1):
            box = boxes[value - 1]
            if box is None:
                continue
            around = with_margin(box, NEAR + 1, labels.shape)
            near = ndi.binary_dilation(labels[around] == value, iterations=NEAR)
            hosts = labels[around][near]
            hosts = hosts[(hosts > 1) & (hosts < first_pasted)]
            if hosts.size:
                host = int(np.bincount(hosts).argmax())
                both = tuple(
                    slice(min(a.start, b.start), max(a.stop, b.stop))
                    for a, b in zip(box, boxes[host - 1], strict=True)
                )
                pairs.append(
                    (plane, value, host, with_margin(both, VALIDATION_MARGIN, labels.shape))
                )
    crops = []
    for plane, value, host, window in pairs[:: max(1, -(-len(pairs) // (NECK_CELLS // 2)))]:
        probabilities = predict_crop(model, plane.image, window, device, flips)
        crops += [(probabilities, plane.labels[window] == v) for v in (value, host)]
    return crops


def calibrated_rules(model: UNet, data: TrainingSet, device) -> tuple[InstanceRules, int, int]:
    """How ``model``'s probabilities become cells, calibrated on the painted cells (the
    interior threshold on those held back from training) and on pairs of them pasted into
    contact (:func:`~napari_unet.core.cells.rules.rules_from_paint`), and how many of the
    painted cells it was calibrated on those rules find (an object that reaches
    ``LEAK_PX`` outside its cell does not find it). The crops are predicted with the flips
    the rules segment with. Where the shape policy parts cells at dips, the dip is chosen
    on the four mirrored predictions of a window of the painted plane (:func:`dip_window`)."""
    start = uncalibrated_rules(model, data)
    crops = calibration_crops(model, data, device, start.flips)
    unseen = [crop for crop, held in zip(crops, calibration_held_back(data), strict=True) if held]
    contacts = contact_crops(model, data, device, start.flips) if model.config.outlines else []
    mirrored = []
    if data.cells.parts_at_dips(model.config.outlines):
        mirrored = mirrored_window(model, data, device)
    rules = rules_from_paint(
        crops, start, data.cells, model.config, contacts=contacts, unseen=unseen, mirrored=mirrored
    )
    # (counted as the whole image would: not where the object runs into a neighbour)
    found = int((painted_cells_found(crops, rules, leak_px=LEAK_PX) > 0).sum()) if crops else 0
    return rules, found, len(crops)


def dip_window(data: TrainingSet) -> tuple[int, tuple[slice, slice]]:
    """The training plane with the most painted pixels, and the window of its paint that
    the dips are calibrated on: the paint's bounding box, or where that is wider than
    ``DIP_WINDOW`` px, the window of that width that holds the most paint. Kept until the
    paint changes (seconds on a whole slide's plane; each validation asks)."""
    if "dip window" not in data.derived:
        paint = [int((plane.labels > 0).sum()) for plane in data.planes]
        plane = int(np.argmax(paint))
        painted = data.planes[plane].labels > 0
        window = most_painted_window(painted if painted.any() else ~painted, DIP_WINDOW)
        data.derived["dip window"] = plane, window
    return data.derived["dip window"]


def most_painted_window(painted: np.ndarray, size: int, grid: int = 8) -> tuple[slice, slice]:
    """The bounding box of ``painted`` (H, W, bool, not all False) where it is at most
    ``size`` px a side; along a longer side, the ``size`` px that hold the most paint (the
    window's corner on a grid of ``grid`` px, ties to the first)."""
    box = tuple(
        slice(int(found[0]), int(found[-1]) + 1)
        for found in (np.flatnonzero(painted.any(1)), np.flatnonzero(painted.any(0)))
    )
    extents = [b.stop - b.start for b in box]
    blocks = [-(-e // grid) for e in extents]
    padded = np.zeros([b * grid for b in blocks], bool)
    padded[: extents[0], : extents[1]] = painted[box]
    coarse = padded.reshape(blocks[0], grid, blocks[1], grid).sum(axis=(1, 3), dtype=np.int64)
    summed = np.pad(coarse.cumsum(0).cumsum(1), ((1, 0), (1, 0)))  # (summed-area table)
    n = [b if e <= size else max(size // grid, 1) for b, e in zip(blocks, extents, strict=True)]
    r, c = summed.shape[0] - n[0], summed.shape[1] - n[1]
    totals = summed[n[0] :, n[1] :] - summed[:r, n[1] :] - summed[n[0] :, :c] + summed[:r, :c]
    corner = np.unravel_index(int(totals.argmax()), totals.shape)
    window = []
    for b, first, extent in zip(box, corner, extents, strict=True):
        width = min(extent, size)
        start = b.start + min(int(first) * grid, extent - width)
        window.append(slice(start, start + width))
    return window[0], window[1]


def mirrored_window(model: UNet, data: TrainingSet, device=None) -> list[np.ndarray]:
    """The class probabilities of :func:`dip_window` and of its three mirror images, each
    flipped back: what the dip is calibrated on."""
    plane, window = dip_window(data)
    crop = data.planes[plane].image[(slice(None), *window)]
    made = mirrored_probabilities(
        model, crop, intensity=(0.0, 1.0), at_network_scale=True, device=device
    )
    return drain(made)


def calibrated_cells(model: UNet, data: TrainingSet) -> int:
    """How many predictions of a painted cell's size :func:`calibrated_rules` will make:
    the painted cells, the pasted pairs at twice a cell each and, where cells are parted
    at dips, the window of :func:`dip_window` in crops of a cell's size; four times as
    many with flips."""
    if not model.config.outlines:
        return 0
    pairs = min(data.cells.count, NECK_CELLS // 2) if data.pasting else 0
    crops = min(data.cells.count, NECK_CELLS) + 2 * pairs
    if data.cells.parts_at_dips(model.config.outlines):
        _, (rows, columns) = dip_window(data)
        side = np.sqrt(data.cells.median_area) + 2 * VALIDATION_MARGIN  # (a cell's crop)
        crops += round((rows.stop - rows.start) * (columns.stop - columns.start) / side**2)
    return crops * (4 if uncalibrated_rules(model, data).flips else 1)


def preview(
    model: UNet,
    data: TrainingSet,
    request: tuple[int, int, tuple[slice, slice]],
    device,
    unsure: bool = False,
) -> Preview:
    """The cell probability in the preview window ``request`` = (pair, plane, window), in
    the image's pixels; with ``unsure``, also where the model is unsure of its cells there
    (its rules before calibration; four more predictions of the window)."""
    pair, z, window = request
    plane, network_window = data.preview_target(pair, z, window)
    image = data.planes[plane].image
    probability = cell_probability(predict_crop(model, image, network_window, device))
    shape = tuple(s.stop - s.start for s in window)
    disagreement = None
    if unsure:
        crop = image[(slice(None), *network_window)]
        rules = uncalibrated_rules(model, data)
        disagreement = resize_image(
            drain(cell_disagreement(model, crop, rules=rules, intensity=(0.0, 1.0), device=device)),
            shape,
        )
    return Preview(pair, z, window, resize_image(probability, shape), disagreement)


def cpu_state(model: UNet) -> dict[str, Any]:
    """A copy of the model's weights on the CPU."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
