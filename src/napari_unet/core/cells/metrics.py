"""Segmentation quality: instance matching (F1 at an IoU threshold), pixel and Rand error.

All functions take label images of the same shape: 0 = background, every other value one
object (the values themselves do not matter).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.optimize import linear_sum_assignment
from skimage.segmentation import expand_labels

__all__ = [
    "InstanceScores",
    "joined_to_nearest_cell",
    "match_instances",
    "pixel_error",
    "rand_error",
    "split_touching_pairs",
    "touching_pair_outcomes",
    "touching_pairs",
]


@dataclass(frozen=True)
class InstanceScores:
    """Objects matched one-to-one with IoU >= threshold."""

    threshold: float
    tp: int  # predicted objects matched to a true one
    fp: int  # predicted objects without a match
    fn: int  # true objects without a match
    mean_matched_iou: float  # over the matched pairs; 0 when there are none

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        total = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / total if total else 1.0


def _contingency(truth: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """Pixel counts of every (true label, predicted label) pair, labels numbered from 0."""
    truth, prediction = np.asarray(truth), np.asarray(prediction)
    if truth.shape != prediction.shape:
        raise ValueError(f"label images differ in shape: {truth.shape} and {prediction.shape}")
    _, t = np.unique(np.concatenate([[0], truth.ravel()]), return_inverse=True)
    _, p = np.unique(np.concatenate([[0], prediction.ravel()]), return_inverse=True)
    t, p = t[1:], p[1:]  # the leading 0 makes index 0 the background in both
    return np.bincount(t * (p.max() + 1) + p, minlength=(t.max() + 1) * (p.max() + 1)).reshape(
        t.max() + 1, p.max() + 1
    )


def match_instances(
    truth: np.ndarray, prediction: np.ndarray, threshold: float = 0.5
) -> InstanceScores:
    """Match true and predicted objects one-to-one, maximising the total IoU among pairs
    with IoU >= ``threshold`` (for thresholds > 0.5 such pairs are unique anyway)."""
    table = _contingency(truth, prediction)
    counts = table[1:, 1:]  # object pairs only
    n_true, n_pred = counts.shape
    if n_true == 0 or n_pred == 0:
        return InstanceScores(threshold, 0, n_pred, n_true, 0.0)
    true_area, pred_area = table[1:, :].sum(1), table[:, 1:].sum(0)
    iou = counts / (true_area[:, None] + pred_area[None, :] - counts)
    candidate = np.where(iou >= threshold, iou, 0.0)
    rows, cols = linear_sum_assignment(candidate, maximize=True)
    matched = candidate[rows, cols] > 0
    tp = int(matched.sum())
    mean_iou = float(candidate[rows, cols][matched].mean()) if tp else 0.0
    return InstanceScores(threshold, tp, n_pred - tp, n_true - tp, mean_iou)


def pixel_error(truth: np.ndarray, prediction: np.ndarray) -> float:
    """Fraction of pixels whose foreground/background call differs."""
    truth, prediction = np.asarray(truth), np.asarray(prediction)
    if truth.shape != prediction.shape:
        raise ValueError(f"label images differ in shape: {truth.shape} and {prediction.shape}")
    return float(np.mean((truth > 0) != (prediction > 0)))


def joined_to_nearest_cell(labels: np.ndarray) -> np.ndarray:
    """``labels`` with every pixel given to its nearest object, all 1 where there is none:
    predicted membrane pixels joined to their cell, as the ISBI challenge's Rand scores
    take a prediction."""
    return expand_labels(labels, distance=max(labels.shape)) if labels.any() else labels + 1


def rand_error(truth: np.ndarray, prediction: np.ndarray) -> float:
    """1 - Rand index: the fraction of pixel pairs that one image puts in the same segment
    and the other does not (background is one segment)."""
    counts = _contingency(truth, prediction).astype(np.float64)

    def pairs(x):
        return (x * (x - 1) / 2).sum()

    n = counts.sum()
    total = n * (n - 1) / 2
    if total == 0:
        return 0.0
    both = pairs(counts)
    disagree = pairs(counts.sum(1)) + pairs(counts.sum(0)) - 2 * both
    return float(disagree / total)


def touching_pairs(truth: np.ndarray, distance: int = 3) -> list[tuple[int, int]]:
    """Pairs (a, b), a < b, of objects in a label image that touch or come within
    ``distance`` pixels (Euclidean) of each other."""
    truth = np.asarray(truth)
    disk = ndi.distance_transform_edt(np.pad([[0]], distance, constant_values=1)) <= distance
    pairs = set()
    for value, box in enumerate(ndi.find_objects(truth.astype(np.int64)), start=1):
        if box is None:
            continue
        grown = tuple(
            slice(max(b.start - distance, 0), min(b.stop + distance, n))
            for b, n in zip(box, truth.shape, strict=True)
        )
        crop = truth[grown]
        near = ndi.binary_dilation(crop == value, structure=disk)
        pairs.update((value, int(other)) for other in np.unique(crop[near]) if other > value)
    return sorted(pairs)


def split_touching_pairs(
    truth: np.ndarray, prediction: np.ndarray, distance: int = 3
) -> tuple[int, int]:
    """How many of the touching (within ``distance`` px) pairs of true objects the
    prediction keeps apart, and how many there are.

    A pair is kept apart when each of its two objects is mostly (over half its pixels)
    covered by one predicted object, and those are two different objects.
    """
    split, _, total = touching_pair_outcomes(truth, prediction, distance)
    return split, total


def touching_pair_outcomes(
    truth: np.ndarray, prediction: np.ndarray, distance: int = 3
) -> tuple[int, int, int]:
    """(split, merged, total) of the touching pairs of :func:`split_touching_pairs`:
    merged = both objects mostly covered by the same predicted object. The pairs neither
    split nor merged have an object that no predicted object mostly covers (a miss)."""
    pairs = touching_pairs(truth, distance)
    owner = _owners(truth, prediction) if pairs else {}
    owned = [(owner[a], owner[b]) for a, b in pairs if a in owner and b in owner]
    split = sum(first != second for first, second in owned)
    return split, len(owned) - split, len(pairs)


def _owners(truth: np.ndarray, prediction: np.ndarray) -> dict[int, int]:
    """True object -> the predicted object covering over half of it (where there is one)."""
    truth, prediction = np.asarray(truth), np.asarray(prediction)
    owner = {}
    for value, box in enumerate(ndi.find_objects(truth.astype(np.int64)), start=1):
        if box is None:
            continue
        inside = prediction[box][truth[box] == value]
        found, counts = np.unique(inside[inside > 0], return_counts=True)
        if len(found) and counts.max() * 2 > inside.size:
            owner[value] = int(found[counts.argmax()])
    return owner
