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
from scipy import ndimage as ndi
from skimage.measure import regionprops
from skimage.metrics import adapted_rand_error

from ..config import UNetConfig, _check_int, _JsonRecord
from .instances import NECK_SOLIDITY, labels_from_probabilities
from .metrics import joined_to_nearest_cell

__all__ = [
    "CONVEX_SOLIDITY",
    "MAX_ELONGATION",
    "CellShape",
    "InstanceRules",
    "calibrate_core",
    "calibrate_dip",
    "calibrate_interior",
    "calibrate_join",
    "calibrate_neck_ratio",
    "measure_cells",
    "mirrored_disagreement",
    "painted_cells_found",
    "rules_for",
    "rules_from_paint",
]

# Painted cells more elongated than this (median major / minor axis) are rods.
MAX_ELONGATION = 2.0
# Painted cells are convex when three quarters of them fill at least this share of their
# convex hull (solidity); only then is a notch in an interior a contact between two cells
# (docs/decisions/2026-12-06-necks-only-for-convex-cells.md).
CONVEX_SOLIDITY = 0.875
MIN_SIZE_FRACTION = 0.2  # of the median painted cell area: the smallest object kept
# candidates, gentlest first (docs/decisions/2026-12-06-neck-ratio-up-to-0-9.md)
NECK_RATIOS = (0.5, 0.6, 0.7, 0.8, 0.9)
CORE_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)  # candidates, gentlest first
INTERIOR_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)  # candidates, gentlest first
GROWTHS = (0, 1, 2, 3, 4)  # px
TOLERANCE = 0.05  # share of painted cells a core threshold may lose, a neck ratio may cut
TIE = 0.01  # of the painted cells' quality: a closer call goes to the gentler threshold
JOIN_QUANTILE = 0.05  # of the painted cells' solidity: pieces less convex stay apart
# candidate dips of the interior probability, gentlest first: 0 never parts, 0.1 the most
# (docs/decisions/2026-12-06-dips-for-cells-that-tile.md)
DIPS = (0.0, 0.5, 0.4, 0.3, 0.2, 0.1)
NECK_CELLS = 40  # painted cells the rules are calibrated on, at most
UNSEEN_CELLS = 5  # held-back cells the interior threshold is chosen on, at least


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
    interior_threshold: float = 0.5  # outline networks: interior above this is a cell's core
    growth: int = 2  # px an interior is grown by to give the whole cell
    join_solidity: float = NECK_SOLIDITY  # two pieces cut at a neck join again when this convex
    dip: float = 0.0  # part interiors where their probability dips this much; 0 = never
    borders: bool = False  # cut cells where a border between their regions is membrane
    join_enclosed: bool = True  # a cell lying in a hole of another cell joins it

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
        _check_int("growth", self.growth, minimum=0, maximum=50)
        if not (
            isinstance(self.interior_threshold, (int, float))
            and 0.0 < self.interior_threshold < 1.0
        ):
            raise ValueError(
                f"interior_threshold = {self.interior_threshold!r} must be in (0, 1), e.g. 0.5"
            )
        if not (isinstance(self.join_solidity, (int, float)) and 0.0 < self.join_solidity <= 1.0):
            raise ValueError(f"join_solidity = {self.join_solidity!r} must be in (0, 1], e.g. 0.95")
        for name in ("neck_ratio", "core_threshold", "dip"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 <= value < 1.0):
                raise ValueError(f"{name} = {value!r} must be in [0, 1), e.g. 0.8")
        if self.neck_ratio > 0 and self.dip > 0:
            raise ValueError(
                f"neck_ratio = {self.neck_ratio} and dip = {self.dip}: interiors are cut at "
                "necks (convex cells) or parted at dips (cells that are not), set one to 0"
            )
        for name in ("flips", "borders", "join_enclosed"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} = {getattr(self, name)!r} must be true or false")


