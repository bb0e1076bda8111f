"""Which torch device to compute on."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["cpu_threads", "pick_device"]


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


@contextmanager
def cpu_threads(count: int | None) -> Iterator[None]:
    """Compute on ``count`` CPU threads inside the block (None or 0: torch's default, one
    per core), and restore the number before it after. On a CPU that other programs keep
    busy, fewer threads can be several times faster: torch's threads wait for each other
    at every operation, so one that lost its core holds up the rest."""
    if count is not None and count < 0:
        raise ValueError(f"CPU threads must be 1 or more (0: one per core), not {count}")
    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
