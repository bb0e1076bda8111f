"""napari-paint-unet: the U-Net of Ronneberger, Fischer & Brox (2015) as a napari plugin.

The compute lives in :mod:`napari_unet.core` (numpy, scipy, torch; no GUI), model files in
:mod:`napari_unet.model_io`, the command line in :mod:`napari_unet.cli`. The napari widgets
under ``napari_unet._widgets`` are imported by napari through ``napari.yaml`` only, so that
importing this package never pulls in napari or Qt.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("napari-paint-unet")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
