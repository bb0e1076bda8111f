"""Speed of the weight map (targets_and_weights) against the literal reference, one core.

    taskset -c 0 python benchmarks/weightmap_speed.py [--full]

Synthetic dense masks of touching cells: 512 x 512 with ~150 cells and 2048 x 2048 with
~2,500 cells. The reference is eq. 2 taken literally: one distance transform per cell over
the whole image (then the two smallest per pixel). On 2048 x 2048 that is ~0.7 s per cell,
half an hour in all, so by default the reference is timed on the first 40 cells and
extrapolated to all of them (the cost per cell does not depend on the cell); --full times
it all. The fast result is checked against the reference where it is computed in full.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import wall_times, write_results
from scipy import ndimage as ndi

from napari_unet.core.config import LabelConfig, WeightMapConfig
from napari_unet.core.synthetic import touching_cells
from napari_unet.core.targets import class_weights, targets_and_weights, touching_pixels

DENSE = LabelConfig(dense=True)


def reference_weight(labels: np.ndarray, config: WeightMapConfig, max_cells: int | None = None):
    """Eq. 2 literally (dense labels): per cell, a distance transform of the whole image.

    Returns the weight map (None when stopped after ``max_cells``) and seconds per cell."""
    cells = np.where(touching_pixels(labels), 0, labels)
    ids = np.unique(cells[cells > 0])
    d1 = np.full(cells.shape, np.inf)
    d2 = np.full(cells.shape, np.inf)
    start = time.perf_counter()
    for count, i in enumerate(ids[:max_cells] if max_cells else ids, start=1):  # noqa: B007
        d = ndi.distance_transform_edt(cells != i)
        d2 = np.minimum(d2, np.maximum(d1, d))
        d1 = np.minimum(d1, d)
    per_cell = (time.perf_counter() - start) / count
    if max_cells and max_cells < len(ids):
        return None, per_cell
    is_cell = cells > 0
    w_bg, w_cell = class_weights([int((~is_cell).sum()), int(is_cell.sum())], config)
    border = config.w0 * np.exp(-((d1 + d2) ** 2) / (2 * config.sigma**2))
    return np.where(is_cell, w_cell, w_bg + border), per_cell


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="time the 2048 reference in full")
    args = parser.parse_args()
    config = WeightMapConfig()
    rows = []
    for shape, coverage, target_s in (((512, 512), 0.18, 0.050), ((2048, 2048), 0.19, 1.0)):
        labels = touching_cells(shape, rng=np.random.default_rng(0), coverage=coverage).truth
        n_cells = int(labels.max())
        times = wall_times(lambda labels=labels: targets_and_weights(labels, config, DENSE), 11)
        fast_s, fast_min_s = float(np.median(times)), min(times)
        sample = None if args.full or shape[0] <= 512 else 40
        start = time.perf_counter()
        reference, per_cell = reference_weight(labels, config, sample)
        measured = time.perf_counter() - start
        reference_s = measured if reference is not None else per_cell * n_cells
        row = {
            "shape": list(shape),
            "cells": n_cells,
            "fast_s": fast_s,
            "fast_min_s": fast_min_s,
            "target_s": target_s,
            "reference_s": reference_s,
            "reference_extrapolated": reference is None,
            "speedup": reference_s / fast_s,  # median against median
        }
        if reference is not None:
            fast = targets_and_weights(labels, config, DENSE).weight
            row["max_relative_difference"] = float(np.max(np.abs(fast - reference) / reference))
        rows.append(row)

    print(
        f"{'image':>11} {'cells':>6} {'fast (median)':>14} {'(min)':>9} {'target':>8} {'reference':>13} {'speed-up':>9} {'max rel. diff':>14}"
    )
    for r in rows:
        ref = f"{r['reference_s']:.1f} s" + ("*" if r["reference_extrapolated"] else " ")
        diff = f"{r['max_relative_difference']:.1e}" if "max_relative_difference" in r else "-"
        print(
            f"{r['shape'][0]:>5}x{r['shape'][1]:<5} {r['cells']:>6} {r['fast_s'] * 1000:>11.1f} ms "
            f"{r['fast_min_s'] * 1000:>6.1f} ms "
            f"{r['target_s'] * 1000:>5.0f} ms {ref:>13} {r['speedup']:>8.0f}x {diff:>14}"
        )
    if any(r["reference_extrapolated"] for r in rows):
        print("* reference timed on 40 cells and extrapolated to all (use --full to time it all)")
    print(f"written: {write_results('weightmap_speed', rows)}")


if __name__ == "__main__":
    main()
