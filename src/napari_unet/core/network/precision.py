"""Which arithmetic a network runs in: mixed precision only where it is faster.

On CUDA, autocast to bfloat16 (float16 on GPUs without it) in channels_last layout. On
the CPU the answer depends on the chip: with native bfloat16 instructions (AVX-512 BF16,
AMX, Arm BF16) oneDNN runs bfloat16 convolutions faster than float32, while without them
it emulates bfloat16 and is many times slower (docs/decisions/2026-12-01-cpu-precision.md).
So on a CPU whose oneDNN
reports bfloat16 support, :func:`choose_precision` times a few passes of the network in
both and keeps the faster; elsewhere it takes float32 without measuring (the emulated
passes alone would cost seconds). A measurement is made once per machine, network
architecture, input shape and pass, and remembered in a small JSON file
(``$NAPARI_UNET_CACHE_DIR``, else ``$XDG_CACHE_HOME/napari-unet``, else
``~/.cache/napari-unet``): later runs take the same answer at once, so seeded training
gives the same model run after run on one machine.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import PRECISIONS
from .model import UNet

__all__ = [
    "PRECISIONS",
    "Precision",
    "choose_precision",
    "named_precision",
    "native_cpu_bfloat16",
    "will_measure",
]


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

_measured: dict[str, Precision] = {}


def native_cpu_bfloat16() -> bool:
    """Whether oneDNN runs bfloat16 natively on this CPU (not by emulation)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without oneDNN
        return False


def named_precision(name: str, device: torch.device, *, training: bool) -> Precision:
    """The :class:`Precision` called ``name`` ("float32", "bfloat16", "float16") on
    ``device``, in the memory layout that suits it."""
    if name not in PRECISIONS[1:]:
        raise ValueError(f"precision {name!r} is not known; use one of {', '.join(PRECISIONS)}")
    if name == "float32":
        if device.type == "cpu":
            return CPU_TRAINING if training else CPU_PREDICTION
        return Precision(None)
    if name == "float16" and device.type == "cpu":
        raise ValueError("float16 runs on GPUs only; on the CPU use bfloat16 or float32")
    return Precision(torch.bfloat16 if name == "bfloat16" else torch.float16)


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
    left as they were), else float32. A measurement is remembered for this machine
    (module docstring); :func:`will_measure` says beforehand whether one is needed.
    """
    if device.type == "cuda":
        return Precision(torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    default = CPU_TRAINING if training else CPU_PREDICTION
    if device.type != "cpu":
        return Precision(None)
    if not native_cpu_bfloat16():
        return default
    key = _key(model, input_shape, training)
    if key not in _measured:
        remembered = _read_cache().get(key)
        if remembered in ("float32", "bfloat16"):
            _measured[key] = BFLOAT16 if remembered == "bfloat16" else default
        else:
            seconds = {
                p: _time_passes(model, input_shape, p, training, clock) for p in (default, BFLOAT16)
            }
            faster = seconds[BFLOAT16] * MARGIN <= seconds[default]
            _measured[key] = BFLOAT16 if faster else default
            _remember(key, _measured[key].name)
    return _measured[key]


def will_measure(
    model: UNet, device: torch.device, input_shape: tuple[int, ...], *, training: bool
) -> bool:
    """Whether :func:`choose_precision` will time passes (a few seconds) for this call."""
    if device.type != "cpu" or not native_cpu_bfloat16():
        return False
    key = _key(model, input_shape, training)
    return key not in _measured and _read_cache().get(key) not in ("float32", "bfloat16")


def _key(model: UNet, input_shape: tuple[int, ...], training: bool) -> str:
    """What a measurement depends on: the machine, torch, threads, network and pass."""
    config = model.config.to_dict()
    config.pop("scale")  # the pixel scale does not change the arithmetic
    parts = [_cpu_name(), torch.__version__, str(torch.get_num_threads())]
    parts += [json.dumps(config, sort_keys=True), str(tuple(input_shape)), str(training)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cache_file() -> Path:
    """The file where precision measurements are remembered."""
    folder = os.environ.get("NAPARI_UNET_CACHE_DIR")
    if not folder:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        folder = Path(base) / "napari-unet"
    return Path(folder) / "precision.json"


def _read_cache() -> dict[str, str]:
    try:
        data = json.loads(cache_file().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _remember(key: str, name: str) -> None:
    """Add a measurement to the cache file; a cache that cannot be written is skipped
    (the next process measures again)."""
    path = cache_file()
    data = {**_read_cache(), key: name}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)


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
