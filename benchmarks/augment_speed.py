"""Elastic deformation of a 572 x 572 image + target + weights: ours next to elasticdeform.

    taskset -c 0 python benchmarks/augment_speed.py

Both do the same work on one core: a random 3 x 3 displacement grid with sigma 10 px,
bicubic field, mirrored edges, the image interpolated linearly (or cubically), target and
weights by nearest neighbour. Also times our full augmentation (elastic + rotation, flip,
scaling, intensity). elasticdeform (PyPI) has to be built from source under NumPy 2:
    .venv/bin/pip install --no-binary elasticdeform elasticdeform
"""

from __future__ import annotations

import numpy as np
import torch
from _common import median_seconds, write_results

from napari_unet.core.config import AugmentConfig
from napari_unet.core.training.augment import augment, noise_level, sample_augmentation

ELASTIC_ONLY = AugmentConfig(
    rotate=False, flip=False, scale=(1, 1), gain=(1, 1), offset=(0, 0), gamma=(1, 1), noise=(1, 1)
)


def main() -> None:
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    size = 572
    image = rng.random((size, size), dtype=np.float32)
    target = (rng.random((size, size)) > 0.5).astype(np.uint8)
    weight = rng.random((size, size), dtype=np.float32)
    tensors = torch.from_numpy(image)[None], torch.from_numpy(target), torch.from_numpy(weight)
    try:
        import elasticdeform
    except ImportError:
        elasticdeform = None
        print("elasticdeform is not installed: pip install --no-binary elasticdeform elasticdeform")

    level = noise_level(image[None])

    def ours(config, order):
        return lambda: augment(
            sample_augmentation(rng, config), *tensors, image_order=order, noise_level=level
        )

    rows = []
    for order, spline in (("linear", 1), ("cubic", 3)):
        row = {
            "image_order": order,
            "ours_s": median_seconds(ours(ELASTIC_ONLY, order), repeats=15),
        }
        if elasticdeform is not None:
            row["elasticdeform_s"] = median_seconds(
                lambda spline=spline: elasticdeform.deform_random_grid(
                    [image, target, weight], sigma=10, points=3, order=[spline, 0, 0], mode="mirror"
                ),
                repeats=15,
            )
            row["speedup"] = row["elasticdeform_s"] / row["ours_s"]
        row["ours_full_augmentation_s"] = median_seconds(ours(AugmentConfig(), order), repeats=15)
        rows.append(row)

    print(
        f"{'image':>7} {'ours (elastic)':>15} {'elasticdeform':>14} {'ratio':>7} {'ours (all augmentations)':>25}"
    )
    for r in rows:
        theirs = f"{r['elasticdeform_s'] * 1000:.1f} ms" if "elasticdeform_s" in r else "-"
        ratio = f"{r['speedup']:.1f}x" if "speedup" in r else "-"
        print(
            f"{r['image_order']:>7} {r['ours_s'] * 1000:>12.1f} ms {theirs:>14} {ratio:>7} "
            f"{r['ours_full_augmentation_s'] * 1000:>22.1f} ms"
        )
    print(f"written: {write_results('augment_speed', rows, threads=1, size=size)}")


if __name__ == "__main__":
    main()
