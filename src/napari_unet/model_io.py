"""Model files: one ``.safetensors`` file holding the weights and a JSON description.

A model file is data, never code. The weights are stored in the safetensors format (a JSON
header followed by raw tensor bytes), and everything else (the architecture, how input
images are normalised, the label convention, the training settings, the format and
package versions) is one JSON document in the header's metadata under the key
``"napari_unet"``. Loading parses JSON and copies tensor bytes; it cannot run code, so a
model file from a colleague or a repository is as safe to open as an image. Pickles
(``torch.save`` checkpoints) are refused with an explanation, not unpickled.

Files are written atomically: a crash or a full disk leaves the old file (or none), never
half a model.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as _load_safetensors_bytes
from safetensors.torch import save as _save_safetensors_bytes

from . import __version__
from .core.cells.rules import InstanceRules
from .core.config import LabelConfig, NormalizationConfig, UNetConfig
from .core.network.model import UNet

__all__ = [
    "FORMAT_VERSION",
    "LoadedModel",
    "ModelFileError",
    "load_model",
    "save_model",
    "save_trained",
]

FORMAT = "napari-unet-model"
FORMAT_VERSION = 1  # increase when a reader of the old format could misread the new one
_METADATA_KEY = "napari_unet"


class ModelFileError(ValueError):
    """A model file that cannot be used, with a message that says why and what to do."""


@dataclass(frozen=True)
class LoadedModel:
    """A model read from a file: the network (in eval mode) and how to use it."""

    model: UNet
    normalization: NormalizationConfig = field(default_factory=NormalizationConfig)
    labels: LabelConfig = field(default_factory=LabelConfig)
    training: dict[str, Any] = field(default_factory=dict)  # settings and history, free JSON
    package_version: str = ""  # the napari-unet version that wrote the file
    optimizer_state: dict[str, Any] | None = None  # torch optimizer state_dict, to resume

    @property
    def rules(self) -> InstanceRules:
        """How this model's probabilities become cells, as training measured them (the
        defaults for what a file does not say)."""
        try:
            return InstanceRules.from_training(self.training)
        except ValueError as error:
            raise ModelFileError(
                f"the model file's rules for cells are not valid: {error}"
            ) from None


def save_model(
    path: str | os.PathLike,
    model: UNet,
    *,
    normalization: NormalizationConfig | None = None,
    labels: LabelConfig | None = None,
    training: dict[str, Any] | None = None,
    optimizer_state: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` and its description to one file at ``path``, atomically.

    ``training`` is any JSON-serialisable dictionary (settings, history, notes).
    ``optimizer_state`` is a torch optimizer's ``state_dict()``, kept so that training can
    resume where it stopped: its tensors are stored beside the weights (named
    ``optimizer.<param>.<key>``) and the rest as JSON. Returns the path written. The
    weights are stored as float32 on the CPU whatever the model's device.
    """
    path = Path(path)
    description = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "architecture": model.config.to_dict(),
        "normalization": (normalization or NormalizationConfig()).to_dict(),
        "labels": (labels or LabelConfig()).to_dict(),
        "training": training or {},
    }
    optimizer_tensors: dict[str, torch.Tensor] = {}
    if optimizer_state is not None:
        description["optimizer"], optimizer_tensors = _flatten_optimizer(optimizer_state)
    try:
        header = json.dumps(description)
    except TypeError as error:
        raise ModelFileError(
            f"the training information is not JSON-serialisable: {error}"
        ) from None
    tensors = {
        name: t.detach().to("cpu", torch.float32 if t.is_floating_point() else t.dtype).contiguous()
        for name, t in model.state_dict().items()
    }
    tensors.update(optimizer_tensors)
    data = _save_safetensors_bytes(tensors, metadata={_METADATA_KEY: header})
    _write_atomically(path, data)
    return path


