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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as _load_safetensors_bytes
from safetensors.torch import save as _save_safetensors_bytes

from . import __version__
from ._files import write_atomically
from .core.cells.rules import InstanceRules
from .core.config import LabelConfig, NormalizationConfig, UNetConfig
from .core.network.device import pick_device
from .core.network.model import UNet

__all__ = [
    "FORMAT_VERSION",
    "LoadedModel",
    "ModelFileError",
    "load_model",
    "save_model",
    "save_trained",
    "store_rules",
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
    created: str = ""  # when the file was written (ISO 8601, UTC)
    optimizer_state: dict[str, Any] | None = None  # torch optimizer state_dict, to resume
    optimizer_problem: str | None = None  # why the file's optimiser state was not usable

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
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
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
    return write_atomically(path, data)


def save_trained(
    path: str | os.PathLike, result, *, last: bool = False, images: list[str] | None = None
) -> Path:
    """Write a :class:`~napari_unet.core.training.TrainResult` to one model file: the best
    model (``last=True``: the last one), how it was trained and its history, the optimiser
    state after the last step, from which training can resume, and what it was trained on
    (``images``: their names), so that a model found on a disk later says where it came
    from."""
    training = result.description()
    if images is not None:
        training["images"] = list(images)
    return save_model(
        path,
        result.last_model if last else result.model,
        normalization=result.normalization,
        labels=result.labels,
        training=training,
        optimizer_state=result.optimizer_state,
    )


def store_rules(path: str | os.PathLike, rules: InstanceRules) -> Path:
    """Write ``rules`` into the model file at ``path`` (in place, atomically): the file
    then segments with them everywhere; its training record notes that they were set by
    hand. Weights, normalisation and optimiser state are kept."""
    loaded = load_model(path)
    training = {**loaded.training, **rules.to_dict(), "rules_set_by_hand": True}
    return save_model(
        path,
        loaded.model,
        normalization=loaded.normalization,
        labels=loaded.labels,
        training=training,
        optimizer_state=loaded.optimizer_state,
    )


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedModel:
    """Read a model file written by :func:`save_model`; the network comes back in eval mode.

    Raises :class:`ModelFileError` (a ``ValueError``) naming the file for a missing file or
    a folder, a pickle, a file of another format, a newer format version, a description
    that is not valid, weights that do not fit the architecture (naming the tensor) or that
    hold NaN, and ``ValueError`` for a device that is not available. Nothing is allocated
    for the network before its weights are known to fit it. A damaged optimiser state
    does not stop the model from loading (``optimizer_problem`` says what is wrong).
    """
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f"{str(path)!r} is a folder; give a model file (.safetensors)")
    if not path.is_file():
        raise ModelFileError(f"model file {str(path)!r} does not exist")
    device = pick_device(device)
    data = path.read_bytes()
    _refuse_pickles(path, data)
    try:
        metadata = _read_header_metadata(data)
        tensors = _load_safetensors_bytes(data)
    except (SafetensorError, ValueError, UnicodeDecodeError) as error:
        raise ModelFileError(
            f"{path.name} is not a napari-unet model file (it is not in the safetensors "
            f"format: {error})"
        ) from None
    description = _parse_description(path, metadata)
    try:
        config = UNetConfig.from_dict(description["architecture"])
        normalization = NormalizationConfig.from_dict(description.get("normalization", {}))
        labels = LabelConfig.from_dict(description.get("labels", {}))
        training = description.get("training", {})
        if not isinstance(training, dict):
            raise ValueError("its training record is not a JSON object")
    except (KeyError, TypeError, ValueError) as error:
        raise ModelFileError(f"{path.name} has an invalid description: {error}") from None
    optimizer_tensors = {k: tensors.pop(k) for k in list(tensors) if k.startswith(_OPTIMIZER)}
    _check_weights(path, config, tensors)
    model = UNet(config)
    model.load_state_dict(tensors, strict=True)
    optimizer_state, problem = None, None
    if "optimizer" in description:
        try:
            optimizer_state = _unflatten_optimizer(description["optimizer"], optimizer_tensors)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            problem = f"the optimiser state in {path.name} is damaged ({error!r})"
    return LoadedModel(
        model=model.to(device).eval(),
        normalization=normalization,
        labels=labels,
        training=training,
        package_version=str(description.get("package_version", "")),
        created=str(description.get("created", "")),
        optimizer_state=optimizer_state,
        optimizer_problem=problem,
    )


def _check_weights(path: Path, config: UNetConfig, tensors: dict[str, torch.Tensor]) -> None:
    """Compare the file's tensors with the architecture's, on torch's "meta" device (no
    memory), and refuse NaN or infinite weights."""
    with torch.device("meta"):
        expected = {name: t.shape for name, t in UNet(config).state_dict().items()}
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = [n for n in expected if n in tensors and tensors[n].shape != expected[n]]
    problem = None
    if missing:
        problem = f"{len(missing)} tensor(s) missing, e.g. {missing[0]}"
    elif unexpected:
        problem = f"{len(unexpected)} tensor(s) not in the architecture, e.g. {unexpected[0]}"
    elif wrong:
        name = wrong[0]
        problem = f"{name} has shape {tuple(tensors[name].shape)}, not {tuple(expected[name])}"
    if problem:
        raise ModelFileError(
            f"the weights in {path.name} do not fit its architecture ({problem}); the file "
            "is damaged or was edited"
        )
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ModelFileError(
                f"the weights in {path.name} hold NaN or infinite values ({name}): the "
                "training that wrote it diverged; train again (a lower learning rate helps)"
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
    """The ``__metadata__`` of a safetensors header (8-byte little-endian length, then JSON).
    Raises ``ValueError`` (JSONDecodeError is one) for anything else."""
    length = int.from_bytes(data[:8], "little")
    if len(data) < 8 or 8 + length > len(data):
        raise ValueError("the header is cut short")
    header = json.loads(data[8 : 8 + length])
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    metadata = header.get("__metadata__") or {}
    if not isinstance(metadata, dict):
        raise ValueError("the header's metadata is not a JSON object")
    return metadata


def _parse_description(path: Path, metadata: dict[str, str]) -> dict[str, Any]:
    if _METADATA_KEY not in metadata:
        raise ModelFileError(
            f"{path.name} is a safetensors file but not a napari-unet model (it has no "
            f"{_METADATA_KEY!r} description); weights from elsewhere need their architecture: "
            "build the UNet yourself and save it with napari_unet.model_io.save_model"
        )
    try:
        description = json.loads(metadata[_METADATA_KEY])
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"{path.name} has a description that is not JSON: {error}") from None
    if not isinstance(description, dict):
        raise ModelFileError(
            f"{path.name} has a description that is a JSON {type(description).__name__}, not "
            "an object; the file is damaged or was not written by napari-unet"
        )
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
            f"{FORMAT_VERSION} and older. Upgrade it: pip install -U napari-paint-unet"
        )
    return description
