"""Running a U-Net over an image.

:func:`predict_image` is the plain, whole-image version: mirror-pad the image by the
network's halo (paper, Fig. 2), run it once, crop. It is the reference that faster,
tiled prediction must reproduce.
"""

from __future__ import annotations

import numpy as np
import torch

from .config import NormalizationConfig
from .model import UNet, halo, nearest_valid_input_sizes
from .normalization import normalize

__all__ = ["predict_image"]


@torch.no_grad()
def predict_image(
    model: UNet,
    image: np.ndarray,
    normalization: NormalizationConfig | None = None,
    *,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Class probabilities for a whole 2D image.

    image: (H, W) or (1, H, W) for a one-channel model, (C, H, W) for C input channels.
    Returns float32 probabilities of shape (classes, H, W) that sum to 1 over classes.

    The image is normalised (:func:`~napari_unet.core.normalization.normalize`), mirrored
    by the halo on every side and, on the bottom and right, by as much more as the next
    valid input size needs; the output is cropped back to (H, W).
    """
    config = model.config
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[None]
    if image.ndim != 3 or image.shape[0] != config.in_channels:
        want = "(H, W)" if config.in_channels == 1 else f"({config.in_channels}, H, W)"
        raise ValueError(f"this model takes images of shape {want}; got shape {image.shape}")
    x = normalize(image, normalization)
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
    model.eval()
    try:
        logits = model(torch.from_numpy(x)[None].to(device))
    finally:
        model.train(was_training)
    probabilities = torch.softmax(logits.float(), dim=1)[0, :, :height, :width]
    return probabilities.cpu().numpy()
