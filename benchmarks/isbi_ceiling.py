"""How far the rules can take the sparse ISBI models: upper bounds, not defaults.

``separation.py``'s sparse ISBI models (30 painted cells of slice 0, the default
training, cached) fail either by merging cells through gaps in the predicted membranes
or by splitting them. This asks whether any choice of the rules, per model, could bring
their Rand error on slices 20-29 below the thresholding baseline's 0.13, or whether the
networks themselves must get better:

- ``no dips``: the rules training calibrated before dips (the baseline of the bounds);
- ``calibrated``: the default: the same, with interiors parted at dips of the interior
  probability where the painted cells are not convex, the dip chosen where the cells of
  four mirrored predictions of the painted window agree (``calibrate_dip``);
- ``best interior``: ``no dips`` with the interior threshold (of ``INTERIOR_THRESHOLDS``)
  that scores best *on the scored slices*: a bound no calibration can beat, not a method;
- ``best dip``: ``no dips`` parted at the dip (of ``DIPS``) that scores best on the scored
  slices: the same kind of bound for the dips;
- ``best both``: the interior threshold and the dip that score best together on the scored
  slices (every pair of the two lists): the bound for the two rules that move most;
- ``stable interior``: the interior threshold chosen as ``calibrate_dip`` chooses the dip
  (the mirrored cells of the painted slice agree best): a label-free choice a training
  could make, not made;
- ``average of the models``: the probabilities of all the models given averaged (each
  trained on other painted cells), labelled at each interior threshold.

    ../.venv/bin/python isbi_ceiling.py /tmp/realdata [--seeds 0 1 2 3 4 5] [--paint-seed 0]

``--paint-seed P``: the models trained with each of ``--seeds`` on the paint of seed P
(``separation.py --paint-seed``), whose average then tells what more trainings of one
paint would give.

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

from napari_unet.core.cells.instances import labels_from_probabilities
from napari_unet.core.cells.rules import (
    DIPS,
    INTERIOR_THRESHOLDS,
    InstanceRules,
    mirrored_disagreement,
)


def rand_error(unit, planes: list[np.ndarray], make_cells) -> float:
    return separation.score(unit.truth, np.stack([make_cells(p) for p in planes]), True)[
        "rand_error"
    ]


def model_row(data: Path, seed: int) -> tuple[dict, list[np.ndarray], InstanceRules]:
    """One model's Rand errors under each choice of the rules; its scored probabilities
    and calibrated rules without dips."""
    unit = separation.units(data, "isbi", separation.painted_as(seed))[0]
    calibrated, plain = separation.run_unit(unit, seed, ["calibrated", "no-dips"], False)[-2:]
    rules = InstanceRules.from_dict(plain["rules_used"])
    loaded, _ = separation.cached_model(unit, seed, fresh=False)
    scored = separation.cached_probabilities(unit, seed, loaded, fresh=False)["scored"]
    mirrored = separation.cached_mirrored(unit, seed, loaded, fresh=False)
    grid, stability = {}, {}  # (threshold, dip): Rand error
    memos = [{} for _ in scored]  # (per plane, the stages shared between candidates)
    for threshold in INTERIOR_THRESHOLDS:
        stability[threshold] = mirrored_disagreement(
            mirrored, dataclasses.replace(rules, interior_threshold=threshold)
        )
        for dip in DIPS:
            candidate = dataclasses.replace(rules, interior_threshold=threshold, dip=dip)
            labelled = [
                labels_from_probabilities(p, **candidate.labelling(), memo=m)
                for p, m in zip(scored, memos, strict=True)
            ]
            grid[threshold, dip] = rand_error(unit, labelled, lambda labels: labels)
    by_threshold = {t: grid[t, 0.0] for t in INTERIOR_THRESHOLDS}
    by_dip = {d: grid[rules.interior_threshold, d] for d in DIPS}
    stable = min(INTERIOR_THRESHOLDS, key=lambda t: stability[t])
    row = {
        "seed": seed,
        "no dips": plain["rand_error"],
        "calibrated": calibrated["rand_error"],
        "calibrated_dip": calibrated["rules_used"]["dip"],
        "calibrated_interior": rules.interior_threshold,
        "by_interior": by_threshold,
        "by_dip": by_dip,
        "best interior": min(by_threshold.values()),
        "best dip": min(by_dip.values()),
        "best both": min(grid.values()),
        "best_both_choice": list(min(grid, key=grid.get)),
        "stable interior": by_threshold[stable],
        "stable_choice": stable,
        "disagreement": {str(t): round(d, 4) for t, d in stability.items()},
    }
    return row, scored, rules


COLUMNS = ("no dips", "calibrated", "best interior", "best dip", "best both", "stable interior")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="folder written by get-real-data")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--paint-seed", type=int, default=None, help="one paint for every seed")
    args = parser.parse_args()
    separation.PAINT_SEED = args.paint_seed
    rows, probabilities, rules = [], [], None
    for seed in args.seeds:
        row, scored, rules = model_row(args.data, seed)
        rows.append(row)
        probabilities.append(scored)
        print(row, flush=True)
    unit = separation.units(args.data, "isbi", separation.painted_as(args.seeds[0]))[0]
    average = [np.mean(planes, axis=0) for planes in zip(*probabilities, strict=True)]
    averaged = {}
    for threshold in INTERIOR_THRESHOLDS:  # (the last model's other rules, no dips)
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
    name = "isbi_ceiling" + (f"-paint={args.paint_seed}" if args.paint_seed is not None else "")
    path = write_results(name, rows, seeds=args.seeds, averaged=averaged)
    print(f"\nwritten: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
