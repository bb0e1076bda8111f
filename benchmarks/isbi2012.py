"""The U-Net paper's first experiment: the ISBI 2012 EM volume, through the command line.

``../shared/data/isbi2012/`` holds the 30 training slices (512 x 512) with their membrane
labels (255 = cell, 0 = membrane). Cells are the 4-connected regions of 255. Two
protocols, scored on slices 20-29:

- **sparse**: 30 cells of slice 0 painted whole (label 1 + their id), and the membrane
  pixels within 3 px of them painted as background (label 1), the rest unpainted; the
  default training (``napari-unet train`` with no budget options);
- **dense**: slices 0-19 as complete masks (``--dense``), ``--minutes 10``.

``--paint-slice Z`` paints the sparse protocol's cells on slice Z instead of 0 (e.g. 19,
as noisy as the scored slices: whether a miss is the shift from slice 0 or the rules).

Scores: F1 at IoU 0.5 and mean matched IoU of the cells; **Rand error** as the challenge
computes it, 1 - the foreground-restricted Rand F-score
(``skimage.metrics.adapted_rand_error``; true membrane pixels are left out, and predicted
membrane pixels are joined to their nearest cell first, as a cell map has no membrane);
**pixel error** of the membrane map (predicted background vs true membrane); **warping
error** (``napari_unet.core.cells.warping``: the true cell map warped toward the predicted
one by topology-keeping flips, the pixels left over; touching cells parted by one pixel
of membrane first). Beside them,
Otsu on the smoothed slice with 4-connected components (the classical baseline) and the
paper's test-set numbers as a reference (different slices, ten hours on a GPU).

    ../.venv/bin/python isbi2012.py [--protocols sparse dense] [--seeds 0] [--minutes M]
        [--paint-slice 0]

Prints a table and writes results/isbi2012.json (with ``--paint-slice Z``:
results/isbi2012-sliceZ.json).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
from _common import write_results
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu
from skimage.measure import label
from skimage.metrics import adapted_rand_error

from napari_unet.core.cells.metrics import joined_to_nearest_cell, match_instances, pixel_error
from napari_unet.core.cells.warping import warping_error
from napari_unet.model_io import load_model

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "isbi2012"
TEST = slice(20, 30)
CLI = Path(sys.executable).with_name("napari-unet")
PAINTED = 30
MEMBRANE_PX = 3  # the membrane painted around each painted cell
PAPER = {"rand_error": 0.0382, "pixel_error": 0.0611, "warping_error": 0.000353}


def load() -> tuple[np.ndarray, np.ndarray]:
    """The volume (30, 512, 512) uint8 and its cells (30, 512, 512) int32, 0 = membrane."""
    volume = tifffile.imread(DATA / "train-volume.tif")
    membranes = tifffile.imread(DATA / "train-labels.tif")
    cells = np.stack([label(plane == 255, connectivity=1) for plane in membranes])
    return volume, cells.astype(np.int32)


def sparse_paint(cells: np.ndarray, rng: np.random.Generator, count: int = PAINTED) -> np.ndarray:
    """``count`` whole cells (label 1 + id) and the membrane within ``MEMBRANE_PX`` of them
    (label 1)."""
    ids = np.unique(cells)
    ids = ids[ids > 0]
    chosen = rng.choice(ids, size=min(count, len(ids)), replace=False)
    painted = np.isin(cells, chosen)
    paint = np.zeros(cells.shape, np.int32)
    paint[painted] = cells[painted] + 1
    paint_membrane(paint, cells, painted)
    return paint


def paint_membrane(paint: np.ndarray, cells: np.ndarray, painted: np.ndarray) -> None:
    """Paint as background (label 1) the membrane (``cells`` 0) within ``MEMBRANE_PX`` of
    the ``painted`` pixels, as a user strokes the membrane around the cells painted."""
    near = ndi.distance_transform_edt(~painted) <= MEMBRANE_PX
    paint[near & (cells == 0)] = 1


def score(truth: np.ndarray, predicted: np.ndarray) -> dict:
    """Cell F1, mean matched IoU, Rand, pixel and warping error over the slices."""
    tp = fp = fn = 0
    ious, rand, pixel, warping = [], [], [], []
    for t, p in zip(truth, predicted, strict=True):
        s = match_instances(t, p)
        tp, fp, fn = tp + s.tp, fp + s.fp, fn + s.fn
        ious += [s.mean_matched_iou] * s.tp
        rand.append(adapted_rand_error(t, joined_to_nearest_cell(p))[0])
        pixel.append(pixel_error(t, p))
        warping.append(warping_error(t, p))
    return {
        "f1": round(2 * tp / max(2 * tp + fp + fn, 1), 3),
        "mean_iou": round(float(np.mean(ious)) if ious else 0.0, 3),
        "rand_error": round(float(np.mean(rand)), 4),
        "pixel_error": round(float(np.mean(pixel)), 4),
        "warping_error": round(float(np.mean(warping)), 6),
    }


def otsu_components(volume: np.ndarray) -> np.ndarray:
    out = []
    for plane in volume:
        smooth = ndi.gaussian_filter(plane.astype(np.float32), 1.0)
        out.append(label(smooth > threshold_otsu(smooth), connectivity=1))
    return np.stack(out)


def run_protocol(protocol: str, seed: int, minutes: float | None, painted: int = 0) -> dict:
    volume, cells = load()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        if protocol == "sparse":
            paint = sparse_paint(cells[painted], np.random.default_rng(seed))
            images, labels = volume[painted], paint
            budget = [] if minutes is None else ["--minutes", str(minutes)]
        else:
            images, labels = volume[:20], cells[:20]
            budget = ["--dense", "--minutes", str(minutes or 10)]
        tifffile.imwrite(folder / "image.tif", images)
        tifffile.imwrite(folder / "labels.tif", labels)
        tifffile.imwrite(folder / "test.tif", volume[TEST])
        model = folder / "model.safetensors"
        started = time.perf_counter()
        train = subprocess.run(
            [CLI, "train", "--image", folder / "image.tif", "--labels", folder / "labels.tif"]
            + ["--out", model, "--seed", str(seed), *budget],
            check=True,
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - started
        subprocess.run(
            [CLI, "segment", model, folder / "test.tif", "--out", folder / "out"],
            check=True,
            capture_output=True,
        )
        predicted = tifffile.imread(folder / "out" / "test_labels.tif").astype(np.int32)
        rules = load_model(model).rules.to_dict()  # (what training calibrated)
    steps = next((line for line in train.stdout.splitlines() if "steps" in line), "")
    return {
        "protocol": protocol if protocol == "dense" or not painted else f"sparse, slice {painted}",
        "seed": seed,
        "train_seconds": round(seconds, 1),
        "training": steps,
        "rules": rules,
        **score(cells[TEST], predicted),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocols", nargs="+", default=["sparse", "dense"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument(
        "--minutes", type=float, default=None, help="sparse: a budget (default: the defaults)"
    )
    parser.add_argument(
        "--paint-slice", type=int, default=0, help="sparse: paint this slice (0-19)"
    )
    args = parser.parse_args()
    if not 0 <= args.paint_slice < TEST.start:
        parser.error(f"--paint-slice must be 0-{TEST.start - 1}: slices 20-29 are scored")
    volume, cells = load()
    rows = [
        {
            "protocol": "Otsu + 4-connected components",
            **score(cells[TEST], otsu_components(volume[TEST])),
        }
    ]
    print(rows[-1], flush=True)
    for protocol in args.protocols:
        for seed in args.seeds:
            sparse = protocol == "sparse"
            rows.append(
                run_protocol(protocol, seed, args.minutes if sparse else None, args.paint_slice)
            )
            print(rows[-1], flush=True)
    print(
        "\n| ISBI 2012, slices 20-29 | seed | training | F1 @ 0.5 | mean IoU | Rand error "
        "| pixel error | warping error |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['protocol']} | {r.get('seed', '-')} | {r.get('training', '-')} | {r['f1']:.3f} "
            f"| {r['mean_iou']:.2f} | {r['rand_error']:.4f} | {r['pixel_error']:.4f} "
            f"| {r['warping_error']:.6f} |"
        )
    print(
        f"| the paper (test set, 10 h on a GPU) | | | | | {PAPER['rand_error']} "
        f"| {PAPER['pixel_error']} | {PAPER['warping_error']} |"
    )
    name = "isbi2012" + (f"-slice{args.paint_slice}" if args.paint_slice else "")
    path = write_results(name, rows, seeds=args.seeds, paper=PAPER)
    print(f"\nwritten: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
