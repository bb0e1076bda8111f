"""Prediction speed against the device's floor, and overlap-tile against sliding windows.

    python benchmarks/predict_speed.py [--size 1024] [--presets light paper]

For each preset on each device (CPU, and CUDA when present), in one run:

- ours: predict_tiled (valid convolutions, automatic tiles) on a SIZE x SIZE image, in
  seconds per megapixel;
- floor: the network's multiply-adds per output pixel on an infinitely large image (each
  layer's 2 * k * k * C_in * C_out at its resolution) x pixels / the throughput of one
  large 3x3 convolution measured on the same device in the same run (float32,
  channels_last, in the precision of the row); ours / floor is the overhead;
- the common practice elsewhere: the same architecture with "same" padding, tiles with
  50 % overlap blended with Gaussian weights, and its largest difference from running that
  network on the whole image, next to ours (tiled vs whole, valid convolutions), both
  in float32;
- flips: predict_tiled with test-time flips (the image and its 3 mirror images averaged,
  what models trained on roundish cells predict with), against ours.

Each device is timed in float32 and, where it runs bfloat16 natively (CUDA, or a CPU with
AVX-512 BF16 / AMX), in bfloat16 autocast too; "auto" picks one of these per network.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _common import write_results

from napari_unet.core.config import UNetConfig, preset
from napari_unet.core.events import drain
from napari_unet.core.network.model import UNet
from napari_unet.core.network.precision import native_cpu_bfloat16
from napari_unet.core.network.predict import predict_image, predict_tiled


def flops_per_output_pixel(config: UNetConfig) -> float:
    """2 * multiply-adds per output pixel of an infinitely large image."""
    widths = [config.base_channels * 2**level for level in range(config.depth)]
    total = 0.0
    c_in = config.in_channels
    for level, width in enumerate(widths):  # contracting path + bottom
        total += 2 * 9 * (c_in * width + width * width) / 4**level
        c_in = width
    for level in range(config.poolings - 1, -1, -1):  # up-convolution + two 3x3
        w = widths[level]
        total += 2 * (widths[level + 1] * w) / 4**level  # one tap per input channel
        total += 2 * 9 * (2 * w * w + w * w) / 4**level
    return total + 2 * widths[0] * config.classes


def conv_throughput(device: torch.device, dtype) -> float:
    """FLOP/s of a 64 -> 64 channel 3x3 convolution on a 512 x 512 image."""
    conv = torch.nn.Conv2d(64, 64, 3, padding=1).to(device, memory_format=torch.channels_last)
    x = torch.rand(1, 64, 512, 512, device=device).contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)
    with torch.no_grad(), autocast:
        conv(x)
        times = []
        for _ in range(5):
            _sync(device)
            start = time.perf_counter()
            conv(x)
            _sync(device)
            times.append(time.perf_counter() - start)
    return 2 * 9 * 64 * 64 * 512 * 512 / min(times)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def gaussian_window(size: int) -> np.ndarray:
    axis = np.exp(-0.5 * ((np.arange(size) - (size - 1) / 2) / (size / 8)) ** 2)
    return np.outer(axis, axis).astype(np.float32) + 1e-6


def sliding_window(model: UNet, image: np.ndarray, tile: int) -> np.ndarray:
    """Same-padding tiles at 50 % overlap, Gaussian-blended (what other tools do)."""
    height, width = image.shape
    x = (image - np.percentile(image, 1)) / (np.percentile(image, 99.8) - np.percentile(image, 1))
    stride = tile // 2
    padded = np.pad(
        x,
        [(0, (-(height - tile)) % stride + max(tile - height, 0))] * 1
        + [(0, (-(width - tile)) % stride + max(tile - width, 0))],
        mode="symmetric",
    ).astype(np.float32)
    out = np.zeros((model.config.classes, *padded.shape), np.float32)
    total = np.zeros(padded.shape, np.float32)
    weight = gaussian_window(tile)
    device = next(model.parameters()).device
    with torch.no_grad():
        for r in range(0, padded.shape[0] - tile + 1, stride):
            for c in range(0, padded.shape[1] - tile + 1, stride):
                window = torch.from_numpy(padded[None, None, r : r + tile, c : c + tile]).to(device)
                p = torch.softmax(model(window).float(), 1)[0].cpu().numpy()
                out[:, r : r + tile, c : c + tile] += p * weight
                total[r : r + tile, c : c + tile] += weight
    return (out / total)[:, :height, :width]


def whole_same(model: UNet, image: np.ndarray) -> np.ndarray:
    grid = 2**model.config.poolings
    height, width = image.shape
    x = (image - np.percentile(image, 1)) / (np.percentile(image, 99.8) - np.percentile(image, 1))
    padded = np.pad(x, [(0, (-height) % grid), (0, (-width) % grid)], mode="symmetric")
    with torch.no_grad():
        p = torch.softmax(model(torch.from_numpy(padded.astype(np.float32))[None, None]), 1)
    return p[0, :, :height, :width].numpy()


def measure(device, precision: str, throughput: float, name: str, image) -> dict:
    """One row: ours against the floor, and, in float32, against sliding windows."""
    megapixels = image.size / 1e6
    config = preset(name)
    model = UNet(config).to(device).eval()
    model.reset_parameters(torch.Generator(device=device).manual_seed(0))
    drain(predict_tiled(model, image[:300, :300], precision=precision))  # warm-up
    start = time.perf_counter()
    ours = drain(predict_tiled(model, image, precision=precision))
    ours_s = time.perf_counter() - start
    floor_s = flops_per_output_pixel(config) * image.size / throughput
    row = {
        "device": str(device),
        "precision": precision,
        "preset": name,
        "size": image.shape[0],
        "gflop_per_s": throughput / 1e9,
        "ours_s_per_mpx": ours_s / megapixels,
        "floor_s_per_mpx": floor_s / megapixels,
        "ours_over_floor": ours_s / floor_s,
    }
    start = time.perf_counter()
    drain(predict_tiled(model, image, precision=precision, flips=True))
    row["flips_over_ours"] = (time.perf_counter() - start) / ours_s
    if precision != "float32":
        return row
    if device.type == "cpu":  # the whole image at once fits in memory here
        row["ours_max_diff_to_whole"] = float(np.abs(ours - predict_image(model, image)).max())
    same = UNet(UNetConfig(**{**config.to_dict(), "padding": "same"})).to(device).eval()
    same.load_state_dict(model.state_dict())
    size = image.shape[0]
    tile = 512 if size >= 512 else size - size % 2**config.poolings
    start = time.perf_counter()
    blended = sliding_window(same, image, tile)
    row["sliding_s_per_mpx"] = (time.perf_counter() - start) / megapixels
    row["sliding_over_ours"] = row["sliding_s_per_mpx"] / row["ours_s_per_mpx"]
    if device.type == "cpu":
        row["sliding_max_diff_to_whole"] = float(np.abs(blended - whole_same(same, image)).max())
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--presets", nargs="+", default=["light", "paper"])
    parser.add_argument(
        "--devices", nargs="+", help="default: cpu, and cuda when present", choices=["cpu", "cuda"]
    )
    args = parser.parse_args()
    image = np.random.default_rng(0).random((args.size, args.size), dtype=np.float32)
    names = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    devices = [torch.device(name) for name in names]
    rows = []
    for device in devices:
        half = torch.cuda.is_bf16_supported() if device.type == "cuda" else native_cpu_bfloat16()
        for precision in ["float32"] + (["bfloat16"] if half else []):
            dtype = torch.bfloat16 if precision == "bfloat16" else None
            throughput = conv_throughput(device, dtype)
            for name in args.presets:
                rows.append(measure(device, precision, throughput, name, image))

    print(
        f"image {args.size} x {args.size}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(
        f"{'device':<6} {'precision':<9} {'preset':<6} {'GFLOP/s':>8} {'ours s/MP':>10} {'floor s/MP':>11} {'ours/floor':>11} "
        f"{'flips/ours':>11} {'max |tiled-whole|':>18} {'sliding s/MP':>13} {'sliding/ours':>13} "
        f"{'max |blend-whole|':>18}"
    )
    for r in rows:
        print(
            f"{r['device']:<6} {r['precision']:<9} {r['preset']:<6} {r['gflop_per_s']:>8.1f} {r['ours_s_per_mpx']:>10.2f} "
            f"{r['floor_s_per_mpx']:>11.2f} {r['ours_over_floor']:>10.2f}x {r['flips_over_ours']:>10.2f}x "
            f"{r.get('ours_max_diff_to_whole', float('nan')):>18.1e} {r.get('sliding_s_per_mpx', float('nan')):>13.2f} "
            f"{r.get('sliding_over_ours', float('nan')):>12.2f}x {r.get('sliding_max_diff_to_whole', float('nan')):>18.3f}"
        )
    print(f"written: {write_results('predict_speed', rows)}")


if __name__ == "__main__":
    main()
