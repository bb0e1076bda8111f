"""Does a fourth output, each cell's distance to its own edge, keep touching cells apart
better than the three classes' rules?

An experiment, measured before any of it enters the product
(docs/decisions/2026-12-05-distance-output.md). Each data set's paint as ``separation.py`` paints it, trained with the product's
own loop and defaults (validation, pasted contacts, calibration), but with a network of
one more output: the distance of each interior pixel of a painted cell to the nearest
pixel that is not interior (its outline or background), divided by ``SCALE`` px, taken
from the augmented training tiles (a painted cell gives it without any painted
neighbour), learnt as a squared error on the annotated pixels added to the weighted cross
entropy (the product's loop is patched for the run). The scored images are labelled three
ways with the same network:

- ``rules``: the three classes through the model's calibrated rules (as ``segment``);
- ``distance``: a watershed of the predicted distance from its maxima of dynamic >= 1
  network px, within the cells' foreground (cell probability > 0.5), the calibrated
  smallest cell dropped;
- ``distance-necks``: those basins merged as the product merges the basins of its
  interiors' distance transform (``merge_basins``, the calibrated neck ratio).

Compare with ``separation.py``'s rows for the same paint and seeds (the network without
the fourth output).

    ../.venv/bin/python distance_head.py /tmp/realdata --datasets isbi hela bbbc007 \\
        --seeds 0 1 [--images A9_p9d] [--fresh]

Caches each model's predictions in results/distance_head/; writes
results/distance_head.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from _common import RESULTS, write_results
from scipy import ndimage as ndi
from separation import cells_of, crop, keep_paint, paint_changed, score, units
from skimage.morphology import h_maxima
from skimage.segmentation import watershed
from torch import nn

from napari_unet.core.cells.instances import (
    Basins,
    _drop_small,  # (the product's own: cells under the smallest dropped, renumbered)
    cell_probability,
    merge_basins,
)
from napari_unet.core.cells.maxima import highest_saddles
from napari_unet.core.cells.regions import largest_per_label
from napari_unet.core.cells.rules import InstanceRules
from napari_unet.core.config import TrainConfig
from napari_unet.core.events import drain
from napari_unet.core.images import labels_to_image, network_shape, resize_image
from napari_unet.core.network.model import UNet
from napari_unet.core.network.predict import predict_tiled
from napari_unet.core.targets import weighted_cross_entropy
from napari_unet.core.training import loop

SCALE = 8.0  # px: the distance is learnt divided by this (values of about 0-3)
CACHE = RESULTS / "distance_head"


class DistanceUNet(UNet):
    """The U-Net with one more output channel, the distance / ``SCALE``. In training mode
    ``forward`` returns all ``classes + 1`` maps; in eval mode the class scores (so that
    prediction, validation and calibration see the three-class network), or with
    ``as_distance`` the distance d as scores (d, 0, 0), whose softmax's first class
    is e^d / (e^d + 2) (:func:`distance_map` inverts it)."""

    as_distance = False

    def __init__(self, config) -> None:
        super().__init__(config)
        width = self.head.in_channels
        self.head = nn.Conv2d(width, config.classes + 1, 1)
        with torch.no_grad():  # He, as the other 1x1 convolution
            self.head.weight.normal_(0.0, (2.0 / width) ** 0.5)
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = super().forward(x)
        if self.training:
            return scores
        if self.as_distance:
            distance = scores[:, -1:]
            return torch.cat([distance, torch.zeros_like(scores[:, 1:-1])], 1)
        return scores[:, :-1]


def with_distance(model: UNet) -> DistanceUNet:
    """``model`` (its weights) with the distance output added."""
    new = DistanceUNet(model.config)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("head.")}
    new.load_state_dict(state, strict=False)
    return new


def distance_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor):
    """The weighted cross entropy of the classes, plus the squared error of the distance
    on the annotated pixels (target 0 outside the painted cells' interiors)."""
    if logits.shape[1] != 4:
        raise AssertionError(f"expected 3 classes and the distance, got {logits.shape[1]}")
    classes = weighted_cross_entropy(logits[:, :-1], target, weight)
    interiors = (target == 1).cpu().numpy()
    wanted = np.stack([ndi.distance_transform_edt(plane) for plane in interiors]) / SCALE
    wanted = torch.from_numpy(wanted).to(logits.device, torch.float32)
    annotated = weight > 0
    error = (logits[:, -1].float() - wanted)[annotated]
    return classes + (error**2).mean() if error.numel() else classes


def train_with_distance(unit, seed: int):
    """The product's training with the distance output (its loop, patched for this run)."""
    originals = loop.new_model, loop.weighted_cross_entropy, loop._on_cpu

    def on_cpu(model, state):
        copy_ = DistanceUNet(model.config)
        copy_.load_state_dict(state)
        return copy_.eval()

    loop.new_model = lambda *args: with_distance(originals[0](*args))
    loop.weighted_cross_entropy = distance_loss
    loop._on_cpu = on_cpu
    try:
        return drain(loop.train([(unit.images, unit.paint)], TrainConfig(seed=seed, minutes=None)))
    finally:
        loop.new_model, loop.weighted_cross_entropy, loop._on_cpu = originals


def distance_map(model: DistanceUNet, plane: np.ndarray, normalization) -> np.ndarray:
    """(h, w) the predicted distance in px of a plane at the network's scale."""
    model.as_distance = True
    try:
        first = drain(predict_tiled(model, plane, normalization, precision="float32"))[0]
    finally:
        model.as_distance = False
    first = np.clip(first, 1e-7, 1 - 1e-7)
    return np.log(2 * first / (1 - first)) * SCALE


def predictions(unit, seed: int, fresh: bool) -> dict:
    """The class probabilities (with the model's flips) and the distance of each scored
    plane at the network's scale, the calibrated rules and the steps: trained with the
    distance output, or from the cache (results/distance_head/)."""
    path = CACHE / f"{unit.name}-{seed}.npz"
    if path.exists() and not fresh and not paint_changed(path, unit.paint):
        stored = np.load(path)
        rules = InstanceRules.from_dict(json.loads(str(stored["rules"])))
        count = len(unit.scored)
        return {
            "probabilities": [stored[f"p_{z}"].astype(np.float32) for z in range(count)],
            "distances": [stored[f"d_{z}"].astype(np.float32) for z in range(count)],
            "rules": rules,
            "scale": float(stored["scale"]),
            "steps": int(stored["steps"]),
        }
    result = train_with_distance(unit, seed)
    model, scale = result.model, result.model.config.scale
    stored = {}
    for z, plane in enumerate(unit.scored):
        if scale != 1:
            plane = resize_image(plane, network_shape(plane.shape, scale))
        flips = result.rules.flips
        probabilities = drain(predict_tiled(model, plane, result.normalization, flips=flips))
        stored[f"p_{z}"] = probabilities.astype(np.float16)
        stored[f"d_{z}"] = distance_map(model, plane, result.normalization).astype(np.float16)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        **stored,
        rules=json.dumps(result.rules.to_dict()),
        scale=scale,
        steps=result.steps,
    )
    keep_paint(path, unit.paint)
    return predictions(unit, seed, fresh=False)  # (read back: float16, as a cached run)


