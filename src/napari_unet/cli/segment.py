"""``napari-unet segment``: label the cells of images with a model file."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ._arguments import PRECISION_CHOICES, folder, positive_int

EXAMPLE = """examples:
  napari-unet segment model.safetensors cells.tif more/*.tif --out labels/
  napari-unet segment model.safetensors slide.ome.zarr --out labels/ --cluster local
  napari-unet segment model.safetensors slide.ome.zarr --out labels/ --cluster tcp://head:8786"""


def add_parser(commands) -> None:
    seg = commands.add_parser(
        "segment",
        help="segment images with a model file",
        description="Segment images (TIFF, zarr, PNG, JPEG, ...; 2D, or stacks with the plane "
        "axis first; colour images with the colour axis last) and write one label TIFF per "
        "image, NAME_labels.tif, to --out. Files are written whole or not at all; existing "
        "ones are kept unless --overwrite.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    seg.add_argument(
        "model", type=Path, help="a model file (.safetensors) or a bioimage.io package (.zip)"
    )
    seg.add_argument(
        "images", type=Path, nargs="+", help="one or more image files (TIFF, PNG, ...) or zarr"
    )
    seg.add_argument("--out", type=folder, required=True, help="output folder")
    seg.add_argument("--overwrite", action="store_true", help="replace existing output files")
    seg.add_argument(
        "--device",
        default="auto",
        help="auto (default: CUDA, then MPS, then CPU), cpu, cuda or mps",
    )
    seg.add_argument(
        "--precision",
        default="auto",
        choices=PRECISION_CHOICES,
        help="arithmetic: auto (default; on a CPU, bfloat16 where measured faster), float32 "
        "or bfloat16",
    )
    seg.add_argument(
        "--tile-size",
        type=positive_int,
        default=None,
        metavar="PX",
        help="input tile size in px (default: chosen per image for the least waste, up to "
        "1100; sizes under about 4 halos, 180 for the light preset, are enlarged)",
    )
    seg.add_argument(
        "--probabilities",
        action="store_true",
        help="also write NAME_probability.tif (block by block: keep the class probabilities "
        "in the store)",
    )
    seg.add_argument(
        "--watershed",
        action="store_true",
        help="split cells the network merged (distance-transform watershed; two-class models)",
    )
    seg.add_argument(
        "--trust-package",
        action="store_true",
        help="allow a bioimage.io package from elsewhere to run the code it carries (its "
        "architecture or TorchScript); only for packages from a source you trust",
    )
    large = seg.add_argument_group(
        "images larger than memory",
        "Block by block into an OME-Zarr store, OUT/NAME.ome.zarr, with the labels in "
        "labels/cells (a multiscale pyramid): exactly the cells of the whole image. Zarr "
        "images always go this way. A stopped run goes on from the blocks already written "
        "when run again.",
    )
    large.add_argument(
        "--blocks",
        type=positive_int,
        nargs="?",
        const=True,  # the default block size
        default=None,
        metavar="PX",
        help="segment block by block, blocks of PX px per side (default 1024: each worker "
        "needs about 1 GB)",
    )
    large.add_argument(
        "--cluster",
        default=None,
        metavar="WHERE",
        help="spread the blocks over dask.distributed workers: 'local' (a cluster on this "
        "machine: a worker per GPU, else per core) or a scheduler's address, e.g. "
        "tcp://10.0.0.5:8786 (a cluster started with dask-jobqueue on SLURM, by hand, ...)",
    )
    large.add_argument(
        "--workers", type=positive_int, default=None, help="workers of --cluster local"
    )
    large.add_argument(
        "--level",
        type=int,
        default=0,
        help="the resolution level of an OME-Zarr image to segment (default 0: full)",
    )
    seg.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..bioimageio import open_model
    from ..core.network.device import pick_device
    from . import blocks

    missing = [str(p) for p in args.images if not p.exists()]
    if missing:
        raise ValueError(f"no such image: {', '.join(missing)}")
    names = [p.name.split(".")[0] for p in args.images]  # cells.ome.tif -> cells
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise ValueError(
            f"two images would write {clashes[0]}'s labels; segment them into separate "
            "--out folders"
        )
    large = [p for p in args.images if blocks.wanted(args, p)]
    whole = [(p, n) for p, n in zip(args.images, names, strict=True) if p not in large]
    outputs = {name: _outputs(args, name) for _, name in whole}
    existing = [str(p) for paths in outputs.values() for p in paths if p.exists()]
    if existing and not args.overwrite:
        raise ValueError(
            f"{existing[0]} exists ({len(existing)} output file(s) would be replaced); add "
            "--overwrite to replace them, or choose another --out"
        )
    if whole:
        device = pick_device(args.device)
        loaded = open_model(args.model, device=str(device), run_its_code=args.trust_package)
        for path, name in whole:
            _segment_one(args, loaded, device, path, name, outputs[name])
    if large:
        blocks.run(args, large)
    return 0


def _outputs(args: argparse.Namespace, name: str) -> list[Path]:
    return [args.out / f"{name}_labels.tif"] + (
        [args.out / f"{name}_probability.tif"] if args.probabilities else []
    )


def _segment_one(args, loaded, device, path: Path, name: str, outputs: list[Path]) -> None:
    """Segment one image and write its files (each whole, or not at all)."""
    import numpy as np

    from ..core.events import drain
    from ..core.images import colour_channels, count_planes
    from ..core.segment import segment
    from ..image_io import read_image, write_tiff
    from ._progress import TilesProgress

    image = read_image(path)
    start = time.perf_counter()
    live = sys.stderr.isatty()
    if not hasattr(loaded, "model"):  # a bioimage.io model from elsewhere
        result = drain(loaded.segment(image))
        write_tiff(outputs[0], result.labels)
        print(f"{path.name}: {int(result.labels.max())} objects -> {outputs[0]}")
        return
    try:
        image = colour_channels(image, loaded.model.config.in_channels)
        planes = count_planes(image.shape, loaded.model.config.in_channels)
        result = drain(
            segment(
                loaded.model,
                image,
                loaded.normalization,
                tile_size=args.tile_size,
                device=device,
                precision=args.precision,
                keep_probability=args.probabilities,
                method="watershed" if args.watershed else "components",
                rules=loaded.rules,
            ),
            TilesProgress(name, planes, live),
        )
    except ValueError as error:
        raise ValueError(f"{path.name}: {error}") from None
    if live:
        print(file=sys.stderr)
    write_tiff(outputs[0], result.labels)
    if args.probabilities:
        write_tiff(outputs[1], result.cell_probability)
    objects = len(np.unique(result.labels)) - 1
    print(
        f"{path.name}: {objects} objects in {time.perf_counter() - start:.1f} s -> "
        + ", ".join(str(p) for p in outputs)
    )
