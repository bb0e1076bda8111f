"""The U-Net of Ronneberger, Fischer & Brox (2015) and its size arithmetic.

Network (paper, Fig. 1): at each of ``depth`` resolution levels a block of two 3x3
convolutions, each followed by a ReLU; 2x2 max-pooling with stride 2 between levels, the
number of feature channels doubling at each; dropout at the end of the contracting path; on
the way up a 2x2 up-convolution halving the channels, concatenation with the centre-cropped
features of the same level, and again two 3x3 convolutions + ReLU; a final 1x1 convolution
to the class scores.

With unpadded ("valid") convolutions the output is smaller than the input by a fixed margin
(the *halo*) on each side, and only some input sizes are possible: every feature map that is
pooled must have an even size. The functions here say which sizes work; all tiling and
training code uses them instead of doing its own arithmetic. Sizes are per axis: a tile of
572 x 572 pixels is valid because 572 is.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn

from ..config import UNetConfig
from .layers import UNetLayers

__all__ = [
    "UNet",
    "layer_arguments",
    "halo",
    "input_size_for_output",
    "is_valid_input_size",
    "nearest_valid_input_sizes",
    "output_size",
    "valid_input_sizes",
]


# --------------------------------------------------------------------------- size arithmetic


def _output_size_or_none(config: UNetConfig, size: int) -> int | None:
    """Walk one axis of ``size`` pixels through the network; None where it is impossible."""
    factor = 2**config.poolings
    if config.padding == "same":
        return size if size >= factor and size % factor == 0 else None
    x = size
    for _ in range(config.poolings):
        x -= 4  # two unpadded 3x3 convolutions
        if x < 2 or x % 2:  # 2x2 pooling with stride 2 needs an even size
            return None
        x //= 2
    x -= 4  # the bottom block
    if x < 1:
        return None
    for _ in range(config.poolings):
        x = 2 * x - 4  # up-convolution, then two 3x3 convolutions
        if x < 1:
            return None
    return x


def is_valid_input_size(config: UNetConfig, size: int) -> bool:
    """Whether an axis of ``size`` pixels can pass through the network."""
    return _output_size_or_none(config, int(size)) is not None


@functools.lru_cache(maxsize=4096)  # tile planning asks for the same sizes many times
def nearest_valid_input_sizes(config: UNetConfig, size: int) -> tuple[int | None, int]:
    """The largest valid input size <= ``size`` (None if there is none) and the smallest >= it.

    Valid sizes are ``2**poolings`` apart, so the search below takes a few steps at most
    (but from size 1, as :func:`halo` asks, it walks up to the smallest valid size).
    """
    below = next((s for s in range(int(size), 0, -1) if is_valid_input_size(config, s)), None)
    above = next(s for s in range(max(int(size), 1), 1 << 30) if is_valid_input_size(config, s))
    return below, above


def _invalid_size_message(config: UNetConfig, size: int) -> str:
    below, above = nearest_valid_input_sizes(config, size)
    use = f"{below} or {above}" if below is not None and below != above else f"{above}"
    kind = "valid" if config.padding == "valid" else "same"
    return (
        f"input size {size} is not valid for a U-Net of depth {config.depth} with {kind} "
        f"convolutions; use {use}"
    )


def output_size(config: UNetConfig, size: int) -> int:
    """Output pixels along an axis for ``size`` input pixels.

    Raises ``ValueError`` naming the nearest valid sizes when ``size`` is not valid.

    >>> from napari_unet.core.config import preset
    >>> output_size(preset("paper"), 572)
    388
    """
    out = _output_size_or_none(config, int(size))
    if out is None:
        raise ValueError(_invalid_size_message(config, int(size)))
    return out


@functools.lru_cache(maxsize=64)
def halo(config: UNetConfig) -> int:
    """Pixels lost on each side of the input (the context a tile needs around its output).

    ``6 * 2**poolings - 4`` for valid convolutions (92 for the paper's network), 0 for same.
    """
    if config.padding == "same":
        return 0
    size = nearest_valid_input_sizes(config, 1)[1]
    return (size - output_size(config, size)) // 2


def input_size_for_output(config: UNetConfig, size: int) -> int:
    """The input size whose output is exactly ``size`` pixels along an axis.

    Raises ``ValueError`` naming the nearest output sizes that are possible.
    """
    size = int(size)
    candidate = size + 2 * halo(config)
    if is_valid_input_size(config, candidate):
        return candidate
    below, above = nearest_valid_input_sizes(config, candidate)
    outputs = [output_size(config, s) for s in (below, above) if s is not None]
    outputs = [o for o in outputs if o >= 1]
    raise ValueError(
        f"output size {size} is not possible for a U-Net of depth {config.depth} with "
        f"{config.padding} convolutions; use {' or '.join(map(str, outputs))}"
    )


def valid_input_sizes(config: UNetConfig, low: int, high: int) -> list[int]:
    """All valid input sizes in ``[low, high]``, ascending."""
    return [s for s in range(max(int(low), 1), int(high) + 1) if is_valid_input_size(config, s)]


# --------------------------------------------------------------------------- the network


def layer_arguments(config: UNetConfig) -> dict:
    """The keyword arguments of :class:`~.layers.UNetLayers` for ``config``."""
    names = ("in_channels", "classes", "depth", "base_channels", "padding", "dropout")
    return {**{n: getattr(config, n) for n in names}, "batch_norm": config.batch_norm}


class UNet(UNetLayers):
    """U-Net for 2D images, built from a :class:`~napari_unet.core.config.UNetConfig`
    (the layers: :mod:`.layers`).

    ``forward`` takes a float tensor of shape (N, in_channels, H, W), H and W valid input
    sizes (:func:`is_valid_input_size`), and returns class scores (logits, before softmax)
    of shape (N, classes, output_size(H), output_size(W)).

    Weights are drawn as in the paper (Sec. 3): normal with standard deviation
    sqrt(2 / N), N the number of inputs of one output unit (3 * 3 * in_channels for a 3x3
    convolution; in_channels for the 2x2 stride-2 up-convolution and the 1x1 convolution,
    whose output units each see one tap per input channel). Biases start at zero.

    >>> from napari_unet.core.config import preset
    >>> net = UNet(preset("paper"))
    >>> sum(p.numel() for p in net.parameters())
    31030658
    """

    def __init__(self, config: UNetConfig | None = None) -> None:
        config = config if config is not None else UNetConfig()
        super().__init__(**layer_arguments(config))
        self.config = config
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """He initialisation (see the class docstring); ``generator`` makes it reproducible."""
        for module in self.modules():
            if isinstance(module, nn.ConvTranspose2d):
                # weight (in, out, kh, kw); stride == kernel: one tap per input channel
                fan_in = module.weight.shape[0] * math.prod(
                    k // s for k, s in zip(module.kernel_size, module.stride, strict=True)
                )
            elif isinstance(module, nn.Conv2d):
                fan_in = module.weight[0].numel()  # in_channels * kh * kw
            elif isinstance(module, nn.BatchNorm2d):
                module.reset_parameters()
                continue
            else:
                continue
            with torch.no_grad():
                module.weight.normal_(0.0, math.sqrt(2.0 / fan_in), generator=generator)
                if module.bias is not None:
                    module.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        return super().forward(x)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4:
            raise ValueError(
                f"the U-Net takes a batch of shape (N, C, H, W); got {x.ndim} dimensions "
                f"{tuple(x.shape)}"
            )
        if x.shape[1] != self.config.in_channels:
            raise ValueError(
                f"this U-Net was built for {self.config.in_channels} input channel(s); the "
                f"input has {x.shape[1]}"
            )
        for size in x.shape[-2:]:
            if not is_valid_input_size(self.config, size):
                raise ValueError(_invalid_size_message(self.config, size))

    # Size arithmetic of this network (the functions above, bound to its config).
    def output_size(self, size: int) -> int:
        return output_size(self.config, size)

    @property
    def halo(self) -> int:
        return halo(self.config)
