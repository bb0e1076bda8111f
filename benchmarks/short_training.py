"""Does a short training ever give a model that finds no cells on its own painted image?

The issue on separation asks that 40 steps (about a minute on a busy laptop) never yield
a model that finds 0 cells on the image it was painted on, and the dock must never call
such a model ready. Each data set of ``separation.py`` (its paint: 30 cells and background
strokes, 25 on BBBC007's left halves, 30 cells with membrane strokes on ISBI slice 0) is
trained for ``--steps`` steps with the other defaults; then ``segment`` labels the painted
image(s) with the model's calibrated rules. Reported per run: whether training called the
model ready, the painted cells its rules found of those checked (training's own check),
the objects on the painted image, and the painted cells matched there (IoU >= 0.5).

    ../.venv/bin/python short_training.py /tmp/realdata [--steps 40] [--seeds 0 1 2]
        [--datasets hela bbbc007 ecoli isbi]

Writes results/short_training.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _common import write_results
from separation import units

from napari_unet.core.cells.metrics import match_instances
from napari_unet.core.config import TrainConfig
from napari_unet.core.events import drain
from napari_unet.core.segment import segment
from napari_unet.core.training import train


def planes(array: np.ndarray) -> np.ndarray:
    return array if array.ndim == 3 else array[None]


def painted_matched(paint: np.ndarray, labels: np.ndarray) -> tuple[int, int]:
    """The painted cells (label > 1) that an object matches at IoU >= 0.5, and how many
    were painted, over the planes."""
    matched = painted = 0
    for cells, found in zip(planes(paint), planes(labels), strict=True):
        cells = np.where(cells > 1, cells, 0)
        score = match_instances(cells, np.where(cells > 0, found, 0))
        matched, painted = matched + score.tp, painted + score.tp + score.fn
    return matched, painted


def run(unit, seed: int, steps: int) -> dict:
    started = time.perf_counter()
    result = drain(
        train([(unit.images, unit.paint)], TrainConfig(minutes=None, iterations=steps, seed=seed))
    )
    seconds = time.perf_counter() - started
    labels = drain(segment(result.model, unit.images, result.normalization, rules=result.rules))
    labels = labels.labels
    matched, painted = painted_matched(unit.paint, labels)
    found, checked = result.painted_found
    return {
        "dataset": unit.dataset,
        "image": unit.name,
        "seed": seed,
        "steps": result.steps,
        "train_seconds": round(seconds, 1),
        "ready": result.ready,
        "painted_found": [found, checked],
        "objects": int(sum(len(np.unique(plane)) - 1 for plane in planes(labels))),
        "painted_matched": [matched, painted],
        "rules": result.rules.to_dict(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="folder written by get-real-data")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--datasets", nargs="+", default=["hela", "bbbc007", "ecoli", "isbi"])
    args = parser.parse_args()
    rows = []
    print(
        "| data set | image | seed | ready | painted found (training's check) | objects | painted matched |"
    )
    print("|---|---|---|---|---|---|---|")
    for seed in args.seeds:
        for dataset in args.datasets:
            for unit in units(args.data, dataset, seed):
                row = run(unit, seed, args.steps)
                rows.append(row)
                print(
                    f"| {row['dataset']} | {row['image']} | {seed} | {row['ready']} | "
                    f"{row['painted_found'][0]} of {row['painted_found'][1]} | {row['objects']} | "
                    f"{row['painted_matched'][0]} of {row['painted_matched'][1]} |",
                    flush=True,
                )
    empty = [r for r in rows if r["objects"] == 0]
    announced = [r for r in rows if r["objects"] == 0 and r["ready"]]
    print(
        f"\n{len(rows)} trainings of {args.steps} steps: {len(empty)} found no object on "
        f"their own image; {len(announced)} of those were called ready; "
        f"{sum(r['ready'] for r in rows)} called ready in all"
    )
    print(f"written: {write_results('short_training', rows, steps=args.steps)}")


if __name__ == "__main__":
    main()
