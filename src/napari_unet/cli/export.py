"""``napari-unet export``: a model file as a bioimage.io package."""

from __future__ import annotations

import argparse
from pathlib import Path

EXAMPLE = """example:
  napari-unet export model.safetensors --bioimageio model.zip --test-image cells.tif \\
      --author "Ada Lovelace" --licence CC-BY-4.0"""


def add_parser(commands) -> None:
    export = commands.add_parser(
        "export",
        help="write a model file as a bioimage.io package",
        description="Write a model file as a bioimage.io package (format 0.5): the network as "
        "source and PyTorch (and TorchScript) weights, the normalisation, test tensors, the "
        "U-Net paper to cite, and the model file itself, so that ilastik, deepImageJ, QuPath, "
        "Fiji and napari read it and napari-paint-unet gets the same model back. Needs "
        '"napari-paint-unet[bioimageio]".',
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument("model", type=Path, help="a model file (.safetensors)")
    export.add_argument(
        "--bioimageio", type=Path, required=True, metavar="OUT.zip", help="the package to write"
    )
    export.add_argument(
        "--test-image", type=Path, default=None, help="an image to crop the test input from"
    )
    export.add_argument(
        "--author", action="append", default=None, help="an author's name (repeat for more)"
    )
    export.add_argument("--licence", default="CC-BY-4.0", help="the weights' licence (SPDX id)")
    export.add_argument("--overwrite", action="store_true", help="replace an existing package")
    export.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from .._files import check_writable
    from ..bioimageio import export_bioimageio
    from ..image_io import read_image
    from ..model_io import load_model

    out = check_writable(args.bioimageio, "package")
    if out.suffix.lower() != ".zip":
        raise ValueError(f"{out} should end in .zip (a bioimage.io package is a zip)")
    if out.exists() and not args.overwrite:
        raise ValueError(f"{out} exists; add --overwrite to replace it")
    load_model(args.model)  # a clear error for what is not a model file, before any work
    image = read_image(args.test_image) if args.test_image else None
    written = export_bioimageio(
        args.model,
        out,
        test_image=image,
        authors=tuple(args.author or ["napari-paint-unet user"]),
        licence=args.licence,
    )
    print(f"written: {written} (bioimage.io model package)")
    return 0
