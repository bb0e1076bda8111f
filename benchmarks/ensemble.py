"""Several trainings of one paint, their probabilities averaged: sparse ISBI.

One sparse ISBI model's Rand error on slices 20-29 depends more on its training's seed
than on the paint (``isbi_ceiling.py --paint-seed``). This scores the ensemble of
``--members`` trainings of each paint (``separation.py --paint-seed P --seeds ...``,
cached; trained here where missing) the way a trained ensemble would segment: every
prediction the mean of the members' probabilities, and the rules calibrated on those
averaged predictions as training calibrates one model (``calibrated_rules``: the painted
cells, the pasted pairs, the mirrored window). The held-back cells are those of the
first member's training set (each member held back its own). Beside it: the same
ensemble without dips, and at the interior threshold that scores best on the scored
slices (a bound, not a method).

    ../.venv/bin/python ensemble.py /tmp/realdata [--paints 0 1 2 3 4 5]
        [--members 3] [--steps 150] [--seeds 0 1 2 3 4]

Member k of paint P is the model of training seed P + 10 k (member 0: the paint's own
seed); ``--seeds`` names the members for every paint instead. ``--steps`` as in
``separation.py`` (450: the cached default models). Prints a table (each member alone,
with its own calibration, and the ensemble) and writes results/ensemble-steps=N[-paints=...][-seeds=...].json.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import separation
import torch
from _common import write_results
from torch import nn

from napari_unet.core.cells.rules import INTERIOR_THRESHOLDS, InstanceRules
from napari_unet.core.events import drain
from napari_unet.core.network.predict import predict_tiled
from napari_unet.core.training.validation import calibrated_rules

DEFAULT_PAINTS = [0, 1, 2, 3, 4, 5]


class Ensemble(nn.Module):
    """The members' mean probability, as log-probabilities (softmax gives it back)."""

    def __init__(self, members) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.config = members[0].config

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.stack([torch.softmax(m(x).float(), 1) for m in self.members]).mean(0)
        return torch.log(mean.clamp_min(1e-12))

    def output_size(self, size: int) -> int:
        return self.members[0].output_size(size)

    @property
    def halo(self) -> int:
        return self.members[0].halo


def ensemble_row(data: Path, paint: int, seeds: list[int]) -> dict:
    separation.PAINT_SEED = paint
    unit = separation.units(data, "isbi", paint)[0]
    alone, loaded = [], []
    for seed in seeds:
        rows = separation.run_unit(unit, seed, ["calibrated"], False)
        alone.append(rows[-1]["rand_error"])
        loaded.append(separation.cached_model(unit, seed, fresh=False)[0])
    started = time.perf_counter()
    model = Ensemble([m.model for m in loaded]).eval()
    data_set = separation.training_set(unit, loaded[0])
    rules, found, painted = calibrated_rules(model, data_set, "cpu")
    scored = [
        drain(predict_tiled(model, plane, loaded[0].normalization, flips=rules.flips))
        for plane in unit.scored
    ]
    truth = separation.crop(unit, unit.truth)

    def rand(candidate: InstanceRules) -> dict:
        labels = separation.cells_of(scored, candidate, unit.scored.shape[-2:], model.config.scale)
        return separation.score(truth, separation.crop(unit, labels), True)

    scores = rand(rules)
    no_dips = rand(dataclasses.replace(rules, dip=0.0))["rand_error"]
    by_interior = {  # (a bound: chosen on the scored slices)
        t: rand(dataclasses.replace(rules, dip=0.0, interior_threshold=t))["rand_error"]
        for t in INTERIOR_THRESHOLDS
    }
    return {
        "paint": paint,
        "seeds": seeds,
        "steps": separation.STEPS,
        "alone": alone,
        "ensemble": scores["rand_error"],
        "ensemble_scores": scores,
        "ensemble no dips": no_dips,
        "ensemble by interior, no dips": by_interior,
        "rules": rules.to_dict(),
        "painted_found": [found, painted],
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="folder written by get-real-data")
    parser.add_argument("--paints", nargs="+", type=int, default=DEFAULT_PAINTS)
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--steps", type=int, default=separation.STEPS)
    parser.add_argument("--seeds", nargs="+", type=int, default=None, help="members' seeds")
    args = parser.parse_args()
    separation.STEPS = args.steps
    rows = []
    for paint in args.paints:
        seeds = args.seeds or [paint + 10 * k for k in range(args.members)]
        rows.append(ensemble_row(args.data, paint, seeds))
        print(rows[-1], flush=True)
    print(
        f"\nRand error, ISBI slices 20-29, sparse, {len(rows[0]['seeds'])} trainings of "
        f"{args.steps} steps per paint (lower is better; the bar: below 0.13)\n"
    )
    print(
        "| paint | members alone | their mean | ensemble (dip) | without dips | bound: best interior |"
    )
    print("|---|---|---|---|---|---|")
    for row in rows:
        members = ", ".join(f"{e:.3f}" for e in row["alone"])
        print(
            f"| {row['paint']} | {members} | {statistics.mean(row['alone']):.3f} | "
            f"{row['ensemble']:.3f} ({row['rules']['dip']}) | {row['ensemble no dips']:.3f} | "
            f"{min(row['ensemble by interior, no dips'].values()):.3f} |"
        )
    single = [e for row in rows for e in row["alone"]]
    together = [row["ensemble"] for row in rows]
    print(
        f"| mean, median | | {statistics.mean(single):.3f}, {statistics.median(single):.3f} | "
        f"{statistics.mean(together):.3f}, {statistics.median(together):.3f} |"
    )
    paints = "" if args.paints == DEFAULT_PAINTS else "-paints=" + ",".join(map(str, args.paints))
    seeds = "-seeds=" + ",".join(map(str, args.seeds)) if args.seeds else ""
    path = write_results(f"ensemble-steps={args.steps}{paints}{seeds}", rows)
    print(f"\nwritten: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
