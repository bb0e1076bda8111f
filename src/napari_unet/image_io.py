"""Image and label files: what the command line reads and writes, for the widgets too.

TIFF (tifffile), zarr arrays and OME-Zarr groups (their full-resolution level), and what
imageio reads (PNG, JPEG, BMP, ...). Errors are ``ValueError`` with the file's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .core.images import is_colour

__all__ = ["LazyImage", "open_lazy", "read_image", "read_labels", "write_tiff"]


def read_image(path: Path):
    """Read a TIFF file, a zarr array (for an OME-Zarr image, its full resolution) or
    another image file that imageio reads (PNG, JPEG, BMP, ...)."""
    path = Path(path)
    if path.is_dir() and not _is_zarr(path):
        raise ValueError(
            f"{path} is a folder, not an image; give image files, or a zarr store (a folder "
            "with .zarray, .zgroup or zarr.json in it)"
        )
    try:
        if path.is_dir() or path.suffix == ".zarr":
            return np.asarray(open_lazy(path).data)
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            return tifffile.imread(path)
        import imageio.v3 as iio

        return iio.imread(path)
    except Exception as error:  # the readers raise many kinds for unreadable files
        raise ValueError(f"cannot read {path}: {error}") from None


@dataclass(frozen=True)
class LazyImage:
    """An image read only where it is indexed.

    data: a zarr or dask array (leading axes of size 1 dropped), the spatial axes last.
    scale: the pixel size along the last two axes, where the file says it (OME-Zarr).
    axes: the names of data's axes ("yx", "cyx", ...), where the file says them.
    """

    data: Any
    scale: tuple[float, float] | None = None
    axes: str | None = None


def open_lazy(path: str | Path, level: int = 0) -> LazyImage:
    """A zarr array, an OME-Zarr image (resolution ``level``, 0 = full; any NGFF version
    the ``ome-zarr`` library reads) or a TIFF (through tifffile's zarr view), read lazily.
    Raises ``ValueError`` naming the file for anything else."""
    import zarr

    path = Path(path)
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        node = zarr.open(tifffile.imread(path, aszarr=True, level=level), mode="r")
        return _squeezed(node, None, None)
    node = zarr.open(str(path), mode="r")
    if hasattr(node, "shape"):
        return _squeezed(node, None, None)
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Multiscales, Reader

    location = parse_url(str(path))
    images = [n for n in Reader(location)() if any(isinstance(s, Multiscales) for s in n.specs)]
    if not images:
        if "0" in node and hasattr(node["0"], "shape"):  # a group with an array "0"
            return _squeezed(node["0"], None, None)
        raise ValueError(f"{path} is a zarr group without an image (no OME-Zarr multiscales)")
    image = images[0]
    if not 0 <= level < len(image.data):
        raise ValueError(f"{path} has resolution levels 0-{len(image.data) - 1}; not {level}")
    axes = "".join(a["name"] if isinstance(a, dict) else a for a in image.metadata["axes"])
    scale = None
    for transform in image.metadata.get("coordinateTransformations", [[]])[level]:
        if transform.get("type") == "scale":
            scale = tuple(float(v) for v in transform["scale"][-2:])
    return _squeezed(image.data[level], scale, axes)


def _squeezed(data, scale, axes) -> LazyImage:
    drop = 0
    while data.ndim - drop > 2 and data.shape[drop] == 1:
        drop += 1
    if drop:
        data = data[(0,) * drop]
        axes = axes[drop:] if axes else axes
    return LazyImage(data, scale, axes)


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
