"""How far the rules can take the sparse ISBI models: upper bounds, not defaults.

``separation.py``'s sparse ISBI models (30 painted cells of slice 0, the default
training, cached) fail either by merging cells through gaps in the predicted membranes
or by splitting them. This asks whether any choice of the rules, per model, could bring
their Rand error on slices 20-29 below the thresholding baseline's 0.13, or whether the
networks themselves must get better:

- ``calibrated``: the default (the rules training calibrates on the paint);
- ``best interior``: the calibrated rules with the interior threshold (of
  ``INTERIOR_THRESHOLDS``) that scores best *on the scored slices*: a bound no
  calibration can beat, not a method;
- ``best peaks``: interiors parted by a watershed of the interior probability from its
  maxima of dynamic >= h (``peak_cells``; h of ``DYNAMICS``, 0 = the calibrated rules),
  the best h per model on the scored slices: the same kind of bound for a rule that
  parts cells at dips of the probability, where a membrane gap lets the interior through;
- ``stable interior``, ``stable peaks``: the threshold or h chosen without any truth,
  where the cells of the painted slice's four mirrored predictions agree best (mean
  pairwise Rand error): a label-free choice a training could make;
- ``average of the models``: the probabilities of all the models given averaged (each
  trained on other painted cells), labelled at each interior threshold.

    ../.venv/bin/python isbi_ceiling.py /tmp/realdata [--seeds 0 1 2 3 4 5]

Needs ``separation.py``'s cache (it trains the models missing from it). Prints a table
and writes results/isbi_ceiling.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from pathlib import Path

import numpy as np
import separation
from _common import write_results
from scipy import ndimage as ndi
from skimage.metrics import adapted_rand_error
from skimage.morphology import h_maxima
from skimage.segmentation import expand_labels, watershed

from napari_unet.core.cells.instances import (
    _drop_small,
    _keep_sure,
    _mend_interior,
    labels_from_probabilities,
)
from napari_unet.core.cells.regions import with_holes_filled
from napari_unet.core.cells.rules import INTERIOR_THRESHOLDS, InstanceRules
from napari_unet.core.events import drain
from napari_unet.core.network.predict import predict_tiled

DYNAMICS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
SMOOTHING = 1.0  # px: the interior probability is smoothed before its maxima are found


def peak_cells(probabilities: np.ndarray, rules: InstanceRules, dynamic: float) -> np.ndarray:
    """Cells of an outline network with each interior region parted by a watershed of
    the (smoothed) interior probability from its maxima of at least ``dynamic``; regions
    without such a maximum stay whole. ``dynamic`` 0: the rules' own cells."""
    if dynamic == 0:
        return labels_from_probabilities(probabilities, **rules.labelling())
    cell, outline = probabilities[1:].sum(axis=0), probabilities[2]
    interior_probability = probabilities[1]
    foreground = with_holes_filled(cell > 0.5)
    interior = foreground & _mend_interior(
        interior_probability > rules.interior_threshold, 1 - cell, outline
    )
    regions, count = ndi.label(interior)
    smooth = ndi.gaussian_filter(interior_probability, SMOOTHING)
    peaks, found = ndi.label(h_maxima(np.where(interior, smooth, 0.0), dynamic) & interior)
    seeded = np.zeros(count + 1, bool)
    seeded[regions[peaks > 0]] = True
    lone = ~seeded[regions] & (regions > 0)
    peaks[lone] = regions[lone] + found
    labels = watershed(-smooth, peaks, mask=interior)
    labels = _keep_sure(labels, interior_probability, rules.core_threshold)
    labels = expand_labels(labels, rules.growth)
    labels[~foreground] = 0
    return _drop_small(labels, rules.min_size)[0]


def mirrored(loaded, image: np.ndarray) -> list[np.ndarray]:
    """The probabilities of ``image`` and its three mirror images, each flipped back."""
    found = []
    for axes in ((), (0,), (1,), (0, 1)):
        flipped = np.ascontiguousarray(np.flip(image, axes))
        p = drain(predict_tiled(loaded.model, flipped, loaded.normalization))
        found.append(np.flip(p, tuple(a + 1 for a in axes)))
    return found


def disagreement(predictions: list[np.ndarray], make_cells) -> float:
    """Mean Rand error between the cells of every two of ``predictions`` (membrane
    pixels joined to their nearest cell)."""
    cells = [filled(make_cells(p)) for p in predictions]
    return float(
        np.mean(
            [
                adapted_rand_error(cells[i], cells[j])[0]
                for i in range(len(cells))
                for j in range(i + 1, len(cells))
            ]
        )
    )


