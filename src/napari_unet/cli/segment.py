"""``napari-unet segment``: label the cells of images with a model file."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def add_parser(commands) -> None:
    seg = commands.add_parser(
        "segment",
        help="segment images with a model file",
        description="Segment images (TIFF, zarr, PNG, JPEG, ...; 2D, or stacks with the plane "
        "axis first; colour images with the colour axis last) "
        "and write one label TIFF per image, NAME_labels.tif, to --out.",
    )
    seg.add_argument("model", type=Path, help="a model file (.safetensors)")
    seg.add_argument(
        "images", type=Path, nargs="+", help="image files (TIFF, PNG, ...) or zarr arrays"
    )
    seg.add_argument("--out", type=Path, required=True, help="output folder")
    seg.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")
    seg.add_argument("--tile-size", type=int, default=None, help="input tile size in px")
    seg.add_argument("--probabilities", action="store_true", help="also write NAME_probability.tif")
    seg.add_argument(
        "--watershed",
        action="store_true",
        help="split cells the network merged (distance-transform watershed)",
    )
    seg.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import tifffile

    from ..core.events import drain
    from ..core.images import colour_channels, count_planes
    from ..core.network.device import pick_device
    from ..core.segment import segment
    from ..image_io import read_image
    from ..model_io import load_model
    from ._progress import TilesProgress

    missing = [str(p) for p in args.images if not p.exists()]
    if missing:
        raise ValueError(f"no such image: {', '.join(missing)}")
    names = [p.name.split(".")[0] for p in args.images]  # cells.ome.tif -> cells
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise ValueError(
            f"two images would write {clashes[0]}_labels.tif; segment them into separate "
            "--out folders"
        )
    device = pick_device(args.device)
    loaded = load_model(args.model, device=device)
    args.out.mkdir(parents=True, exist_ok=True)
    for path, name in zip(args.images, names, strict=True):
        image = read_image(path)
        start = time.perf_counter()
        try:
            image = colour_channels(image, loaded.model.config.in_channels)
            planes = count_planes(image.shape, loaded.model.config.in_channels)
            progress = TilesProgress(name, planes) if sys.stderr.isatty() else None
            result = drain(
                segment(
                    loaded.model,
                    image,
                    loaded.normalization,
                    tile_size=args.tile_size,
                    device=device,
                    keep_probability=args.probabilities,
                    method="watershed" if args.watershed else "components",
                    rules=loaded.rules,
                ),
                progress,
            )
        except ValueError as error:
            raise ValueError(f"{path.name}: {error}") from None
        if progress is not None:
            print(file=sys.stderr)
        written = [args.out / f"{name}_labels.tif"]
        tifffile.imwrite(written[0], result.labels, compression="zlib")
        if args.probabilities:
            written.append(args.out / f"{name}_probability.tif")
            tifffile.imwrite(written[1], result.cell_probability, compression="zlib")
        objects = len(np.unique(result.labels)) - 1
        print(
            f"{path.name}: {objects} objects in {time.perf_counter() - start:.1f} s -> "
            + ", ".join(str(p) for p in written)
        )
    return 0
