"""The training data: images with their labels, ready to cut augmented tiles from.

A :class:`TrainingSet` holds one or more (image, labels) pairs, split into 2D planes (a
stack gives one sample per plane). Each plane is normalised once, as prediction will
normalise it (percentiles per plane), and keeps its targets and weight map. Labels may be
replaced while training runs: the training loop takes new paint from its
:class:`~napari_unet.core.training.control.TrainingControl` between steps and hands it to
:meth:`TrainingSet.apply_labels`.

Internally labels are kept in one sparse convention whatever the user's: 0 = not
annotated, 1 = background, ``v + 1`` = the user's cell ``v``. Cells held back for
validation are turned into "not annotated" for training.

Each painted plane may also have a copy in which every painted cell got a touching
neighbour (:mod:`.contacts`; ``contact_planes``, drawn anew by
:meth:`TrainingSet.paste_new_neighbours`); tiles are drawn from the real planes and
these copies alike, by loss weight.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy import ndimage as ndi

from ..cells.rules import measure_cells
from ..config import LabelConfig, TrainConfig, WeightMapConfig
from ..images import (
    choose_scale,
    intensity_range,
    network_shape,
    network_window,
    pair_channels,
    resize_image,
    resize_labels,
)
from ..labels import check_labels, looks_complete, read_annotation
from ..targets import targets_and_weights
from . import contacts
from .augment import AugmentParams, augment, noise_level, sample_augmentation
from .sampling import WeightedPixels, hold_back_cells

__all__ = ["Plane", "TrainingSet", "ValidationRegion", "with_margin"]

_SPARSE = LabelConfig(dense=False, background=1)  # the internal convention
PASTE_GAP = (0, 2)  # px between pasted neighbours and their host (< 0: overlap)
PASTE_CONTRAST = (0.1, 1.0)  # range of the contrast factor of pasted neighbours
VALIDATION_MARGIN = 16  # px of context around the held-back cells of a validation region
FEW_CELLS = 5  # painted cells below which training warns
SMALLEST_PLANE = 8  # px per side: smaller images hold nothing to learn a cell from


@dataclass
class Plane:
    """One 2D training sample."""

    image: np.ndarray  # (C, H, W) float32, normalised
    intensity: tuple[float, float]  # the raw (low, high) that map to 0 and 1
    labels: np.ndarray  # (H, W) int64 in the internal convention, held-back cells included
    target: torch.Tensor = field(init=False)  # (H, W) uint8 classes for training
    weight: torch.Tensor = field(init=False)  # (H, W) float32, 0 where not annotated
    noise: np.ndarray = field(init=False)  # (C,) the image's pixel noise (augment.noise_level)

    def __post_init__(self) -> None:
        self.noise = noise_level(self.image)


@dataclass(frozen=True)
class ValidationRegion:
    """One painted cell (by default a held-back one): a crop of a plane around it, and the
    cell (1) in the crop."""

    plane: int
    window: tuple[slice, slice]  # (rows, columns) of the crop in the plane
    truth: np.ndarray  # (h, w) int, 1 on the cell, 0 elsewhere
    held_back: bool = True  # kept out of training


def with_margin(box: tuple[slice, ...], margin: int, shape: tuple[int, ...]) -> tuple[slice, ...]:
    """``box`` grown by ``margin`` px on every side, within ``shape``."""
    return tuple(
        slice(max(s.start - margin, 0), min(s.stop + margin, size))
        for s, size in zip(box, shape, strict=True)
    )


class TrainingSet:
    """Planes to train on, their targets, and the cells held back to validate on.

    pairs: (image, labels) pairs. image: (H, W), (C, H, W), (Z, H, W) or (Z, C, H, W) for
        ``in_channels`` C (channel axis only when C > 1); labels: (H, W) or (Z, H, W),
        matching (:func:`~napari_unet.core.images.pair_channels`).
    config: the label convention, weight map, normalisation, pasted neighbours and the
        share of cells held back come from it.
    outlines: targets with the outline class (default: ``config.outlines``).
    scale: network px per image px (:mod:`~napari_unet.core.images`); None: chosen from
        the size of the painted cells. Planes, labels and validation regions are at this
        scale; label updates and preview windows are in the image's pixels.
    Raises ``ValueError`` with a message a user can act on for shapes that do not fit,
    NaN or constant images, and labels without a single cell. ``warnings`` says what
    looks wrong without being an error (sparse labels that look like complete masks).
    """

    def __init__(
        self,
        pairs: list[tuple[np.ndarray, np.ndarray]],
        config: TrainConfig | None = None,
        *,
        in_channels: int = 1,
        outlines: bool | None = None,
        scale: float | None = None,
        rng: np.random.Generator,
    ):
        if not pairs:
            raise ValueError("no training data: give at least one (image, labels) pair")
        self.config = config = config or TrainConfig()
        self.label_config = config.labels
        self.outlines = config.outlines if outlines is None else outlines
        self._rng = rng
        self._ids: dict[int, int] = {}  # the user's cell values -> internal ids
        self._pair_planes: list[list[int]] = []
        self._image_shapes: list[tuple[int, int]] = []  # (H, W) per plane, in image px
        self.planes: list[Plane] = []
        self.warnings: list[str] = []
        raw = self._read_pairs(pairs, in_channels)
        self.scale = (
            scale
            if scale is not None
            else choose_scale(measure_cells(_cells(labels) for _, labels in raw).median_area)
        )
        for image_plane, internal in raw:
            shape = network_shape(internal.shape, self.scale)
            if self.scale != 1:
                image_plane = resize_image(image_plane, shape)
            intensity = intensity_range(image_plane, config.normalization)  # refuses NaN, ...
            normalised = (image_plane.astype(np.float32) - intensity[0]) / (
                intensity[1] - intensity[0]
            )
            self.planes.append(Plane(normalised, intensity, resize_labels(internal, shape)))
        painted = self._painted()
        if not painted and self.label_config.dense:
            raise ValueError(
                "no cell in the masks: complete masks (dense labels) need every cell as a "
                "value above 0, with 0 as background, and these are all 0 (or one value "
                "over the whole image)"
            )
        if not painted and any((plane.labels == 1).any() for plane in self.planes):
            raise ValueError(
                f"no cell is painted: everything painted has label "
                f"{self.label_config.background}, which means background (napari's first "
                "label is 1). Give each cell its own label from 2 up (press + or M for a "
                "new label before each cell) and paint background with 1; for complete "
                "masks with 0 as background, use dense labels (Complete masks, --dense)"
            )
        if not painted:
            raise ValueError(
                "no cell is painted: paint some cells (each its own label, 2 and up) and some "
                "background (label 1); for complete masks use dense labels"
            )
        if len(painted) < FEW_CELLS:
            self.warnings.append(
                f"only {len(painted)} cell(s) painted: the network learns what a cell looks "
                f"like from them alone; paint {FEW_CELLS} or more (20-30 is plenty)"
            )
        if not any((plane.labels == 1).any() for plane in self.planes):  # (internal: 1)
            # docs/decisions/2026-12-02-paint-warnings.md
            self.warnings.append(
                f"no background is painted (label {self.label_config.background}): with "
                "nothing to learn background from, the network will find cells where there "
                "are none; paint a few background strokes"
            )
        self.held_back = hold_back_cells(painted, config.validation_fraction, rng)
        for p in range(len(self.planes)):
            self._make_targets(p)
        self._labels_changed()

    def _read_pairs(
        self, pairs: list[tuple[np.ndarray, np.ndarray]], in_channels: int
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """(image (C, H, W), labels in the internal convention) per plane of all pairs,
        checked; adds to ``warnings`` what looks wrong in the paint."""
        raw = []
        for index, (image, label_image) in enumerate(pairs):
            images, label_planes = _split_planes(index, image, label_image, in_channels)
            self._pair_planes.append([])
            pieces: dict[int, int] = {}  # labels painted on several separate cells
            for image_plane, label_plane in zip(images, label_planes, strict=True):
                self._pair_planes[-1].append(len(raw))
                raw.append((image_plane, self._internal(label_plane, image_plane.shape, pieces)))
                self._image_shapes.append(image_plane.shape[-2:])
            if pieces:
                label, count = max(pieces.items(), key=lambda item: item[1])
                self.warnings.append(
                    f"pair {index + 1}: {len(pieces)} label(s) cover separate cells (label "
                    f"{label}: {count} pieces); each piece is trained as a cell of its own, "
                    "but cells that touch under one label stay one cell: give every cell its "
                    "own label (in napari, press M before painting the next one)"
                )
            if not self.label_config.dense and any(
                looks_complete(plane, self.label_config.background) for plane in label_planes
            ):
                self.warnings.append(
                    f"pair {index + 1}: the background label ({self.label_config.background})"
                    " is one object of the size and shape of a cell. If it is a cell, give "
                    "it a label from 2 up (napari's first label, 1, paints background); if "
                    "these labels are complete masks with 0 as background, train with dense "
                    "labels (--dense, or tick Complete masks)"
                )
        return raw

    @property
    def cell_count(self) -> int:
        """Painted cells used for training (held-back ones excluded)."""
        return sum(
            sum((p, int(v)) not in self.held_back for v in _cell_values(plane.labels))
            for p, plane in enumerate(self.planes)
        )

    def apply_labels(self, updates: dict[int, np.ndarray]) -> bool:
        """Replace the labels of pairs (``{pair: labels}``, each of the pair's shape); True
        if anything changed. Raises ``ValueError`` (and keeps the old labels) for labels
        that break the convention or no longer hold a cell."""
        changed = False
        for pair, labels in updates.items():
            planes = self._pair_planes[pair]
            label_planes = labels[None] if labels.ndim == 2 else labels
            if len(label_planes) != len(planes):
                raise ValueError(
                    f"updated labels have {len(label_planes)} planes; expected {len(planes)}"
                )
            internals = [  # all checked before any is used
                resize_labels(
                    self._internal(label_plane, self._image_shapes[p]),
                    self.planes[p].labels.shape,
                )
                for p, label_plane in zip(planes, label_planes, strict=True)
            ]
            for p, internal in zip(planes, internals, strict=True):
                if not np.array_equal(internal, self.planes[p].labels):
                    self.planes[p].labels = internal
                    self._make_targets(p)
                    changed = True
        if changed:
            self._labels_changed()
        return changed

    def preview_target(
        self, pair: int, plane: int, window: tuple[slice, slice]
    ) -> tuple[int, tuple[slice, slice]]:
        """(plane index, the window in network px) of ``window`` (rows, columns, image px)
        of plane ``plane`` (0 for 2D) of pair ``pair``."""
        return self._pair_planes[pair][plane], network_window(window, self.scale)

    def validation_regions(
        self, cells: str = "held back", at_most: int | None = None
    ) -> list[ValidationRegion]:
        """One region per held-back cell (``cells="all"``: per painted cell; ``at_most``: of
        that many, spread evenly over them): its bounding box plus a margin (small crops,
        so validating costs little even when the cells are spread over a large image), each
        saying whether its cell is held back."""
        chosen = self._painted() if cells == "all" else sorted(self.held_back)
        if at_most is not None and len(chosen) > at_most:
            chosen = [
                chosen[i] for i in np.linspace(0, len(chosen) - 1, at_most).round().astype(int)
            ]
        regions, boxes = [], {}
        for p, value in chosen:
            labels = self.planes[p].labels
            if p not in boxes:
                boxes[p] = ndi.find_objects(labels)
            box = boxes[p][value - 1] if value <= len(boxes[p]) else None
            if box is None:  # painted over since
                continue
            window = with_margin(box, VALIDATION_MARGIN, labels.shape)
            truth = np.where(labels[window] == value, 1, 0)
            regions.append(ValidationRegion(p, window, truth, (p, value) in self.held_back))
        return regions

    def sample_batch(
        self,
        count: int,
        input_size: int,
        output_size: int,
        rng: np.random.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``count`` training tiles: images (N, C, input, input) float32, targets (N, output,
        output) uint8 and weights (N, output, output) float32, each centred on an annotated
        pixel and augmented as ``config.augmentation`` says (None: not augmented)."""
        augmentation = self.config.augmentation
        images, targets, weights = [], [], []
        margin = (input_size - output_size) // 2
        crop = slice(margin, margin + output_size)
        # the drawn pixel lands on tile pixel input_size // 2 (augment centres the tile on
        # the point between the two middle pixels of an even size)
        shift = 0.5 if input_size % 2 == 0 else 0.0
        planes = self.planes + self.contact_planes
        for p, row, column in self._sampler.draw(count, rng):
            plane = planes[p]
            params = (
                sample_augmentation(rng, augmentation)
                if augmentation is not None
                else AugmentParams.identity()
            )
            image, target, weight = augment(
                params,
                torch.from_numpy(plane.image),
                plane.target,
                plane.weight,
                out_shape=(input_size, input_size),
                center=(row - shift, column - shift),
                image_order=augmentation.image_order if augmentation else "linear",
                noise_level=plane.noise,
            )
            images.append(image)
            targets.append(target[crop, crop])
            weights.append(weight[crop, crop])
        return torch.stack(images), torch.stack(targets), torch.stack(weights)

    def _internal(
        self, labels: np.ndarray, image_shape: tuple[int, ...], pieces: dict | None = None
    ) -> np.ndarray:
        """Labels as training uses them (0 not annotated, 1 background, 2.. cells); adds
        to ``pieces`` the labels split into several cells."""
        if not self.label_config.dense and not np.any(labels):  # a plane nobody painted
            check_labels(labels, image_shape)
            return np.zeros(np.shape(labels), np.int64)
        annotation = read_annotation(labels, self.label_config, image_shape)
        if pieces is not None:
            for label, count in annotation.pieces.items():
                pieces[label] = pieces.get(label, 0) + count
        internal = np.where(annotation.annotated, 1, 0).astype(np.int64)
        cells = annotation.cells > 0
        internal[cells] = self._ids_of(annotation.cells[cells])
        return internal

    def _ids_of(self, values: np.ndarray) -> np.ndarray:
        """Internal ids (2, 3, ...) of the user's cell values: each value keeps its id for
        the life of the training set (held-back cells stay held back when paint changes),
        new values get the next ids in order, and memory follows the number of cells, not
        the largest value painted."""
        found, inverse = np.unique(values, return_inverse=True)
        for value in found.tolist():
            self._ids.setdefault(value, len(self._ids) + 2)
        return np.array([self._ids[v] for v in found.tolist()], np.int64)[inverse]

    def _training_labels(self, p: int) -> np.ndarray:
        """Plane ``p``'s labels with its held-back cells turned into "not annotated"."""
        labels = self.planes[p].labels
        held = [v for q, v in self.held_back if q == p]
        return np.where(np.isin(labels, held), 0, labels) if held else labels

    def _make_targets(self, p: int) -> None:
        _set_targets(
            self.planes[p], self._training_labels(p), self.config.weight_map, self.outlines
        )

    def _painted(self) -> list[tuple[int, int]]:
        """(plane, label) of every painted cell, held-back ones included, in order."""
        return [
            (p, int(v)) for p, plane in enumerate(self.planes) for v in _cell_values(plane.labels)
        ]

    def _labels_changed(self) -> None:
        """Measure the painted cells as they now are (``cells``: count, area, shape),
        decide on pasting (the shape policy, :class:`~napari_unet.core.cells.rules.CellShape`),
        and draw the planes. The measures change only here."""
        self.cells = measure_cells(_cells(plane.labels) for plane in self.planes)
        self.derived: dict[str, Any] = {}  # what others derive from the paint, until it changes
        # complete masks show every real contact already; pasting thousands of their cells
        # cost 54 s a draw on ISBI's 20 slices (docs/decisions/2026-12-05-dense-training.md)
        self.pasting = (
            self.config.paste_neighbours and self.cells.roundish and not self.label_config.dense
        )
        self.paste_new_neighbours()

    def paste_new_neighbours(self) -> None:
        """Draw new planes with pasted neighbours (:meth:`draw_contact_planes`) and make
        the sampler over all planes."""
        self.contact_planes: list[Plane] = [plane for plane, _ in self.draw_contact_planes()]
        self._sampler = WeightedPixels(
            [plane.weight.numpy() for plane in self.planes + self.contact_planes]
        )

    def draw_contact_planes(self) -> list[tuple[Plane, int]]:
        """New copies of the planes in which painted cells have pasted neighbours
        (:mod:`.contacts`; when ``pasting``: ``config.paste_neighbours``, roundish painted
        cells and sparse paint; else none), each with its first pasted label (the pasted
        cells are numbered from there on)."""
        planes = []
        if not self.pasting:
            return planes
        training = [self._training_labels(p) for p in range(len(self.planes))]
        donors = [
            cell
            for plane, labels in zip(self.planes, training, strict=True)
            for cell in contacts.cut_cells(plane.image, labels, _cell_values(labels))
        ]
        for plane, labels in zip(self.planes, training, strict=True):
            hosts = _cell_values(labels)
            if len(hosts):
                image, pasted = contacts.paste_neighbours(
                    plane.image,
                    labels,
                    hosts,
                    donors,
                    self._rng,
                    gap=PASTE_GAP,
                    contrast=PASTE_CONTRAST,
                )
                contact = Plane(image, plane.intensity, pasted)
                _set_targets(contact, pasted, self.config.weight_map, self.outlines)
                planes.append((contact, int(labels.max()) + 1))
        return planes


def _set_targets(
    plane: Plane, labels: np.ndarray, weight_config: WeightMapConfig, outlines: bool
) -> None:
    if not labels.any():  # all of this plane's paint is held back
        target = np.zeros(labels.shape, np.uint8)
        weight = np.zeros(labels.shape, np.float32)
    else:
        targets = targets_and_weights(labels, weight_config, _SPARSE, outlines=outlines)
        target, weight = targets.target, targets.weight
    plane.target = torch.from_numpy(target)
    plane.weight = torch.from_numpy(weight)


def _cells(labels: np.ndarray) -> np.ndarray:
    """The cells of labels in the internal convention (0 elsewhere)."""
    return np.where(labels > 1, labels, 0)


def _cell_values(labels: np.ndarray) -> np.ndarray:
    values = np.unique(labels)
    return values[values > 1]


def _split_planes(
    index: int, image: np.ndarray, labels: np.ndarray, in_channels: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(C, H, W) image planes and (H, W) label planes of one pair, checked."""
    image, labels = np.asarray(image), np.asarray(labels)
    try:
        channels = pair_channels(image.shape, labels.shape)
        if channels != in_channels:
            raise ValueError(
                f"the image has {channels} channel(s) but the model takes {in_channels}"
            )
    except ValueError as error:
        raise ValueError(f"pair {index + 1}: {error}") from None
    if min(image.shape[-2:]) < SMALLEST_PLANE:
        raise ValueError(
            f"pair {index + 1}: the image is {image.shape[-2]} x {image.shape[-1]} px, too small "
            f"to learn cells from (at least {SMALLEST_PLANE} x {SMALLEST_PLANE})"
        )
    stacked = image.ndim == 3 + (in_channels > 1)
    images = list(image) if stacked else [image]
    label_planes = list(labels) if stacked else [labels]
    return [im[None] if im.ndim == 2 else im for im in images], label_planes
