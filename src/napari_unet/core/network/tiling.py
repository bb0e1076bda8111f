"""A plan of tiles for overlap-tile prediction (paper, Fig. 2), as plain numbers.

With valid convolutions a tile of ``T`` input pixels yields ``O = T - 2 * halo`` output
pixels that need no blending: the outputs of neighbouring tiles simply abut. Two rules make
the tiled result identical to running the network on the whole (mirror-padded) image:

- every tile's output starts on the pooling grid (a multiple of ``2**poolings`` from the
  image origin), because the network is shift-equivariant only for such shifts; so tiles
  advance by ``O`` rounded down to that grid and their outputs overlap by a few pixels,
  each output pixel being written by exactly one tile;
- pixels outside the image are read mirrored, as if the whole image had been padded.

Nothing here touches pixels: a plan is a list of :class:`Tile` records that the predictor
(:mod:`napari_unet.core.network.predict`) executes and the tests check by invariants.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from ..config import UNetConfig
from .model import halo, nearest_valid_input_sizes, output_size

__all__ = [
    "MAX_HALO_SHARE",
    "Tile",
    "choose_tile_size",
    "usable_tile_size",
    "plan_tiles",
    "read_window",
    "smallest_tile",
    "tile_memory",
]

# Peak memory of a forward pass, measured for the presets on the CPU with torch 2.13
# (no_grad, float32, channels_last): about 6 x base_channels x 4 bytes per input pixel.
_BYTES_PER_PIXEL_AND_CHANNEL = 6 * 4


@dataclass(frozen=True)
class Tile:
    """One tile, per axis (rows, columns), in image pixel coordinates.

    start: where the tile's input window starts; may be negative or run past the image
        (those pixels are mirrored).
    size: the input window's size (a valid input size of the network).
    write: the image region this tile writes, as slices.
    crop: the part of the network's output that goes there, as slices.
    """

    start: tuple[int, int]
    size: tuple[int, int]
    write: tuple[slice, slice]
    crop: tuple[slice, slice]


def smallest_tile(config: UNetConfig) -> int:
    """The smallest input size that can tile an image: its output spans the pooling grid."""
    grid = 2**config.poolings
    size = nearest_valid_input_sizes(config, 1)[1]
    while output_size(config, size) < grid:
        size += grid
    return size


# A tile spends this share of its input pixels on halo at most: tile sizes asked for below
# it are enlarged (the light preset's 100 px tiles compute 98.6 % halo and ran 80x longer).
MAX_HALO_SHARE = 0.75


def halo_share(config: UNetConfig, tile: int) -> float:
    """Share of a square tile's input pixels that give no output (its halo)."""
    return 1.0 - (output_size(config, tile) / tile) ** 2