def distance_basins(distance: np.ndarray, foreground: np.ndarray) -> Basins:
    """The predicted distance split into basins around its maxima of dynamic >= 1 px."""
    distance = np.where(foreground, distance, 0.0)
    seeds = ndi.label(h_maxima(distance, 1.0) & foreground)[0]
    basins = watershed(-distance, seeds, mask=foreground)
    count = int(basins.max())
    peak = np.zeros(count + 1)
    if count:
        peak[1:] = largest_per_label(distance, basins, count)[1:]
    return Basins(basins, peak, *highest_saddles(basins, distance))


def distance_cells(probabilities, distance, rules, necks: bool) -> np.ndarray:
    """Cells from the predicted distance within the foreground (cell probability > 0.5):
    its basins, or with ``necks`` its basins merged as the product merges the basins of
    its interiors' distance transform (the calibrated neck ratio); the calibrated
    smallest cell dropped."""
    foreground = cell_probability(probabilities) > 0.5
    basins = distance_basins(distance, foreground)
    labels = merge_basins(basins, rules.neck_ratio) if necks else basins.labels
    return _drop_small(labels, rules.min_size)[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--datasets", nargs="+", default=["isbi", "hela", "bbbc007"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--images", nargs="+", help="BBBC007 images (default: separation's)")
    parser.add_argument("--fresh", action="store_true", help="train again, not from the cache")
    args = parser.parse_args()
    rows = []
    for dataset in args.datasets:
        for seed in args.seeds:
            for unit in units(args.data, dataset, seed, args.images):
                found = predictions(unit, seed, args.fresh)
                rules, scale = found["rules"], found["scale"]
                shape = unit.scored.shape[-2:]
                pairs = list(zip(found["probabilities"], found["distances"], strict=True))
                ways = {
                    "rules": cells_of(found["probabilities"], rules, shape, scale),
                    "distance": [distance_cells(p, d, rules, necks=False) for p, d in pairs],
                    "distance-necks": [distance_cells(p, d, rules, necks=True) for p, d in pairs],
                }
                for way, planes in ways.items():
                    if scale != 1 and way != "rules":
                        planes = [labels_to_image(plane, shape) for plane in planes]
                    row = {
                        "dataset": dataset,
                        "image": unit.name,
                        "seed": seed,
                        "labels": way,
                        "steps": found["steps"],
                        **score(
                            crop(unit, unit.truth), crop(unit, np.stack(planes)), dataset == "isbi"
                        ),
                    }
                    row.pop("cut_lengths_px", None)
                    rows.append(row)
                    print(row, flush=True)
    print(f"written: {write_results('distance_head', rows)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
