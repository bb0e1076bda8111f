"""Data augmentation: elastic deformation (paper, Sec. 3.1) and the usual extras.

Two steps, kept apart so that tests can apply known parameters:

- :func:`sample_augmentation` draws the random parameters from an injected generator;
- :func:`augment` applies them, deterministically, to an image, its target and its weights
  in one call, on whatever device the tensors live (CPU or GPU).

The elastic field follows the paper: displacement vectors on a coarse grid (3 x 3) over the
output tile, drawn from N(0, 10 px), interpolated to every pixel bicubically. Rotation,
flips and scaling are folded into the same sampling coordinates, so every output pixel is
interpolated once. Outside the source image the data are mirrored.

Sampling: the image linearly (or with Keys' cubic convolution); the target *and the
weights* with the nearest pixel, from the same source pixel, so a weight always belongs to
the class it is paired with (interpolating weights across an annotation's edge would put
weight on pixels whose target is a placeholder) and no new label values appear. Zero
displacement with no other change reproduces the input exactly.

Pixel noise: Gaussian noise scaled to the image's own (:func:`noise_level`), so that the
tile looks like an image 1-2x as noisy (``AugmentConfig.noise``). A network trained on
one clean image otherwise fails on noisier images of the same sample
(docs/decisions/2026-12-06-noise-augmentation.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..config import AugmentConfig

__all__ = ["AugmentParams", "augment", "noise_level", "sample_augmentation"]

NOISE_SAMPLE = 1 << 20  # pixels per channel that noise_level reads at most


@dataclass(frozen=True)
class AugmentParams:
    """One draw of augmentation parameters (see :class:`~.config.AugmentConfig`).

    displacement: (2, grid, grid) float32, the (dy, dx) displacement in pixels at the nodes
        of a grid spanning the output tile, corners included.
    """

    displacement: np.ndarray
    angle: float = 0.0  # degrees, clockwise as napari shows the image (rows downwards)
    flip_rows: bool = False
    flip_columns: bool = False
    scale: float = 1.0  # > 1 zooms in
    gain: float = 1.0
    offset: float = 0.0
    gamma: float = 1.0
    noise: float = 0.0  # std of the added noise, as a multiple of the image's noise level
    noise_seed: int = 0  # of the noise field (torch's generator, on the CPU)

    @classmethod
    def identity(cls, grid: int = 3) -> AugmentParams:
        """Parameters that change nothing."""
        return cls(displacement=np.zeros((2, grid, grid), np.float32))


def sample_augmentation(
    rng: np.random.Generator, config: AugmentConfig | None = None
) -> AugmentParams:
    """Draw augmentation parameters with ``rng``; switched-off parts stay at identity."""
    config = config or AugmentConfig()
    grid = config.elastic_grid
    sigma = config.elastic_sigma if config.elastic else 0.0
    params = AugmentParams(
        displacement=rng.normal(0.0, sigma, size=(2, grid, grid)).astype(np.float32),
        angle=float(rng.uniform(0.0, 360.0)) if config.rotate else 0.0,
        flip_rows=bool(config.flip and rng.random() < 0.5),
        flip_columns=bool(config.flip and rng.random() < 0.5),
        scale=float(rng.uniform(*config.scale)),
        gain=float(rng.uniform(*config.gain)),
        offset=float(rng.uniform(*config.offset)),
        gamma=float(rng.uniform(*config.gamma)),
    )
    if config.noise[1] <= 1:  # drawn last: noise on or off, the rest is the same draw
        return params
    noisier = float(rng.uniform(*config.noise))  # x the image's noise; noises add in quadrature
    extra = math.sqrt(noisier**2 - 1.0)
    return replace(params, noise=extra, noise_seed=int(rng.integers(2**31)))


def noise_level(image: np.ndarray) -> np.ndarray:
    """Per channel of a (C, H, W) image, the standard deviation of its pixel noise: the
    median absolute deviation of the differences between horizontal neighbours, x 1.4826
    (Gaussian) / sqrt(2) (a difference holds two pixels' noise). Texture finer than a pixel
    counts as noise too. Images of more than ``NOISE_SAMPLE`` pixels are read at every
    n-th row. Returns float32 (C,)."""
    step = max(1, math.ceil(image.shape[1] * image.shape[2] / NOISE_SAMPLE))
    differences = np.diff(np.asarray(image[:, ::step], np.float32), axis=2).reshape(
        image.shape[0], -1
    )
    if differences.shape[1] == 0:
        return np.zeros(image.shape[0], np.float32)
    deviation = np.abs(differences - np.median(differences, axis=1, keepdims=True))
    return (1.4826 / math.sqrt(2.0) * np.median(deviation, axis=1)).astype(np.float32)


def augment(
    params: AugmentParams,
    image: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor,
    *,
    out_shape: tuple[int, int] | None = None,
    center: tuple[float, float] | None = None,
    image_order: str = "linear",
    noise_level: np.ndarray | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Warp an image, its target and its weights with the same transform, in one call.

    image: (C, H, W) float; target: (H, W) integer; weight: (H, W) float; one device.
    out_shape: (h, w) of the result (default (H, W)); the output tile is centred on
        ``center`` = (row, column) in the source (default: the image centre), so this also
        cuts a training tile out of a larger image.
    image_order: "linear" or "cubic" (Keys' cubic convolution, a = -0.5).
    noise_level: (C,) the image's pixel noise (:func:`noise_level`), which ``params.noise``
        scales; None: no noise is added.
    Returns image (C, h, w), target (h, w), weight (h, w), dtypes kept.
    """
    if image.ndim != 3 or target.shape != image.shape[1:] or weight.shape != target.shape:
        raise ValueError(
            f"expected image (C, H, W), target (H, W), weight (H, W); got "
            f"{tuple(image.shape)}, {tuple(target.shape)}, {tuple(weight.shape)}"
        )
    if image_order not in ("linear", "cubic"):
        raise ValueError(f"image_order {image_order!r} must be 'linear' or 'cubic'")
    height, width = image.shape[1:]
    out_h, out_w = out_shape or (height, width)
    rows, cols = _source_coordinates(params, (out_h, out_w), (height, width), center, image.device)
    rows, cols = _fold(rows, height), _fold(cols, width)
    order = 1 if image_order == "linear" else 3
    warped = _interpolate(image.float(), rows, cols, order)
    if params.noise > 0 and noise_level is not None:
        warped = warped + _noise(params, noise_level, warped.shape).to(warped.device)
    warped = warped.to(image.dtype)
    nearest = (
        _clamp(torch.round(rows).int(), height) * width + _clamp(torch.round(cols).int(), width)
    ).reshape(-1)
    warped_target = target.reshape(1, -1).index_select(1, nearest).reshape(out_h, out_w)
    warped_weight = weight.reshape(1, -1).index_select(1, nearest).reshape(out_h, out_w)
    return _intensity(warped, params), warped_target, warped_weight


def _noise(params: AugmentParams, level: np.ndarray, shape: torch.Size) -> torch.Tensor:
    """Gaussian noise of std ``params.noise`` x ``level`` per channel, drawn on the CPU
    from ``params.noise_seed`` (the same field on every device)."""
    generator = torch.Generator().manual_seed(params.noise_seed)
    scale = params.noise * torch.as_tensor(np.asarray(level, np.float32)).reshape(-1, 1, 1)
    return torch.randn(tuple(shape), generator=generator) * scale


def _source_coordinates(
    params: AugmentParams,
    out_shape: tuple[int, int],
    in_shape: tuple[int, int],
    center: tuple[float, float] | None,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(h, w) float32 row and column coordinates in the source for every output pixel."""
    out_h, out_w = out_shape
    if center is None:
        center = ((in_shape[0] - 1) / 2, (in_shape[1] - 1) / 2)
    rows = torch.arange(out_h, device=device, dtype=torch.float32)[:, None] - (out_h - 1) / 2
    cols = torch.arange(out_w, device=device, dtype=torch.float32)[None, :] - (out_w - 1) / 2
    rows, cols = rows.expand(out_h, out_w), cols.expand(out_h, out_w)
    if params.flip_rows:
        rows = -rows
    if params.flip_columns:
        cols = -cols
    if params.angle % 360:
        theta = np.deg2rad(params.angle)
        cos, sin = float(np.cos(theta)), float(np.sin(theta))
        rows, cols = cos * rows - sin * cols, sin * rows + cos * cols
    if params.scale != 1.0:
        rows, cols = rows / params.scale, cols / params.scale
    if np.any(params.displacement):
        displacement = torch.as_tensor(params.displacement, dtype=torch.float32, device=device)
        row_weights = _bicubic_matrix(out_h, displacement.shape[1], device)
        col_weights = _bicubic_matrix(out_w, displacement.shape[2], device)
        field = row_weights @ displacement @ col_weights.T  # (2, h, w), separable bicubic
        rows, cols = rows + field[0], cols + field[1]
    return rows + center[0], cols + center[1]


def _bicubic_matrix(size: int, nodes: int, device: torch.device) -> torch.Tensor:
    """(size, nodes) weights that interpolate ``nodes`` values spanning [0, size - 1]
    (node k at (size - 1) * k / (nodes - 1)) with Keys' cubic convolution, edge nodes
    repeated beyond the ends. Exact at the nodes."""
    position = torch.arange(size, dtype=torch.float64) * ((nodes - 1) / max(size - 1, 1))
    base = torch.floor(position)
    weights = _keys_weights(position - base)
    matrix = torch.zeros(size, nodes, dtype=torch.float64)
    for offset, w in zip((-1, 0, 1, 2), weights, strict=True):
        node = (base.long() + offset).clamp(0, nodes - 1)
        matrix.scatter_add_(1, node[:, None], w[:, None])
    return matrix.to(device=device, dtype=torch.float32)


def _fold(coordinates: torch.Tensor, size: int) -> torch.Tensor:
    """Mirror float pixel coordinates into [-0.5, size - 0.5] (the image's extent, the edge
    pixel repeated: numpy's "symmetric"). Integers stay exactly as they are."""
    if float(coordinates.min()) >= 0 and float(coordinates.max()) <= size - 1:
        return coordinates
    folded = torch.remainder(coordinates + 0.5, 2 * size)
    return (size - 0.5) - (folded - size).abs()


def _clamp(index: torch.Tensor, size: int) -> torch.Tensor:
    """Integer taps of folded coordinates into [0, size): the pixel just outside an edge
    mirrors onto the edge pixel."""
    return index.clamp(0, size - 1)


def _mirror(index: torch.Tensor, size: int) -> torch.Tensor:
    """Integer taps within 2 pixels of the image into [0, size), mirrored ("symmetric")."""
    index = torch.minimum(index, (2 * size - 1) - index)
    return torch.maximum(index, -1 - index)


def _keys_weights(t: torch.Tensor, a: float = -0.5) -> list[torch.Tensor]:
    """Keys cubic-convolution weights of the taps at floor(x) - 1 .. floor(x) + 2.

    t = x - floor(x), a tensor in [0, 1); returns four tensors like t.
    """

    def near(s):  # |s| <= 1
        return ((a + 2) * s - (a + 3)) * s * s + 1

    def far(s):  # 1 < |s| < 2
        return ((a * s - 5 * a) * s + 8 * a) * s - 4 * a

    return [far(1 + t), near(t), near(1 - t), far(2 - t)]


def _interpolate(
    image: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, order: int
) -> torch.Tensor:
    """Sample (C, H, W) at coordinates (h, w) folded into the image: order 1 linear, 3 cubic."""
    channels, height, width = image.shape
    flat = image.reshape(channels, -1)
    r0, c0 = torch.floor(rows), torch.floor(cols)
    tr, tc = rows - r0, cols - c0
    r0, c0 = r0.int(), c0.int()  # int32 indices: index_select is fastest with them
    if order == 1:
        offsets, row_weights, col_weights = (0, 1), [1 - tr, tr], [1 - tc, tc]
    else:
        offsets, row_weights, col_weights = (-1, 0, 1, 2), _keys_weights(tr), _keys_weights(tc)
    fix = _clamp if order == 1 else _mirror
    col_index = [fix(c0 + o, width) for o in offsets]
    out = torch.zeros((channels, *rows.shape), dtype=image.dtype, device=image.device)
    for o, w_row in zip(offsets, row_weights, strict=True):
        row_start = fix(r0 + o, height) * width
        along_row = torch.zeros_like(out)
        for ci, w_col in zip(col_index, col_weights, strict=True):
            taps = flat.index_select(1, (row_start + ci).reshape(-1)).reshape(out.shape)
            along_row += taps * w_col
        out += along_row * w_row
    return out


def _intensity(image: torch.Tensor, params: AugmentParams) -> torch.Tensor:
    """gain * sign(x) |x|^gamma + offset (on the normalised image; identity by default)."""
    if params.gamma != 1.0:
        image = torch.sign(image) * image.abs() ** params.gamma
    if params.gain != 1.0:
        image = image * params.gain
    if params.offset != 0.0:
        image = image + params.offset
    return image