def usable_tile_size(
    config: UNetConfig, requested: int, *, memory: int, batch_size: int = 1
) -> tuple[int, str | None]:
    """The input tile size to use when ``requested`` px were asked for, and a note (None
    when it is used as given): rounded up to a valid size, enlarged until at most
    ``MAX_HALO_SHARE`` of it is halo, and shrunk until a batch fits in ``memory`` bytes.
    Raises ``ValueError`` for sizes that are not a whole number above 0."""
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
        raise ValueError(
            f"tile size {requested!r} must be a whole number of pixels above 0; leave it out "
            "to choose tiles automatically"
        )
    size = nearest_valid_input_sizes(config, min(requested, 1 << 20))[1]
    efficient = size
    while halo_share(config, efficient) > MAX_HALO_SHARE:
        efficient += 2**config.poolings
    fitting = efficient
    while fitting > smallest_tile(config) and tile_memory(config, fitting, batch_size) > memory:
        fitting = max(nearest_valid_input_sizes(config, fitting // 2)[1], smallest_tile(config))
    if fitting != efficient:
        need = tile_memory(config, efficient, batch_size) / 2**30
        note = (
            f"tile size {requested} needs about {need:.1f} GiB a batch, more than the "
            f"{memory / 2**30:.1f} GiB budget; using {fitting}"
        )
    elif efficient != size:
        note = (
            f"tile size {requested} spends {halo_share(config, size):.1%} of the work on "
            f"halo (output {output_size(config, size)} px); using {efficient} (output "
            f"{output_size(config, efficient)} px)"
        )
    elif size != requested:
        note = f"tile size {requested} is not a valid input size of this network; using {size}"
    else:
        note = None
    return fitting, note


def tile_memory(config: UNetConfig, tile: int, batch_size: int = 1) -> int:
    """Estimated peak bytes of a forward pass over ``batch_size`` square tiles of ``tile``."""
    return batch_size * _BYTES_PER_PIXEL_AND_CHANNEL * config.base_channels * tile * tile


def choose_tile_size(
    length: int, config: UNetConfig, *, memory: int, batch_size: int = 1, largest: int = 1100
) -> int:
    """The tile size for an axis of ``length`` px that computes the fewest input pixels.

    Candidates are the valid sizes from :func:`smallest_tile` up to ``largest`` whose
    batch fits in ``memory`` bytes (:func:`tile_memory`); among them the one with the
    least ``tiles x size`` along the axis wins (halo and overhang are waste), the smaller
    on ties. Raises ``MemoryError`` when not even the smallest tile fits.
    """
    grid = 2**config.poolings
    smallest = smallest_tile(config)
    if tile_memory(config, smallest, batch_size) > memory:
        raise MemoryError(
            f"a batch of {batch_size} tiles of {smallest} px needs about "
            f"{tile_memory(config, smallest, batch_size) / 2**20:.0f} MiB; only "
            f"{memory / 2**20:.0f} MiB are available"
        )
    best, best_cost = smallest, None
    for size in range(smallest, largest + 1, grid):
        if tile_memory(config, size, batch_size) > memory:
            break
        tile_size, tiles = _axis_plan(length, config, size)
        cost = tile_size * len(tiles)
        if best_cost is None or cost < best_cost:
            best, best_cost = tile_size, cost
    return best


def _axis_plan(
    length: int, config: UNetConfig, tile: int
) -> tuple[int, list[tuple[int, int, int]]]:
    """Input size and (input start, write start, write stop) of the tiles along one axis."""
    grid = 2**config.poolings
    margin = halo(config)
    # the smallest valid input whose output covers the whole axis, if it is no larger
    fits = nearest_valid_input_sizes(config, max(length, 1) + 2 * margin)[1]
    if fits <= tile:
        return fits, [(-margin, 0, length)]
    step = output_size(config, tile) // grid * grid
    if step < grid:
        raise ValueError(
            f"input tiles of {tile} px are too small to tile with: their output is under "
            f"{grid} px; use {smallest_tile(config)} or more"
        )
    starts = range(0, length, step)
    return tile, [(s - margin, s, min(s + step, length)) for s in starts]


def plan_tiles(
    shape: tuple[int, int],
    config: UNetConfig,
    tile_size: int | tuple[int, int],
    within: tuple[slice, slice] | None = None,
) -> list[Tile]:
    """Tiles covering an image of ``shape`` (H, W) with input tiles of ``tile_size``.

    ``tile_size`` (per axis, or one number for both) must be a valid input size; an axis
    shorter than one tile's output gets one smaller tile that just covers it. Every image
    pixel is written by exactly one tile. ``within`` (rows, columns): only the tiles of
    this plan whose outputs start there (a block of a large image). Raises ``ValueError``
    for invalid tile sizes.
    """
    sizes = (tile_size, tile_size) if np.isscalar(tile_size) else tuple(tile_size)
    for size in sizes:
        output_size(config, int(size))  # raises with the nearest valid sizes
    if min(shape) < 1:
        raise ValueError(f"cannot tile an empty image of shape {tuple(shape)}")
    (rows_size, rows), (cols_size, cols) = (
        _axis_plan(int(n), config, int(t)) for n, t in zip(shape, sizes, strict=True)
    )
    if within is not None:
        rows = [r for r in rows if within[0].start <= r[1] < within[0].stop]
        cols = [c for c in cols if within[1].start <= c[1] < within[1].stop]
    return [
        Tile(
            start=(r_in, c_in),
            size=(rows_size, cols_size),
            write=(slice(r0, r1), slice(c0, c1)),
            crop=(slice(0, r1 - r0), slice(0, c1 - c0)),
        )
        for (r_in, r0, r1), (c_in, c0, c1) in itertools.product(rows, cols)
    ]


def _mirror_indices(start: int, size: int, length: int) -> np.ndarray:
    """Indices start .. start + size - 1 folded into [0, length) by mirroring (edge repeated)."""
    index = np.remainder(np.arange(start, start + size), 2 * length)
    return np.minimum(index, 2 * length - 1 - index)


def read_window(image, start: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """The (..., size[0], size[1]) window of ``image`` at ``start``, mirrored beyond its edges.

    ``image`` is any array with the two spatial axes last: numpy, or a lazy array (dask,
    zarr) of which only the rows and columns the window needs are read.
    """
    height, width = image.shape[-2:]
    rows = _mirror_indices(start[0], size[0], height)
    cols = _mirror_indices(start[1], size[1], width)
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    block = np.asarray(image[..., r0:r1, c0:c1])
    return block[..., (rows - r0)[:, None], (cols - c0)[None, :]]
