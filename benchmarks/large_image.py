"""Peak memory of tiled prediction on an image larger than it: zarr in, zarr out.

    python benchmarks/large_image.py [--size 32768] [--folder /tmp/napari-unet-large]

Writes a SIZE x SIZE uint16 zarr array without compression (32768 x 32768 = 2 GiB on disk)
filled with synthetic touching cells, then runs predict_tiled on it with a small
valid-convolution U-Net, writing the class probabilities (float16) into a zarr array.
Reports the image's size on disk next to the process's peak resident memory (ru_maxrss)
and the time. The network is deliberately tiny: this measures memory, not speed.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import zarr
from _common import write_results, write_tiled_cells

from napari_unet.core.config import UNetConfig
from napari_unet.core.events import TilesDone, drain
from napari_unet.core.network.model import UNet
from napari_unet.core.network.predict import predict_tiled


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def write_image(path: Path, size: int) -> zarr.Array:
    return write_tiled_cells(path, size, "uint16")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32768)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/napari-unet-large"))
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    image = write_image(args.folder / "image.zarr", args.size)
    write_s = time.perf_counter() - start
    on_disk = folder_bytes(args.folder / "image.zarr")
    out = zarr.create_array(
        store=str(args.folder / "probability.zarr"),
        shape=(2, args.size, args.size),
        chunks=(2, 512, 512),
        dtype="float16",
        overwrite=True,
    )
    model = UNet(UNetConfig(depth=3, base_channels=4, dropout=0.0)).eval()
    model.reset_parameters(torch.Generator().manual_seed(0))
    before = peak_mib()
    progress = []
    start = time.perf_counter()
    drain(
        predict_tiled(model, image, out=out),
        lambda e: progress.append(e) if isinstance(e, TilesDone) else None,
    )
    predict_s = time.perf_counter() - start
    peak = peak_mib()
    row = {
        "image_shape": [args.size, args.size],
        "image_bytes_on_disk": on_disk,
        "tiles": progress[-1].total,
        "peak_rss_mib_before": before,
        "peak_rss_mib": peak,
        "write_image_s": write_s,
        "predict_s": predict_s,
        "s_per_megapixel": predict_s / (args.size**2 / 1e6),
        "output_sample_mean": float(np.asarray(out[1, :512, :512], np.float32).mean()),
    }
    print(
        f"image {args.size} x {args.size} uint16, {on_disk / 2**30:.2f} GiB on disk (zarr, uncompressed)"
    )
    print(
        f"predict_tiled (U-Net depth 3, 4 channels) -> zarr float16: {row['tiles']} tiles, {predict_s:.0f} s"
    )
    print(f"peak resident memory: {peak:.0f} MiB ({before:.0f} MiB before prediction)")
    print(f"written: {write_results('large_image', [row])}")
    shutil.rmtree(args.folder)


if __name__ == "__main__":
    main()
