"""The rules that turn a trained model's probabilities into cells, and where they come from.

One home for three things:

- :class:`InstanceRules`, the record every front end segments with and model files store;
- the **shape policy** (:class:`CellShape`): whether the painted cells are roundish or rods
  decides pasted neighbours, batch normalisation, neck cutting and test-time flips, in one
  place (docs/decisions/2026-12-01-shape-policy.md);
- the **calibration** of the rules on the painted cells of the user's own image
  (:func:`rules_for`, :func:`calibrate_neck_ratio`).

Nothing here runs a network: training predicts crops around the painted cells and hands
the probabilities in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from skimage.measure import regionprops

from ..config import _check_int, _JsonRecord
from .instances import labels_from_probabilities

__all__ = [
    "CORE_THRESHOLD",
    "MAX_ELONGATION",
    "CellShape",
    "InstanceRules",
    "calibrate_neck_ratio",
    "measure_cells",
    "rules_for",
]

# Painted cells more elongated than this (median major / minor axis) are rods.
MAX_ELONGATION = 2.0
# Networks with batch normalisation: an interior is a cell only if its probability reaches
# this somewhere (docs/decisions/2026-12-01-core-threshold-and-min-size.md).
CORE_THRESHOLD = 0.9
MIN_SIZE_FRACTION = 0.2  # of the median painted cell area: the smallest object kept
NECK_RATIOS = (0.5, 0.6, 0.7, 0.8)  # candidates, gentlest first
NECK_TOLERANCE = 0.05  # share of painted cells a neck ratio may cut
NECK_CELLS = 40  # painted cells the neck ratio is calibrated on, at most


@dataclass(frozen=True)
class InstanceRules(_JsonRecord):
    """How a trained model's output becomes cells: how the probabilities are predicted
    (``flips``, :mod:`~napari_unet.core.network.predict`) and how they are labelled (the
    other fields, :func:`~napari_unet.core.cells.instances.label_instances`).

    Training measures them on the painted cells and stores them in the model file; every
    front end segments with them. The defaults are for a model without that record.
    """

    min_size: int = 10  # px: smaller objects are fragments, not cells
    neck_ratio: float = 0.0  # cut interiors at necks this narrow; 0 = never
    core_threshold: float = 0.0  # interiors must reach this probability somewhere; 0 = off
    flips: bool = False  # average the probabilities of the image and its 3 mirror images

    def labelling(self) -> dict[str, Any]:
        """The fields that :func:`~napari_unet.core.cells.instances.label_instances` takes."""
        return {k: v for k, v in self.to_dict().items() if k != "flips"}

    @classmethod
    def from_training(cls, training: dict[str, Any]) -> InstanceRules:
        """The rules in a model file's training record (the defaults for what it lacks)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls.from_dict({k: v for k, v in training.items() if k in names})

    def __post_init__(self) -> None:
        _check_int("min_size", self.min_size, minimum=0)
        for name in ("neck_ratio", "core_threshold"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 <= value < 1.0):
                raise ValueError(f"{name} = {value!r} must be in [0, 1), e.g. 0.8")
        if not isinstance(self.flips, bool):
            raise ValueError(f"flips = {self.flips!r} must be true or false")


@dataclass(frozen=True)
class CellShape:
    """What the painted cells look like, and what follows from it: the shape policy.

    count: painted cells; median_area: their median area (px); median_elongation: the
    median ratio of their major to minor axis (1 = round).
    Rods (``median_elongation`` above ``MAX_ELONGATION``) get no pasted neighbours (two
    rods end to end look like one dividing rod, which counts as one cell), no batch
    normalisation, no neck cutting and no test-time flips; roundish cells get all four.
    """

    count: int = 0
    median_area: float = 0.0
    median_elongation: float = 1.0

    @property
    def rods(self) -> bool:
        return self.median_elongation > MAX_ELONGATION

    @property
    def roundish(self) -> bool:
        """Pasted neighbours and batch normalisation are for roundish cells."""
        return not self.rods

    def cuts_necks(self, outlines: bool) -> bool:
        """Whether interiors are cut at necks (calibrated), and predicted with flips:
        outline networks on roundish cells."""
        return outlines and self.roundish


def measure_cells(cell_planes: Iterable[np.ndarray]) -> CellShape:
    """The :class:`CellShape` of the cells in label planes (0 = no cell, every other value
    one cell). Memory follows the number of cells, not the largest label value."""
    areas, ratios = [], []
    for cells in cell_planes:
        values, compact, counts = np.unique(cells, return_inverse=True, return_counts=True)
        areas.extend(counts[values > 0].tolist())
        compact = compact.reshape(np.shape(cells)) + (values[0] > 0)  # 0 stays 0: 1, 2, ...
        ratios.extend(
            region.axis_major_length / max(region.axis_minor_length, 1.0)
            for region in regionprops(compact)
        )
    return CellShape(
        count=len(areas),
        median_area=float(np.median(areas)) if areas else 0.0,
        median_elongation=float(np.median(ratios)) if ratios else 1.0,
    )


def rules_for(cells: CellShape, *, outlines: bool, batch_norm: bool) -> InstanceRules:
    """The rules for a network (with an outline class or not, with batch normalisation or
    not) trained on ``cells``, before the neck ratio is calibrated.

    min_size: a fifth of the median painted cell (at least 10 px): smaller objects are
    fragments. core_threshold: ``CORE_THRESHOLD`` for outline networks with batch
    normalisation, else off (docs/decisions/2026-12-01-core-threshold-and-min-size.md).
    flips: where necks are cut (docs/decisions/2026-12-02-test-time-flips.md).
    """
    return InstanceRules(
        min_size=max(10, round(MIN_SIZE_FRACTION * cells.median_area)),
        core_threshold=CORE_THRESHOLD if outlines and batch_norm else 0.0,
        flips=cells.cuts_necks(outlines),
    )


def calibrate_neck_ratio(
    crops: Sequence[tuple[np.ndarray, np.ndarray]], rules: InstanceRules
) -> float:
    """How eagerly to cut interiors at necks, from painted cells.

    crops: (probabilities (classes, h, w), cell mask (h, w) bool) of painted cells, each
    predicted in a crop around it. The ratio is the most aggressive of ``NECK_RATIOS``
    that leaves all but ``NECK_TOLERANCE`` of them in one piece (no second object covering
    a quarter of the cell); 0 (off) when even the gentlest cuts more
    (docs/decisions/2026-12-01-neck-cutting.md).
    """
    best = 0.0
    for ratio in NECK_RATIOS:
        cut = 0
        for probabilities, cell in crops:
            options = {**rules.labelling(), "neck_ratio": ratio}
            labels = labels_from_probabilities(probabilities, **options)
            counts = np.bincount(labels[cell])[1:]
            cut += int((counts >= 0.25 * cell.sum()).sum() >= 2)
        if cut > NECK_TOLERANCE * len(crops):
            break
        best = ratio
    return best
