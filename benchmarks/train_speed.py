"""Training step time of the light preset (three classes) on this machine's CPU: batch and
tile size, and the memory layout (default vs channels_last), side by side in one run.

    ../.venv/bin/python train_speed.py

One step = forward, weighted cross-entropy, backward and an Adam update on random tiles.
Prints a table (seconds per step and microseconds per output pixel) and writes
results/train_speed.json.
"""

from __future__ import annotations

import sys

import torch
from _common import median_seconds, write_results

from napari_unet.core.config import preset
from napari_unet.core.loss import weighted_cross_entropy
from napari_unet.core.model import UNet

SHAPES = [(4, 276), (1, 532), (2, 372), (8, 188)]  # (tiles per batch, input px)


def main() -> int:
    torch.manual_seed(0)
    model = UNet(preset("light", classes=3))
    optimizer = torch.optim.Adam(model.parameters())
    rows = []
    for batch, size in SHAPES:
        out = model.output_size(size)
        x = torch.randn(batch, 1, size, size)
        y = torch.randint(0, 3, (batch, out, out))
        w = torch.rand(batch, out, out)
        seconds = {}
        for layout in (torch.contiguous_format, torch.channels_last):
            model.to(memory_format=layout)
            xx = x.contiguous(memory_format=layout)

            def step(xx=xx, y=y, w=w):
                loss = weighted_cross_entropy(model(xx), y, w)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

            seconds[str(layout)] = median_seconds(step, repeats=5)
        default, last = seconds["torch.contiguous_format"], seconds["torch.channels_last"]
        rows.append(
            {
                "batch": batch,
                "input": size,
                "output": out,
                "default_s": round(default, 3),
                "channels_last_s": round(last, 3),
                "default_us_per_output_px": round(1e6 * default / (batch * out * out), 2),
                "channels_last_speedup": round(default / last, 2),
            }
        )
    print(f"light preset, 3 classes, {torch.get_num_threads()} threads")
    print("| batch x input -> output | default s/step | channels_last s/step | us per output px |")
    print("|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['batch']} x {r['input']} -> {r['output']} | {r['default_s']:.3f} "
            f"| {r['channels_last_s']:.3f} ({r['channels_last_speedup']:.2f}x) "
            f"| {r['default_us_per_output_px']:.2f} |"
        )
    print(f"written: {write_results('train_speed', rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
