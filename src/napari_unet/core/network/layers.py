"""The U-Net's layers, in plain torch (Ronneberger, Fischer & Brox 2015, Fig. 1).

This module imports nothing but torch, so that it can travel as the architecture's source
code in a bioimage.io model package and be run by other tools; :class:`~.model.UNet`
builds on it. At each of ``depth`` resolution levels a block of two 3x3 convolutions, each
followed by (optional batch normalisation and) a ReLU; 2x2 max-pooling with stride 2
between levels, the channels doubling at each; dropout at the end of the contracting path;
on the way up a 2x2 up-convolution halving the channels, concatenation with the
centre-cropped features of the same level, and two 3x3 convolutions + ReLU; a final 1x1
convolution to the class scores.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["UNetLayers", "UNetProbabilities"]


class _ConvBlock(nn.Sequential):
    """Two 3x3 convolutions, each followed by (optional batch norm and) a ReLU."""

    def __init__(self, in_channels: int, out_channels: int, same: bool, batch_norm: bool):
        layers: list[nn.Module] = []
        for c_in in (in_channels, out_channels):
            layers.append(nn.Conv2d(c_in, out_channels, 3, padding=int(same), bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


def _center_crop(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    top = (x.shape[-2] - height) // 2
    left = (x.shape[-1] - width) // 2
    return x[..., top : top + height, left : left + width]


class UNetLayers(nn.Module):
    """The network: (N, in_channels, H, W) -> class scores (N, classes, h, w), where h and
    w are H and W less the halo on each side for ``padding="valid"``."""

    def __init__(
        self,
        in_channels: int = 1,
        classes: int = 2,
        depth: int = 5,
        base_channels: int = 64,
        padding: str = "valid",
        dropout: float = 0.5,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        same = padding == "same"
        widths = [base_channels * 2**level for level in range(depth)]
        self.down = nn.ModuleList(
            _ConvBlock(c_in, c_out, same, batch_norm)
            for c_in, c_out in zip([in_channels, *widths[:-1]], widths, strict=True)
        )
        self.pool = nn.MaxPool2d(2, stride=2)
        self.dropout = nn.Dropout(dropout)
        # Expanding path, from the bottom up: widths[level + 1] -> widths[level].
        levels = range(depth - 2, -1, -1)
        self.upconv = nn.ModuleList(
            nn.ConvTranspose2d(widths[lv + 1], widths[lv], 2, stride=2) for lv in levels
        )
        self.up = nn.ModuleList(
            _ConvBlock(2 * widths[lv], widths[lv], same, batch_norm) for lv in levels
        )
        self.head = nn.Conv2d(widths[0], classes, 1)
        self.poolings = depth - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scores(x)

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (logits). Written so that TorchScript compiles it."""
        skips: list[torch.Tensor] = []
        for level, block in enumerate(self.down):
            x = block(x)
            if level < self.poolings:
                skips.append(x)
                x = self.pool(x)
        x = self.dropout(x)  # end of the contracting path
        level = 0
        for upconv, block in zip(self.upconv, self.up):  # noqa: B905 (TorchScript: no strict)
            x = upconv(x)
            skip = skips[len(skips) - 1 - level]
            x = torch.cat([_center_crop(skip, x.shape[-2], x.shape[-1]), x], dim=1)
            x = block(x)
            level += 1
        return self.head(x)


class UNetProbabilities(UNetLayers):
    """The network with a softmax over its classes: what a bioimage.io package runs
    (class probabilities, background first)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.scores(x), dim=1)
