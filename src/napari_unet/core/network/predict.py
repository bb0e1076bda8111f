"""Running a U-Net over an image.

:func:`predict_image` is the plain, whole-image version: mirror-pad the image by the
network's halo (paper, Fig. 2), run it once, crop. It is the reference that faster,
tiled prediction must reproduce.

With ``flips``, both also run the network on the image's three mirror images (flipped
up-down, left-right, both) and average the four probabilities, flipped back: four times
the work, for probabilities that no longer depend on which way up the image lies. What is
flipped is the mirror-padded input, so each tile can flip its own window and the tiled
result still equals the whole-image one.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import numpy as np
import torch

from ..config import NormalizationConfig
from ..events import Status, TilesDone
from ..images import check_finite, check_plane, intensity_range, normalize
from .model import UNet, halo, nearest_valid_input_sizes
from .precision import PRECISIONS, Precision, choose_precision, named_precision
from .tiling import choose_tile_size, plan_tiles, read_window, smallest_tile, usable_tile_size

__all__ = ["predict_image", "predict_tiled", "predict_tiles"]

MAX_TILE = 1100  # px per axis: the largest tile chosen automatically
CPU_MEMORY = 2 * 2**30  # bytes a batch of tiles may take on the CPU (less on small machines)
PRECISION_TILE = 256  # px: the tile on which "auto" precision is measured on the CPU
MIRRORS = ((), (-2,), (-1,), (-2, -1))  # axes flipped: the image and its 3 mirror images


@torch.no_grad()
def predict_image(
    model: UNet,
    image: np.ndarray,
    normalization: NormalizationConfig | None = None,
    *,
    device: str | torch.device | None = None,
    flips: bool = False,
) -> np.ndarray:
    """Class probabilities for a whole 2D image.

    image: (H, W) or (1, H, W) for a one-channel model, (C, H, W) for C input channels.
    Returns float32 probabilities of shape (classes, H, W) that sum to 1 over classes.
    device: where to compute (default: where the model is); the model is moved there.

    The image is normalised (:func:`~napari_unet.core.images.normalize`), mirrored
    by the halo on every side and, on the bottom and right, by as much more as the next
    valid input size needs; the output is cropped back to (H, W). With ``flips``, the mean
    over the padded input and its mirror images (module docstring).
    """
    image = _with_channel_axis(model, np.asarray(image))
    x = normalize(image, normalization)
    config = model.config
    height, width = x.shape[-2:]
    margin = halo(config)
    pads = []
    for size in (height, width):
        padded = nearest_valid_input_sizes(config, size + 2 * margin)[1]
        pads.append((margin, padded - size - margin))
    x = np.pad(x, [(0, 0), *pads], mode="symmetric")
    if device is None:
        device = next(model.parameters()).device
    was_training = model.training
    model.to(device).eval()
    try:
        probabilities = _mirrored_mean(model, torch.from_numpy(x)[None].to(device), flips)
    finally:
        model.train(was_training)
    return probabilities[0, :, :height, :width].cpu().numpy()


def predict_tiled(
    model: UNet,
    image: np.ndarray,
    normalization: NormalizationConfig | None = None,
    *,
    tile_size: int | None = None,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
    precision: str = "auto",
    memory: int | None = None,
    out=None,
    intensity: tuple[float, float] | None = None,
    flips: bool = False,
) -> Generator[TilesDone | Status, None, np.ndarray]:
    """Class probabilities for a 2D image, tile by tile; equal to :func:`predict_image`.

    image: (H, W) or (C, H, W): numpy, or a lazy array (dask, zarr) of which only each
        tile's window is read (the percentiles of large images come from a subsample).
    out: where to write the probabilities, any array of shape (classes, H, W) that takes
        slice assignment (a zarr array keeps memory bounded for huge images); by default
        a new float32 numpy array.
    tile_size: input pixels per axis, rounded up to the next valid size, enlarged where it
        would spend most of the work on halo and shrunk where a batch would not fit in
        memory (:func:`~.tiling.usable_tile_size`; a :class:`Status` says so). By default each
        axis gets the size that wastes the fewest pixels on halo and overhang
        (:func:`~.tiling.choose_tile_size`) within ``memory`` bytes per batch: by default
        60 % of a CUDA device's free memory, else 2 GiB (at most a quarter of the RAM).
    batch_size: tiles per forward pass; by default 1 on the CPU (larger tiles waste less
        halo) and 4 elsewhere.
    device: where to compute (default: where the model is); the model is moved there.
    precision: "auto" (:func:`~.precision.choose_precision`), or "float32", "bfloat16",
        "float16" to force one. Convolutions run in channels_last memory layout (the
        model's parameters are converted in place).
    intensity: the (low, high) intensities that map to 0 and 1, instead of the image's
        percentiles: for a crop of a larger image, pass the whole image's range.
    flips: average over the image and its mirror images, as :func:`predict_image` does
        (each tile's window is flipped; four times the work, about the same memory).
    When the device runs out of memory, the batch and then the tile are halved and the
    plan restarts (the result does not depend on the tiling).
    Yields a :class:`TilesDone` after each batch; returns float32 (classes, H, W).
    Use ``probabilities = yield from predict_tiled(...)`` or
    :func:`~napari_unet.core.events.drain`.
    """
    config = model.config
    _check(model, image, precision)
    low, high = intensity or intensity_range(image, normalization)
    shape = tuple(image.shape[-2:])
    device = torch.device(device) if device is not None else next(model.parameters()).device
    run_as = _precision(model, device, precision)
    if batch_size is None:
        batch_size = 1 if device.type == "cpu" else 4
    tile, note = _tile_size(config, shape, tile_size, batch_size, device, memory)
    if note:
        yield Status(note)
    if out is None:
        out = np.empty((config.classes, *shape), np.float32)
    elif tuple(out.shape) != (config.classes, *shape):
        raise ValueError(f"out has shape {tuple(out.shape)}; expected {(config.classes, *shape)}")
    was_training = model.training
    model.to(device=device, memory_format=run_as.memory_format).eval()
    try:
        while True:
            tiles = plan_tiles(shape, config, tile)
            try:
                for first in range(0, len(tiles), batch_size):
                    batch = tiles[first : first + batch_size]
                    windows = np.stack([_window(image, t, low, high) for t in batch])
                    probabilities = _run(model, windows, device, run_as, flips)
                    for t, p in zip(batch, probabilities, strict=True):
                        out[(slice(None), *t.write)] = p[(slice(None), *t.crop)]
                    yield TilesDone(done=first + len(batch), total=len(tiles))
                return out
            except (torch.OutOfMemoryError, RuntimeError) as error:
                if not _out_of_memory(error):
                    raise
                batch_size, tile = _smaller(config, device, batch_size, tile)
    finally:
        model.train(was_training)


def predict_tiles(
    model: UNet,
    image,
    tiles: list,
    intensity: tuple[float, float],
    *,
    device: str | torch.device = "cpu",
    precision: str = "auto",
    flips: bool = False,
):
    """(tile, probabilities of its write region) for some ``tiles`` of a whole image's
    plan (:func:`~.tiling.plan_tiles`), one at a time: exactly what :func:`predict_tiled`
    writes there, for a caller that computes a part of a large image (a block)."""
    device = torch.device(device)
    run_as = _precision(model, device, precision)
    model.to(device=device, memory_format=run_as.memory_format).eval()
    for tile in tiles:
        window = _window(image, tile, *intensity)[None]
        probabilities = _run(model, window, device, run_as, flips)[0]
        yield tile, probabilities[(slice(None), *tile.crop)]


def _check(model: UNet, image, precision: str) -> None:
    """Raise ``ValueError`` for what :func:`predict_tiled` cannot do."""
    if model.config.padding != "valid":
        raise ValueError(
            "tiled prediction is seamless only for networks with valid convolutions; this "
            "one pads ('same'): use predict_image, or a valid-convolution model"
        )
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not known; use one of {PRECISIONS}")
    check_plane(image.shape, model.config.in_channels)


def _tile_size(
    config, shape: tuple[int, int], tile_size: int | None, batch_size: int, device, memory
) -> tuple[tuple[int, int], str | None]:
    """Input px per axis, and a note when ``tile_size`` had to be changed: by default the
    size per axis that wastes the fewest pixels within the memory budget."""
    budget = memory if memory is not None else _memory_budget(device)
    if tile_size is not None:
        size, note = usable_tile_size(config, tile_size, memory=budget, batch_size=batch_size)
        return (size, size), note
    sizes = tuple(
        choose_tile_size(n, config, memory=budget, batch_size=batch_size, largest=MAX_TILE)
        for n in shape
    )
    return sizes, None


def _out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` says the device ran out of memory (the CPU allocator raises a
    plain RuntimeError, CUDA an OutOfMemoryError)."""
    message = str(error)
    return isinstance(error, torch.OutOfMemoryError) or (
        "can't allocate memory" in message or "DefaultCPUAllocator" in message
    )


def _smaller(config, device, batch_size: int, tile: tuple[int, int]) -> tuple[int, tuple]:
    """After running out of memory: half the batch, else half the tile; raises
    ``MemoryError`` when both are as small as they go."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
    if batch_size > 1:
        return batch_size // 2, tile
    smallest = smallest_tile(config)
    if max(tile) > smallest:
        return batch_size, tuple(
            max(nearest_valid_input_sizes(config, t // 2)[1], smallest) for t in tile
        )
    raise MemoryError(
        f"out of memory on {device} even with one tile of {tile[0]} px; "
        "free memory or use another device (e.g. cpu)"
    )


def _window(image, tile, low: float, high: float) -> np.ndarray:
    """The tile's normalised (C, h, w) float32 input window."""
    window = read_window(image, tile.start, tile.size).astype(np.float32)
    check_finite(window)
    window = (window - low) / (high - low)
    return window[None] if window.ndim == 2 else window


def _memory_budget(device: torch.device) -> int:
    """Bytes a batch of tiles may use on ``device``."""
    if device.type == "cuda":
        return int(0.6 * torch.cuda.mem_get_info(device)[0])
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not a POSIX system
        return CPU_MEMORY
    return min(CPU_MEMORY, total // 4)


def _precision(model: UNet, device: torch.device, precision: str) -> Precision:
    """How to run ``model`` for ``precision``: "auto" measures on the CPU
    (:func:`~napari_unet.core.network.precision.choose_precision`, on one tile of about
    ``PRECISION_TILE`` px, once per architecture and machine); the others are forced."""
    if precision == "auto":
        size = nearest_valid_input_sizes(model.config, PRECISION_TILE)[1]
        shape = (1, model.config.in_channels, size, size)
        return choose_precision(model, device, shape, training=False)
    return named_precision(precision, device, training=False)


def _run(
    model: UNet, windows: np.ndarray, device: torch.device, precision: Precision, flips: bool
) -> np.ndarray:
    """Softmax probabilities (float32, numpy) of a batch of input windows."""
    batch = torch.from_numpy(windows).to(device)
    with torch.no_grad(), precision.autocast_on(device.type):
        probabilities = _mirrored_mean(model, batch, flips, precision.memory_format)
    return probabilities.cpu().numpy()


def _mirrored_mean(
    model: UNet,
    batch: torch.Tensor,
    flips: bool,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> torch.Tensor:
    """Softmax probabilities of a (N, C, h, w) batch; with ``flips``, the mean over the batch
    and its mirror images, each flipped back. One mirror image at a time: the peak memory
    of one pass."""
    mirrors = MIRRORS if flips else MIRRORS[:1]
    total = None
    for axes in mirrors:
        x = batch.flip(axes) if axes else batch
        probabilities = torch.softmax(model(x.contiguous(memory_format=memory_format)).float(), 1)
        probabilities = probabilities.flip(axes) if axes else probabilities
        total = probabilities if total is None else total + probabilities
    return total / len(mirrors)


def _with_channel_axis(model: UNet, image: np.ndarray) -> np.ndarray:
    """(C, H, W) view of an (H, W) or (C, H, W) image; checks the channel count."""
    check_plane(image.shape, model.config.in_channels)
    return image[None] if image.ndim == 2 else image
