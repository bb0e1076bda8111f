"""Image and label files: what the command line reads and writes, for the widgets too.

TIFF (tifffile), zarr arrays and OME-Zarr groups (their full-resolution level), and what
imageio reads (PNG, JPEG, BMP, ...). Errors are ``ValueError`` with the file's name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .core.images import is_colour

__all__ = ["read_image", "read_labels", "write_tiff"]


def read_image(path: Path):
    """Read a TIFF file, a zarr array (for an OME-Zarr group, its full-resolution "0") or
    another image file that imageio reads (PNG, JPEG, BMP, ...)."""
    path = Path(path)
    if path.is_dir() and not _is_zarr(path):
        raise ValueError(
            f"{path} is a folder, not an image; give image files, or a zarr store (a folder "
            "with .zarray, .zgroup or zarr.json in it)"
        )
    try:
        if path.is_dir() or path.suffix == ".zarr":
            import zarr

            node = zarr.open(str(path), mode="r")
            if not hasattr(node, "shape") and "0" in node:  # an OME-Zarr group
                node = node["0"]
            if not hasattr(node, "shape"):
                raise ValueError("it is a zarr group without an array '0'; name an array")
            return np.asarray(node)
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            return tifffile.imread(path)
        import imageio.v3 as iio

        return iio.imread(path)
    except Exception as error:  # the readers raise many kinds for unreadable files
        raise ValueError(f"cannot read {path}: {error}") from None


def _is_zarr(path: Path) -> bool:
    return any((path / name).exists() for name in (".zarray", ".zgroup", "zarr.json"))


def write_tiff(path: Path, array) -> Path:
    """Write ``array`` as a zlib-compressed TIFF, whole or not at all (a full disk or an
    interrupt leaves any older file as it was); an error names the file."""
    import tifffile

    from ._files import write_atomically

    try:
        return write_atomically(path, lambda tmp: tifffile.imwrite(tmp, array, compression="zlib"))
    except OSError as error:
        raise OSError(error.errno, f"could not write {path}: {error.strerror or error}") from None


def read_labels(path: Path):
    """Read a label image (as :func:`read_image`); refuse colour-coded ones."""
    labels = read_image(path)
    if labels.ndim == 3 and is_colour(labels.shape):
        raise ValueError(
            f"{path} is a colour image (shape {labels.shape}); labels need one whole number "
            "per pixel (0 not annotated, 1 background, 2, 3, ... one per cell)"
        )
    return labels
