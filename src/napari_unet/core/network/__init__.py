"""The network and how it runs: the U-Net and its size arithmetic (:mod:`.model`), the
overlap-tile plan (:mod:`.tiling`), prediction (:mod:`.predict`), the device
(:mod:`.device`) and the arithmetic precision (:mod:`.precision`)."""

from .device import pick_device
from .model import UNet, halo, nearest_valid_input_sizes, output_size
from .predict import predict_image, predict_tiled

__all__ = [
    "UNet",
    "halo",
    "nearest_valid_input_sizes",
    "output_size",
    "pick_device",
    "predict_image",
    "predict_tiled",
]