@dataclass(frozen=True)
class CellShape:
    """What the painted cells look like, and what follows from it: the shape policy.

    count: painted cells; median_area: their median area (px); median_elongation: the
    median ratio of their major to minor axis (1 = round); solidity: the lower quartile of
    their area / convex hull area (1 = every cell convex).
    Rods (``median_elongation`` above ``MAX_ELONGATION``) get no pasted neighbours (two
    rods end to end look like one dividing rod, which counts as one cell), no batch
    normalisation, no neck cutting and no test-time flips; roundish cells get all four,
    but neck cutting only where they are also convex (``solidity`` at least
    ``CONVEX_SOLIDITY``): the cells of an EM section, which tile the image around each
    other, have notches of their own; theirs are parted at dips of the interior
    probability instead (docs/decisions/2026-12-06-dips-for-cells-that-tile.md), and cut
    along membranes (docs/decisions/2026-12-07-tiling-cells-cut-along-membranes.md).
    """

    count: int = 0
    median_area: float = 0.0
    median_elongation: float = 1.0
    solidity: float = 1.0

    @property
    def rods(self) -> bool:
        return self.median_elongation > MAX_ELONGATION

    @property
    def roundish(self) -> bool:
        """Pasted neighbours and batch normalisation are for roundish cells."""
        return not self.rods

    @property
    def convex(self) -> bool:
        return self.solidity >= CONVEX_SOLIDITY

    def flips(self, outlines: bool) -> bool:
        """Whether the cells are predicted with test-time flips: outline networks on
        roundish cells."""
        return outlines and self.roundish

    def cuts_necks(self, outlines: bool) -> bool:
        """Whether interiors are cut at necks (calibrated): outline networks on roundish,
        convex cells."""
        return self.flips(outlines) and self.convex

    def parts_at_dips(self, outlines: bool) -> bool:
        """Whether interiors are parted at dips of their probability (calibrated): outline
        networks on roundish cells that are not convex, which tile the image (EM)."""
        return self.flips(outlines) and not self.convex


def measure_cells(cell_planes: Iterable[np.ndarray]) -> CellShape:
    """The :class:`CellShape` of the cells in label planes (0 = no cell, every other value
    one cell). Memory follows the number of cells, not the largest label value."""
    areas, ratios, solidities = [], [], []
    for cells in cell_planes:
        values, compact, counts = np.unique(cells, return_inverse=True, return_counts=True)
        areas.extend(counts[values > 0].tolist())
        compact = compact.reshape(np.shape(cells)) + (values[0] > 0)  # 0 stays 0: 1, 2, ...
        for region in regionprops(compact):
            ratios.append(region.axis_major_length / max(region.axis_minor_length, 1.0))
            solidities.append(region.solidity)
    return CellShape(
        count=len(areas),
        median_area=float(np.median(areas)) if areas else 0.0,
        median_elongation=float(np.median(ratios)) if ratios else 1.0,
        solidity=float(np.quantile(solidities, 0.25)) if solidities else 1.0,
    )


def rules_for(cells: CellShape, *, outlines: bool) -> InstanceRules:
    """The rules for a network (with an outline class or not) trained on ``cells``,
    before they are calibrated on them (:func:`rules_from_paint`): objects smaller than
    a fifth of the median painted cell (at least 10 px) are fragments; flips for roundish
    cells (docs/decisions/2026-12-02-test-time-flips.md); cells that tile the image (those
    parted at dips) are also cut along membranes
    (docs/decisions/2026-12-07-tiling-cells-cut-along-membranes.md)."""
    return InstanceRules(
        min_size=max(10, round(MIN_SIZE_FRACTION * cells.median_area)),
        flips=cells.flips(outlines),
        borders=cells.parts_at_dips(outlines),
    )


