"""Does a model trained on one image carry over to noisier images of the same sample?

ISBI 2012: slices 15-29 are noisier than slices 0-14. A model is trained on slice 0 with
``isbi2012.py``'s sparse paint (the default 450 steps, no clock), once without pixel
noise in its training tiles (``AugmentConfig(noise=(1, 1))``) and once with the default
(1-2 x the image's own), and each slice is predicted. Per slice: its noise (mean absolute
difference of horizontal neighbours, grey levels) and the share of its true membrane
pixels that each model calls background (the membrane it finds).

    ../.venv/bin/python noise_shift.py [--seed 0] [--every 3]

Prints a table and writes results/noise_shift.json.
"""

from __future__ import annotations

import argparse

import isbi2012
import numpy as np
from _common import write_results

from napari_unet.core.config import AugmentConfig, TrainConfig
from napari_unet.core.events import drain
from napari_unet.core.segment import segment
from napari_unet.core.training import train

MODELS = {"without noise": (1.0, 1.0), "with noise (default)": AugmentConfig().noise}


def membrane_found(result, plane: np.ndarray, membrane: np.ndarray) -> float:
    """The share of ``membrane`` pixels whose background probability is above 0.5."""
    done = drain(segment(result.model, plane, result.normalization, keep_classes=True))
    return round(float((done.probabilities.planes[0][0][membrane] > 0.5).mean()), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--every", type=int, default=3, help="score every n-th slice")
    args = parser.parse_args()
    volume, cells = isbi2012.load()
    paint = isbi2012.sparse_paint(cells[0], np.random.default_rng(args.seed))
    results = {}
    for name, noise in MODELS.items():
        config = TrainConfig(seed=args.seed, minutes=None, augmentation=AugmentConfig(noise=noise))
        results[name] = drain(train([(volume[0], paint)], config))
    rows = []
    for z in range(0, len(volume), args.every):
        plane = volume[z].astype(np.float32)
        row = {"slice": z, "noise": round(float(np.abs(np.diff(plane, axis=1)).mean()), 1)}
        for name, result in results.items():
            row[name] = membrane_found(result, volume[z], cells[z] == 0)
        rows.append(row)
    print("| slice | noise (grey levels) | " + " | ".join(MODELS) + " |")
    print("|---|---|" + "---|" * len(MODELS))
    for row in rows:
        shares = " | ".join(f"{row[name]:.0%}" for name in MODELS)
        print(f"| {row['slice']} | {row['noise']} | {shares} |")
    print(f"written: {write_results('noise_shift', rows, seed=args.seed)}")


if __name__ == "__main__":
    main()