def filled(labels: np.ndarray) -> np.ndarray:
    return expand_labels(labels, distance=max(labels.shape)) if labels.any() else labels + 1


def rand_error(unit, planes: list[np.ndarray], make_cells) -> float:
    return separation.score(unit.truth, np.stack([make_cells(p) for p in planes]), True)[
        "rand_error"
    ]


def model_row(data: Path, seed: int) -> tuple[dict, list[np.ndarray], InstanceRules]:
    """One model's Rand errors under each choice of the rules; its scored probabilities
    and calibrated rules."""
    unit = separation.units(data, "isbi", seed)[0]
    calibrated = separation.run_unit(unit, seed, ["calibrated"], fresh=False)[-1]
    rules = InstanceRules.from_dict(calibrated["rules_used"])
    loaded, _ = separation.cached_model(unit, seed, fresh=False)
    scored = separation.cached_probabilities(unit, seed, loaded, fresh=False)["scored"]
    painted_slice = mirrored(loaded, unit.images)
    by_threshold, by_dynamic, stability = {}, {}, {}
    for threshold in INTERIOR_THRESHOLDS:
        candidate = dataclasses.replace(rules, interior_threshold=threshold)
        make = lambda p, r=candidate: labels_from_probabilities(p, **r.labelling())  # noqa: E731
        by_threshold[threshold] = rand_error(unit, scored, make)
        stability[("interior", threshold)] = disagreement(painted_slice, make)
    for dynamic in DYNAMICS:
        make = lambda p, d=dynamic: peak_cells(p, rules, d)  # noqa: E731
        by_dynamic[dynamic] = rand_error(unit, scored, make)
        stability[("peaks", dynamic)] = disagreement(painted_slice, make)
    stable_threshold = min(INTERIOR_THRESHOLDS, key=lambda t: stability[("interior", t)])
    stable_dynamic = min(DYNAMICS, key=lambda d: stability[("peaks", d)])
    row = {
        "seed": seed,
        "calibrated": calibrated["rand_error"],
        "calibrated_interior": rules.interior_threshold,
        "by_interior": by_threshold,
        "by_dynamic": by_dynamic,
        "best interior": min(by_threshold.values()),
        "best peaks": min(by_dynamic.values()),
        "stable interior": by_threshold[stable_threshold],
        "stable peaks": by_dynamic[stable_dynamic],
        "stable_choice": [stable_threshold, stable_dynamic],
        "disagreement": {f"{k}-{v}": round(d, 4) for (k, v), d in stability.items()},
    }
    return row, scored, rules


COLUMNS = ("calibrated", "best interior", "best peaks", "stable interior", "stable peaks")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="folder written by get-real-data")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4, 5])
    args = parser.parse_args()
    rows, probabilities, rules = [], [], None
    for seed in args.seeds:
        row, scored, rules = model_row(args.data, seed)
        rows.append(row)
        probabilities.append(scored)
        print(row, flush=True)
    unit = separation.units(args.data, "isbi", args.seeds[0])[0]
    average = [np.mean(planes, axis=0) for planes in zip(*probabilities, strict=True)]
    averaged = {}
    for threshold in INTERIOR_THRESHOLDS:  # (the last model's other rules)
        candidate = dataclasses.replace(rules, interior_threshold=threshold)
        make = lambda p, r=candidate: labels_from_probabilities(p, **r.labelling())  # noqa: E731
        averaged[threshold] = rand_error(unit, average, make)
    print("\nRand error, ISBI slices 20-29, sparse models (lower is better; the bar: below 0.13)\n")
    print("| model | " + " | ".join(COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for row in rows:
        print(f"| seed {row['seed']} | " + " | ".join(f"{row[c]:.3f}" for c in COLUMNS) + " |")
    for name, reduce in (("mean", statistics.mean), ("median", statistics.median)):
        values = [reduce([row[c] for row in rows]) for c in COLUMNS]
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in values) + " |")
    print(
        f"\naverage of the {len(rows)} models' probabilities, by interior threshold: "
        + ", ".join(f"{t}: {e:.3f}" for t, e in averaged.items())
    )
    path = write_results("isbi_ceiling", rows, seeds=args.seeds, averaged=averaged)
    print(f"\nwritten: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