def rules_from_paint(
    crops: Sequence[tuple[np.ndarray, np.ndarray]],
    rules: InstanceRules,
    cells: CellShape,
    network: UNetConfig,
    contacts: Sequence[tuple[np.ndarray, np.ndarray]] = (),
    unseen: Sequence[tuple[np.ndarray, np.ndarray]] = (),
    mirrored: Sequence[np.ndarray] = (),
) -> InstanceRules:
    """The rules calibrated on painted cells, each predicted in a crop around it.

    crops: (probabilities (classes, h, w), cell mask (h, w) bool) of painted cells.
    contacts: the same, of painted cells with a pasted neighbour (both cells of a pair
    in one crop): touching cells whose truth is known.
    unseen: the crops of ``crops`` whose cells were held back from training.
    rules: the rules before calibration (:func:`rules_for`). For outline networks, in
    turn: the interior threshold and the growth under which the painted cells and the
    pasted pairs come out best (:func:`calibrate_interior`; the pairs, because an isolated
    cell alone fits best at a surer threshold, which shrinks the cores of touching cells:
    docs/decisions/2026-12-05-contacts-in-the-calibration.md), or the ``unseen`` cells and
    the pairs where there are ``UNSEEN_CELLS`` or more and they call for a gentler
    threshold (the network is surer of the cells it was trained on than of a new image's:
    docs/decisions/2026-12-06-interior-on-unseen-cells.md); the core
    threshold, for networks with batch normalisation, as the surest that still finds all
    but ``TOLERANCE`` of the cells the interior finds (:func:`calibrate_core`); the neck
    ratio where the shape policy cuts necks, with how convex a joined pair may be
    (:func:`calibrate_join`, :func:`calibrate_neck_ratio`); where it parts cells at dips
    instead, the dip under which the cells of ``mirrored`` agree best
    (:func:`calibrate_dip`; the class probabilities of a window of the painted image and
    of its three mirror images, each flipped back). All with ``borders`` and
    ``join_enclosed`` off; they are kept as ``rules`` say. Two-class networks keep ``rules``.
    """
    if not network.outlines or not crops:
        return rules
    # (calibrated without these two: they only cut or join what the others make)
    kept = {"borders": rules.borders, "join_enclosed": rules.join_enclosed}
    rules = dataclasses.replace(rules, borders=False, join_enclosed=False)
    rules = _interior(crops, rules, contacts, unseen)
    if network.batch_norm:
        rules = dataclasses.replace(rules, core_threshold=calibrate_core(crops, rules))
    if cells.cuts_necks(network.outlines):
        rules = dataclasses.replace(rules, join_solidity=calibrate_join(crops))
        rules = dataclasses.replace(rules, neck_ratio=calibrate_neck_ratio(crops, rules))
    if cells.parts_at_dips(network.outlines) and len(mirrored) > 1:
        rules = dataclasses.replace(rules, dip=calibrate_dip(mirrored, rules))
    return dataclasses.replace(rules, **kept)


def _interior(
    crops: Sequence[tuple[np.ndarray, np.ndarray]],
    rules: InstanceRules,
    contacts: Sequence[tuple[np.ndarray, np.ndarray]],
    unseen: Sequence[tuple[np.ndarray, np.ndarray]],
) -> InstanceRules:
    """:func:`calibrate_interior` on the painted cells and the pairs, or on the unseen
    cells and the pairs where there are enough of them and they choose a gentler threshold
    (a surer one from a few cells is their chance, not the network's doubt)."""
    painted = calibrate_interior([*crops, *contacts], rules)
    if len(unseen) < UNSEEN_CELLS:
        return painted
    held_back = calibrate_interior([*unseen, *contacts], rules)
    return held_back if held_back.interior_threshold < painted.interior_threshold else painted


def calibrate_join(crops: Sequence[tuple[np.ndarray, np.ndarray]]) -> float:
    """How convex two pieces cut at a neck must be to join again: as convex as all but
    ``JOIN_QUANTILE`` of the painted cells are (solidity: area / convex hull area), and
    never below the second least convex of them, so that one odd painted cell does not set
    it (it would below 21 cells, where the quantile falls between the least convex two:
    docs/decisions/2026-12-07-one-odd-cell-does-not-set-the-join.md). Two touching cells
    leave a notch that one of the user's cells does not."""
    solidities = np.sort(
        [regionprops(cell.astype(np.uint8))[0].solidity for _, cell in crops if cell.any()]
    )
    if not len(solidities):
        return NECK_SOLIDITY
    bound = max(np.quantile(solidities, JOIN_QUANTILE), solidities[min(1, len(solidities) - 1)])
    return round(float(bound), 3)


