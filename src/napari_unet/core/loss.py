"""The training loss: pixel-wise softmax cross-entropy weighted by w(x) (paper, eq. 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["weighted_cross_entropy"]


def weighted_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor
) -> torch.Tensor:
    """Mean of ``w(x) * -log p_target(x)(x)`` over the annotated pixels of the batch.

    logits: (N, classes, H, W) class scores (any float dtype; computed in float32).
    target: (N, H, W) integer class per pixel.
    weight: (N, H, W) float weights, 0 where a pixel is not annotated.

    Dividing by the number of annotated pixels (weight > 0), not by H * W, keeps the scale
    of the loss independent of how much of a tile is annotated. Tiles without annotated
    pixels add nothing; a batch without any gives 0 (with a gradient of 0), never NaN.
    """
    if logits.ndim != 4 or target.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(
            f"logits (N, C, H, W) and target (N, H, W) do not fit: {tuple(logits.shape)} and "
            f"{tuple(target.shape)}"
        )
    if weight.shape != target.shape:
        raise ValueError(
            f"weight {tuple(weight.shape)} must have the target's shape {tuple(target.shape)}"
        )
    per_pixel = F.cross_entropy(logits.float(), target.long(), reduction="none")
    annotated = (weight > 0).sum().clamp(min=1)
    return (per_pixel * weight.float()).sum() / annotated
