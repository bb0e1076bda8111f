"""Which torch device to compute on."""

from __future__ import annotations

import torch

__all__ = ["pick_device"]


def pick_device(requested: str | torch.device | None = None) -> torch.device:
    """The requested device, or the best available: CUDA, then Apple MPS, then CPU.

    ``requested`` may be None or "auto" (choose), or any torch device string ("cpu",
    "cuda", "cuda:1", "mps"). Asking for a device that is not available raises
    ``ValueError`` naming the ones that are.
    """
    if requested is None or str(requested) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise ValueError(f"{requested!r} is not a device; use auto, cpu, cuda or mps") from None
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available()
        and (device.index is None or device.index < torch.cuda.device_count()),
        "mps": torch.backends.mps.is_available(),
    }
    if not available.get(device.type, False):
        usable = ["cpu"] + [name for name in ("cuda", "mps") if available[name]]
        raise ValueError(f"device {str(device)!r} is not available here; use {' or '.join(usable)}")
    return device
