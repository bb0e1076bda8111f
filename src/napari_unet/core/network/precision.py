"""Which arithmetic a network runs in: mixed precision only where it is faster.

On CUDA, autocast to bfloat16 (float16 on GPUs without it) in channels_last layout. On
the CPU the answer depends on the chip: with native bfloat16 instructions (AVX-512 BF16,
AMX, Arm BF16) oneDNN runs bfloat16 convolutions faster than float32, while without them
it emulates bfloat16 and is many times slower (docs/decisions/2026-12-01-cpu-precision.md).
So on a CPU whose oneDNN
reports bfloat16 support, :func:`choose_precision` times a few passes of the network in
both and keeps the faster; elsewhere it takes float32 without measuring (the emulated
passes alone would cost seconds). Measurements are remembered per network architecture,
input shape and pass, for the life of the process.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .model import UNet

__all__ = ["Precision", "choose_precision", "native_cpu_bfloat16"]

REPEATS = 2  # timed passes per candidate, after one untimed warm-up; the fastest counts
MARGIN = 1.2  # bfloat16 must be this much faster than float32 to be chosen


@dataclass(frozen=True)
class Precision:
    """How to run a network: the autocast dtype (None: float32) and the memory layout."""

    autocast: torch.dtype | None
    memory_format: torch.memory_format = torch.channels_last

    @property
    def name(self) -> str:
        """ "float32", "bfloat16" or "float16" (mixed precision by autocast)."""
        return "float32" if self.autocast is None else str(self.autocast).removeprefix("torch.")

    def autocast_on(self, device_type: str) -> torch.autocast:
        """The autocast context on ``device_type`` ("cpu", "cuda", ...); off for float32."""
        return torch.autocast(device_type, dtype=self.autocast, enabled=self.autocast is not None)


# CPU memory layouts: training steps are faster in the default layout, prediction in
# channels_last (docs/decisions/2026-12-01-cpu-precision.md).
CPU_TRAINING = Precision(None, torch.contiguous_format)
CPU_PREDICTION = Precision(None, torch.channels_last)
BFLOAT16 = Precision(torch.bfloat16, torch.channels_last)

_measured: dict[tuple, Precision] = {}


def native_cpu_bfloat16() -> bool:
    """Whether oneDNN runs bfloat16 natively on this CPU (not by emulation)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without oneDNN
        return False


def choose_precision(
    model: UNet,
    device: torch.device,
    input_shape: tuple[int, ...],
    *,
    training: bool,
    clock: Callable[[], float] = time.perf_counter,
) -> Precision:
    """The precision to run ``model`` in on ``device`` for inputs of ``input_shape``
    (N, C, H, W): forward and backward passes when ``training``, else forward only.

    CUDA: bfloat16 (or float16) autocast; MPS: float32; CPU: bfloat16 autocast where it
    runs natively and measured at least ``MARGIN`` times faster than float32 on a copy
    of the model (the model itself, its gradients and the random number generators are
    left as they were), else float32.
    """
    if device.type == "cuda":
        return Precision(torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    default = CPU_TRAINING if training else CPU_PREDICTION
    if device.type != "cpu":
        return Precision(None)
    if not native_cpu_bfloat16():
        return default
    key = (model.config, tuple(input_shape), training, torch.get_num_threads())
    if key not in _measured:
        seconds = {
            p: _time_passes(model, input_shape, p, training, clock) for p in (default, BFLOAT16)
        }
        faster = seconds[BFLOAT16] * MARGIN <= seconds[default]
        _measured[key] = BFLOAT16 if faster else default
    return _measured[key]


def _time_passes(
    model: UNet,
    input_shape: tuple[int, ...],
    precision: Precision,
    training: bool,
    clock: Callable[[], float],
) -> float:
    """Seconds of the fastest of ``REPEATS`` passes (after a warm-up) on a copy of the model."""
    trial = copy.deepcopy(model).to("cpu", memory_format=precision.memory_format)
    trial.train(training)
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(input_shape, generator=generator).contiguous(
        memory_format=precision.memory_format
    )
    best = float("inf")
    with torch.random.fork_rng(devices=[]), torch.set_grad_enabled(training):
        for repeat in range(REPEATS + 1):
            start = clock()
            with precision.autocast_on("cpu"):
                out = trial(x)
            if training:
                out.float().mean().backward()
            if repeat:
                best = min(best, clock() - start)
    return best
