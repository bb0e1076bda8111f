"""Forward-pass speed of the U-Net presets on this machine's CPU (and CUDA GPU if present).

    python benchmarks/model_speed.py [--repeats N] [--json PATH]

For each preset, one tile near 572 px is run in three settings side by side in the same
process: float32 (default memory layout), float32 with channels_last, and bfloat16 autocast
with channels_last. The table gives seconds per megapixel of output for each, the speed-up
of each over plain float32, and the largest class-probability difference of bf16 against
float32. Results go to benchmarks/results/model_speed.json.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from napari_unet.core.config import preset
from napari_unet.core.network.model import UNet, nearest_valid_input_sizes, output_size

MODES = {  # name: (channels_last, bf16 autocast)
    "fp32": (False, False),
    "fp32_cl": (True, False),
    "bf16_cl": (True, True),
}


def time_forward(model, x, *, channels_last: bool, bf16: bool, repeats: int):
    """Median seconds of ``repeats`` forward passes (after one warm-up) and the output."""
    model = copy.deepcopy(model)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    autocast = (
        torch.autocast(x.device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    )
    times = []
    with torch.no_grad(), autocast:
        out = model(x)  # warm-up
        for _ in range(repeats):
            if x.device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            out = model(x)
            if x.device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    return statistics.median(times), torch.softmax(out.float(), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--json", type=Path, default=Path(__file__).parent / "results" / "model_speed.json"
    )
    args = parser.parse_args()

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        for name in ("light", "paper"):
            config = preset(name)
            size = nearest_valid_input_sizes(config, 572)[1]
            out_px = output_size(config, size) ** 2
            model = UNet(config).eval().to(device)
            x = torch.rand(1, 1, size, size, generator=torch.Generator().manual_seed(0)).to(device)
            row = {
                "device": device,
                "preset": name,
                "tile": size,
                "output": output_size(config, size),
                "parameters": sum(p.numel() for p in model.parameters()),
            }
            probabilities = {}
            for mode, (channels_last, bf16) in MODES.items():
                seconds, probabilities[mode] = time_forward(
                    model, x, channels_last=channels_last, bf16=bf16, repeats=args.repeats
                )
                row[f"{mode}_s_per_mpx"] = seconds / out_px * 1e6
            for mode in MODES:
                row[f"{mode}_speedup"] = row["fp32_s_per_mpx"] / row[f"{mode}_s_per_mpx"]
            row["bf16_max_prob_diff"] = float(
                (probabilities["bf16_cl"] - probabilities["fp32"]).abs().max()
            )
            rows.append(row)

    print(
        f"threads: {torch.get_num_threads()}, cpu: {platform.processor() or platform.machine()}, torch {torch.__version__}"
    )
    print(
        f"{'device':<6} {'preset':<6} {'tile':>9} {'params':>11}  seconds per output megapixel (speed-up over fp32)"
    )
    print(
        f"{'':<35} {'fp32':>8} {'fp32 channels_last':>20} {'bf16 channels_last':>20} {'bf16 max dP':>12}"
    )
    for r in rows:
        print(
            f"{r['device']:<6} {r['preset']:<6} {r['tile']:>4}->{r['output']:<4} {r['parameters']:>11,} "
            f"{r['fp32_s_per_mpx']:>8.2f} {r['fp32_cl_s_per_mpx']:>11.2f} ({r['fp32_cl_speedup']:.2f}x) "
            f"{r['bf16_cl_s_per_mpx']:>11.2f} ({r['bf16_cl_speedup']:.2f}x) {r['bf16_max_prob_diff']:>12.3f}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "cpus": os.cpu_count(),
                "rows": rows,
            },
            indent=2,
        )
    )
    print(f"written: {args.json}")


if __name__ == "__main__":
    main()