def save_trained(path: str | os.PathLike, result, *, last: bool = False) -> Path:
    """Write a :class:`~napari_unet.core.training.TrainResult` to one model file: the best
    model (``last=True``: the last one), how it was trained and its history, and the
    optimiser state after the last step, from which training can resume."""
    return save_model(
        path,
        result.last_model if last else result.model,
        normalization=result.normalization,
        labels=result.labels,
        training=result.description(),
        optimizer_state=result.optimizer_state,
    )


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedModel:
    """Read a model file written by :func:`save_model`; the network comes back in eval mode.

    Raises :class:`ModelFileError` (a ``ValueError``) for a missing file, a pickle, a file
    of another format, a newer format version, or weights that do not fit the architecture.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {str(path)!r} does not exist")
    data = path.read_bytes()
    _refuse_pickles(path, data)
    try:
        tensors = _load_safetensors_bytes(data)
        metadata = _read_header_metadata(data)
    except (SafetensorError, ValueError, json.JSONDecodeError) as error:
        raise ModelFileError(
            f"{path.name} is not a napari-unet model file (it is not in the safetensors "
            f"format: {error})"
        ) from None
    description = _parse_description(path, metadata)
    try:
        config = UNetConfig.from_dict(description["architecture"])
        normalization = NormalizationConfig.from_dict(description.get("normalization", {}))
        labels = LabelConfig.from_dict(description.get("labels", {}))
    except (KeyError, TypeError, ValueError) as error:
        raise ModelFileError(f"{path.name} has an invalid description: {error}") from None
    model = UNet(config)
    optimizer_tensors = {k: tensors.pop(k) for k in list(tensors) if k.startswith(_OPTIMIZER)}
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as error:
        first_line = str(error).splitlines()[0]
        raise ModelFileError(
            f"the weights in {path.name} do not fit its architecture ({first_line})"
        ) from None
    return LoadedModel(
        model=model.to(device).eval(),
        normalization=normalization,
        labels=labels,
        training=description.get("training", {}),
        package_version=str(description.get("package_version", "")),
        optimizer_state=(
            _unflatten_optimizer(description["optimizer"], optimizer_tensors)
            if "optimizer" in description
            else None
        ),
    )


_OPTIMIZER = "optimizer."


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """An optimizer state_dict as JSON plus flat named tensors (safetensors holds no nesting)."""
    tensors, scalars = {}, {}
    for param, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{_OPTIMIZER}{param}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(param), {})[key] = value
    return {"param_groups": state["param_groups"], "scalars": scalars}, tensors


def _unflatten_optimizer(
    description: dict[str, Any], tensors: dict[str, torch.Tensor]
) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, tensor in tensors.items():
        param, key = name[len(_OPTIMIZER) :].split(".", 1)
        state.setdefault(int(param), {})[key] = tensor
    for param, values in description.get("scalars", {}).items():
        state.setdefault(int(param), {}).update(values)
    return {"state": state, "param_groups": description["param_groups"]}


def _refuse_pickles(path: Path, data: bytes) -> None:
    # torch.save writes a zip archive holding a pickle; plain pickles start with PROTO 0x80.
    # A safetensors file starts with its header's length, whose first byte may be 0x80 too:
    # what follows the length (a JSON object) tells the two apart.
    length = int.from_bytes(data[:8], "little")
    if data[8:9] == b"{" and 8 + length <= len(data):
        return
    if data[:4] == b"PK\x03\x04" or data[:1] == b"\x80":
        raise ModelFileError(
            f"{path.name} is a pickle (for example a torch.save checkpoint). napari-unet does "
            "not open pickles, because loading one can run arbitrary code. Use a model file "
            "saved by napari-unet (.safetensors); to convert weights you trust, load them "
            "yourself and call napari_unet.model_io.save_model."
        )


def _read_header_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors header (8-byte little-endian length, then JSON)."""
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    return header.get("__metadata__") or {}


def _parse_description(path: Path, metadata: dict[str, str]) -> dict[str, Any]:
    if _METADATA_KEY not in metadata:
        raise ModelFileError(
            f"{path.name} is a safetensors file but not a napari-unet model (it has no "
            f"{_METADATA_KEY!r} description); weights from elsewhere need their architecture: "
            "build the UNet yourself and save it with napari_unet.model_io.save_model"
        )
    description = json.loads(metadata[_METADATA_KEY])
    if description.get("format") != FORMAT:
        raise ModelFileError(f"{path.name} is not a napari-unet model file")
    version = description.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ModelFileError(
            f"{path.name} has an unknown format version {version!r}; the file is damaged or "
            "was not written by napari-unet"
        )
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path.name} was written by napari-unet {description.get('package_version', '?')} "
            f"in model format {version}; this napari-unet ({__version__}) reads format "
            f"{FORMAT_VERSION} and older. Upgrade napari-unet: pip install -U napari-unet"
        )
    return description


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # A temporary file beside the target (same file system, so the rename is atomic),
    # created with open(), which honours the user's umask (mkstemp would make it private).
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