def painted_cells_found(
    crops: Sequence[tuple[np.ndarray, np.ndarray]],
    rules: InstanceRules,
    memos: Sequence[dict] | None = None,
    leak_px: int | None = None,
) -> np.ndarray:
    """Per crop, the IoU of the object that covers its painted cell (IoU >= 0.5, one
    object over half the cell), or 0 where the cell is not found. With ``leak_px``, also
    0 where that object reaches more than ``leak_px`` outside the cell: a crop shows only
    part of a neighbour the object has run into, so there it matches better than it will
    in the whole image. ``memos``: one dict per crop, kept between calls with other rules
    (the stages they share are reused)."""
    scores = np.zeros(len(crops))
    for k, (probabilities, cell) in enumerate(crops):
        memo = memos[k] if memos is not None else None
        labels = labels_from_probabilities(probabilities, **rules.labelling(), memo=memo)
        values, counts = np.unique(labels[cell], return_counts=True)
        counts, values = counts[values > 0], values[values > 0]
        if not len(values) or counts.max() * 2 <= cell.sum():
            continue
        best = labels == values[counts.argmax()]
        iou = counts.max() / np.logical_or(best, cell).sum()
        if iou >= 0.5 and not (leak_px is not None and _leaks(best, cell, leak_px)):
            scores[k] = iou
    return scores


def _leaks(found: np.ndarray, cell: np.ndarray, leak_px: int) -> bool:
    """Whether the object ``found`` reaches more than ``leak_px`` outside ``cell``."""
    outside = found & ~cell
    return bool(outside.any() and (ndi.distance_transform_edt(~cell)[outside] > leak_px).any())


def calibrate_interior(
    crops: Sequence[tuple[np.ndarray, np.ndarray]], rules: InstanceRules
) -> InstanceRules:
    """The interior threshold and growth (of ``INTERIOR_THRESHOLDS`` x ``GROWTHS``) under
    which the painted cells come out best: the most found, at the best mean IoU. Near-ties
    (within ``TIE`` of the best mean IoU x found share) go to gentler thresholds, one step
    at a time from the best while each step stays near it (cells a network has not seen
    call for a gentler threshold, never a surer one:
    docs/decisions/2026-12-07-near-ties-go-to-the-gentler-threshold.md), and then to the
    growth closest to the default (2 px). Without necks or a core threshold, which come
    next."""
    plain = dataclasses.replace(rules, neck_ratio=0.0, core_threshold=0.0)
    memos = [{} for _ in crops]
    quality = {
        (threshold, growth): float(
            painted_cells_found(
                crops,
                dataclasses.replace(plain, interior_threshold=threshold, growth=growth),
                memos,
            ).mean()
        )
        for threshold in INTERIOR_THRESHOLDS
        for growth in GROWTHS
    }
    best = max(quality.values())

    def near(threshold: float) -> list[int]:  # its growths within the tie of the best
        return [g for g in GROWTHS if quality[threshold, g] >= best - TIE]

    k = min(
        i for i, t in enumerate(INTERIOR_THRESHOLDS) if max(quality[t, g] for g in GROWTHS) == best
    )
    while k > 0 and near(INTERIOR_THRESHOLDS[k - 1]):
        k -= 1
    threshold = INTERIOR_THRESHOLDS[k]
    growth = min(
        near(threshold), key=lambda g: (abs(g - InstanceRules().growth), -quality[threshold, g])
    )
    return dataclasses.replace(rules, interior_threshold=threshold, growth=growth)


