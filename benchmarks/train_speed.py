"""Training step time of the light preset (three classes) on this machine's CPU: batch and
tile size, the memory layout (default vs channels_last) and bfloat16 autocast (with
channels_last), side by side in one run; and what ``choose_precision`` picks here.

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
from napari_unet.core.network.model import UNet
from napari_unet.core.network.precision import (
    BFLOAT16,
    CPU_PREDICTION,
    CPU_TRAINING,
    choose_precision,
    native_cpu_bfloat16,
)
from napari_unet.core.targets import weighted_cross_entropy

# float32 in the default layout (CPU training), in channels_last (CPU prediction), and
# bfloat16 autocast in channels_last
CANDIDATES = {"default": CPU_TRAINING, "channels_last": CPU_PREDICTION, "bfloat16": BFLOAT16}

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
        for name, precision in CANDIDATES.items():
            model.to(memory_format=precision.memory_format)
            xx = x.contiguous(memory_format=precision.memory_format)

            def step(xx=xx, y=y, w=w, precision=precision):
                with precision.autocast_on("cpu"):
                    logits = model(xx)
                loss = weighted_cross_entropy(logits, y, w)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

            seconds[name] = median_seconds(step, repeats=5)
        default = seconds["default"]
        shape = (batch, 1, size, size)
        rows.append(
            {
                "batch": batch,
                "input": size,
                "output": out,
                **{f"{name}_s": round(value, 3) for name, value in seconds.items()},
                "default_us_per_output_px": round(1e6 * default / (batch * out * out), 2),
                "channels_last_speedup": round(default / seconds["channels_last"], 2),
                "bfloat16_speedup": round(default / seconds["bfloat16"], 2),
                "chosen": choose_precision(model, torch.device("cpu"), shape, training=True).name,
            }
        )
    native = "yes" if native_cpu_bfloat16() else "no (not measured by choose_precision)"
    print(f"light preset, 3 classes, {torch.get_num_threads()} threads; native bfloat16: {native}")
    print(
        "| batch x input -> output | default s/step | channels_last s/step "
        "| bfloat16 autocast, channels_last s/step | us per output px | chosen |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['batch']} x {r['input']} -> {r['output']} | {r['default_s']:.3f} "
            f"| {r['channels_last_s']:.3f} ({r['channels_last_speedup']:.2f}x) "
            f"| {r['bfloat16_s']:.3f} ({r['bfloat16_speedup']:.2f}x) "
            f"| {r['default_us_per_output_px']:.2f} | {r['chosen']} |"
        )
    print(f"written: {write_results('train_speed', rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
