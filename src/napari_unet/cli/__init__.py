"""The ``napari-unet`` command line.

    napari-unet demo                 napari with the sample data and the plugin's widgets
    napari-unet demo --headless      the same work without a display; files in --out
    napari-unet train --image IMG --labels LBL --out MODEL   train (or fine-tune) a model
    napari-unet segment MODEL IMAGE... --out DIR   label TIFFs for images (TIFF, zarr, PNG, ...)
    napari-unet info MODEL|--preset  what a model file or preset holds, and its tile sizes
    napari-unet export MODEL --bioimageio OUT.zip   the model as a bioimage.io package

Thin: one module per command parses its arguments and calls the core. napari is imported
only by ``demo`` with a display, so that the rest works on a server without Qt; the
commands import the core only when they run, so that ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import sys

from . import demo, export, info, segment, train

__all__ = ["main"]


EPILOG = """labels, as painted in napari:
  0 = not annotated, 1 = background, 2 and up = one cell each
  (train --dense reads complete masks instead: 0 = background, every other value a cell)

examples:
  napari-unet demo
  napari-unet train --image cells.tif --labels painted.tif --out model.safetensors
  napari-unet segment model.safetensors cells.tif more.tif --out labels/
  napari-unet info model.safetensors
  napari-unet export model.safetensors --bioimageio model.zip

"napari-unet COMMAND --help" says more about each command."""


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 = success, 1 = an error it
    explained, 2 = wrong arguments, 130 = interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, OSError, MemoryError) as error:  # ModelFileError: a ValueError
        print(f"napari-unet {args.command}: {_one_line(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\nnapari-unet {args.command}: interrupted", file=sys.stderr)
        return 130


def _one_line(error: BaseException) -> str:
    if isinstance(error, OSError) and error.filename and error.strerror:
        return f"{error.strerror}: {error.filename}"
    return " ".join(str(error).split()) or type(error).__name__


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="napari-unet",
        description="U-Net segmentation of touching cells (Ronneberger et al. 2015): paint "
        "a few cells, train, segment.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"napari-unet {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (demo, train, segment, info, export):
        command.add_parser(commands)
    return parser