def calibrate_core(crops: Sequence[tuple[np.ndarray, np.ndarray]], rules: InstanceRules) -> float:
    """The surest core threshold (of ``CORE_THRESHOLDS``) that still finds all but
    ``TOLERANCE`` of the painted cells found without one; 0 (off) when even the gentlest
    loses more. Faint objects in background noise never reach it; the model's own cells,
    as sure as it has learned to be, do
    (docs/decisions/2026-12-05-rules-from-the-paint.md)."""
    memos = [{} for _ in crops]
    plain = dataclasses.replace(rules, core_threshold=0.0)
    found = (painted_cells_found(crops, plain, memos) > 0).sum()
    best = 0.0
    for core in CORE_THRESHOLDS:
        candidate = dataclasses.replace(rules, core_threshold=core)
        kept = (painted_cells_found(crops, candidate, memos) > 0).sum()
        if kept < found - TOLERANCE * len(crops):
            break
        best = core
    return best


def calibrate_neck_ratio(
    crops: Sequence[tuple[np.ndarray, np.ndarray]], rules: InstanceRules
) -> float:
    """How eagerly to cut interiors at necks, from painted cells.

    crops: (probabilities (classes, h, w), cell mask (h, w) bool) of painted cells, each
    predicted in a crop around it. The ratio is the most aggressive of ``NECK_RATIOS``
    that leaves all but ``TOLERANCE`` of them in one piece (no second object covering
    a quarter of the cell); 0 (off) when even the gentlest cuts more
    (docs/decisions/2026-12-01-neck-cutting.md).
    """
    best, memos = 0.0, [{} for _ in crops]  # (the interiors' basins, for every ratio)
    for ratio in NECK_RATIOS:
        cut = 0
        for (probabilities, cell), memo in zip(crops, memos, strict=True):
            options = {**rules.labelling(), "neck_ratio": ratio}
            labels = labels_from_probabilities(probabilities, **options, memo=memo)
            counts = np.bincount(labels[cell])[1:]
            cut += int((counts >= 0.25 * cell.sum()).sum() >= 2)
        if cut > TOLERANCE * len(crops):
            break
        best = ratio
    return best


def calibrate_dip(mirrored: Sequence[np.ndarray], rules: InstanceRules) -> float:
    """The dip (of ``DIPS``) under which the cells made from ``mirrored`` agree best
    (:func:`mirrored_disagreement`); a tie goes to the gentler dip.

    mirrored: (classes, h, w) probabilities of one window of the painted image and of its
    mirror images, each flipped back. No truth is needed: a U-Net is not
    mirror-symmetric, and a rule that cuts where the network is unsure, or joins through
    a gap it is unsure of, cuts or joins differently in each
    (docs/decisions/2026-12-06-dips-for-cells-that-tile.md)."""
    plain = dataclasses.replace(rules, neck_ratio=0.0)
    memos = [{} for _ in mirrored]  # (the interiors, made once for every dip)
    scores = [
        mirrored_disagreement(mirrored, dataclasses.replace(plain, dip=d), memos) for d in DIPS
    ]
    return DIPS[int(np.argmin(scores))]  # (the first of equals: the gentlest)


def mirrored_disagreement(
    mirrored: Sequence[np.ndarray], rules: InstanceRules, memos: Sequence[dict] | None = None
) -> float:
    """The mean Rand error (skimage's ``adapted_rand_error``) between the cells that
    ``rules`` make of every two of ``mirrored``, each joined to its nearest cell
    (:func:`~.metrics.joined_to_nearest_cell`): 0 where they make the same cells.
    ``memos``: one dict per prediction, kept between calls with other rules."""
    memos = memos if memos is not None else [None] * len(mirrored)
    made = [
        labels_from_probabilities(p, **rules.labelling(), memo=memo)
        for p, memo in zip(mirrored, memos, strict=True)
    ]
    cells = [joined_to_nearest_cell(labels) for labels in made]
    pairs = [(a, b) for k, a in enumerate(cells) for b in cells[k + 1 :]]
    return float(np.mean([adapted_rand_error(a, b)[0] for a, b in pairs]))
