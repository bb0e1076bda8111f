"""bioimage.io model packages: a model file exported to one, and packages opened.

The community exchanges models as bioimage.io packages (a zip with ``rdf.yaml``, the
weights and what is needed to run them), which ilastik, deepImageJ, QuPath, Fiji and
napari read. :func:`export_bioimageio` writes one in the current format (0.5) with
``bioimageio.spec``: the architecture as source (:mod:`napari_unet.core.network.layers`,
plain torch), the weights as a PyTorch state dict and as TorchScript, inputs of every
valid size of the valid-convolution network, outputs smaller by the halo, the
normalisation as the package's preprocessing (the same percentiles), test tensors from
our own prediction, and the model file itself, so that :func:`open_bioimageio` gives back
exactly the model that was exported. Packages from elsewhere segment through
``bioimageio.core`` (:class:`ForeignModel`).

``bioimageio.spec`` and ``bioimageio.core`` are optional: ``pip install
"napari-paint-unet[bioimageio]"``.
"""

from __future__ import annotations

import re
import tempfile
import warnings
import zipfile
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import __version__
from ._files import write_atomically
from .core.cells.instances import labels_from_probabilities
from .core.cells.rules import InstanceRules
from .core.events import PlaneDone
from .core.images import intensity_range
from .core.network import layers
from .core.network.model import halo, layer_arguments, nearest_valid_input_sizes
from .core.segment import Segmentation
from .model_io import LoadedModel, ModelFileError, load_model

__all__ = [
    "ForeignModel",
    "card",
    "open_for_training",
    "open_model",
    "export_bioimageio",
    "is_bioimageio_package",
    "open_bioimageio",
]

PAPER_DOI = "10.1007/978-3-319-24574-4_28"
PAPER = (
    "Ronneberger O., Fischer P., Brox T. (2015). U-Net: Convolutional Networks for "
    "Biomedical Image Segmentation. MICCAI, LNCS 9351, 234-241."
)
MODEL_FILE = "napari-unet-model.safetensors"  # the model file, inside the package
CLASS_NAMES = {2: ["background", "cell"], 3: ["background", "interior", "outline"]}
INSTALL = 'bioimage.io packages need bioimageio.core: pip install "napari-paint-unet[bioimageio]"'


def _spec():
    try:
        from bioimageio.spec.model import v0_5
    except ImportError:
        raise ValueError(INSTALL) from None
    return v0_5


def is_bioimageio_package(path: str | Path) -> bool:
    """Whether ``path`` is a zip with an ``rdf.yaml`` (or ``bioimageio.yaml``) in it."""
    path = Path(path)
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(n.endswith(("rdf.yaml", "bioimageio.yaml")) for n in archive.namelist())


def export_bioimageio(
    model_file: str | Path,
    out: str | Path,
    *,
    test_image: np.ndarray | None = None,
    authors: tuple[str, ...] = ("napari-paint-unet user",),
    licence: str = "CC-BY-4.0",
    name: str | None = None,
) -> Path:
    """Write the model file ``model_file`` as a bioimage.io package ``out`` (.zip, whole
    or not at all).

    test_image: (H, W) or (C, H, W), a crop of it becomes the package's test input (by
    default a synthetic image of touching cells). Raises ``ValueError`` without
    bioimageio.spec, or for a model that cannot be described (a padded network).
    """
    v0_5 = _spec()
    from bioimageio.spec import save_bioimageio_package

    loaded = load_model(model_file)
    config = loaded.model.config
    if config.padding != "valid":
        raise ValueError("only networks with valid convolutions export (this one pads)")
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        files = _write_files(folder, Path(model_file), loaded, test_image)
        name = _package_name(name or Path(model_file).stem)
        descr = _description(v0_5, loaded, files, authors, licence, name)
        package = save_bioimageio_package(descr, output_path=folder / "package.zip")
        return write_atomically(out, Path(package).read_bytes())


def _package_name(wanted: str) -> str:
    """A name bioimage.io accepts (5-64 letters, digits, spaces, ``_+-()``): other
    characters become spaces; a short one gets the plugin's name in front."""
    name = " ".join(re.sub(r"[^A-Za-z0-9_+\- ()]", " ", wanted).split())
    if len(name) < 5:
        name = f"napari-paint-unet {name}".strip()
    return name[:64].strip()


@dataclass(frozen=True)
class _Files:
    source: Path
    weights: Path
    torchscript: Path | None
    model: Path
    readme: Path
    test_input: Path
    test_output: Path


def _write_files(folder: Path, model_file: Path, loaded: LoadedModel, image) -> _Files:
    """The package's files: architecture source, weights, test tensors, README."""
    config = loaded.model.config
    source = folder / "unet_layers.py"
    source.write_text(Path(layers.__file__).read_text())
    network = layers.UNetProbabilities(**layer_arguments(config))
    network.load_state_dict(loaded.model.state_dict(), strict=True)
    network.eval()
    weights = folder / "weights.pt"
    torch.save(network.state_dict(), weights)
    model = folder / MODEL_FILE
    model.write_bytes(model_file.read_bytes())
    test_input = _test_input(config, image)
    low, high = intensity_range(test_input, loaded.normalization)
    with torch.no_grad():
        x = torch.from_numpy((test_input - low) / (high - low)).float()[None]
        test_output = network(x).numpy()
    np.save(folder / "test_input.npy", test_input[None])
    np.save(folder / "test_output.npy", test_output)
    torchscript = folder / "weights_torchscript.pt"
    try:
        with warnings.catch_warnings():  # (deprecated in torch, still what many tools read)
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.jit.script(network).save(str(torchscript))
    except Exception:  # noqa: BLE001 - TorchScript where it works
        torchscript = None
    readme = folder / "README.md"
    readme.write_text(_readme(loaded))
    return _Files(
        source,
        weights,
        torchscript,
        model,
        readme,
        folder / "test_input.npy",
        folder / "test_output.npy",
    )


def _test_input(config, image) -> np.ndarray:
    """(C, S, S) float32, S a valid input size: a crop of ``image``, else synthetic cells."""
    size = nearest_valid_input_sizes(config, 2 * halo(config) + 64)[1]
    if image is None:
        from .core.synthetic import touching_cells

        image = touching_cells((size, size), rng=np.random.default_rng(0)).image
    image = np.asarray(image, np.float32)
    image = image[None] if image.ndim == 2 else image
    rows = np.arange(size) % image.shape[-2]  # (repeated where the image is smaller)
    columns = np.arange(size) % image.shape[-1]
    return np.ascontiguousarray(image[:, rows][:, :, columns])


def _description(v0_5, loaded: LoadedModel, files: _Files, authors, licence: str, name: str):
    config = loaded.model.config
    grid, margin = 2**config.poolings, halo(config)
    smallest = nearest_valid_input_sizes(config, 1)[1]
    raw = v0_5.TensorId("raw")
    channels = [v0_5.Identifier(f"channel{k}") for k in range(config.in_channels)]
    space_in = [
        v0_5.SpaceInputAxis(id=v0_5.AxisId(a), size=v0_5.ParameterizedSize(min=smallest, step=grid))
        for a in ("y", "x")
    ]
    space_out = [
        v0_5.SpaceOutputAxis(
            id=v0_5.AxisId(a),
            size=v0_5.SizeReference(tensor_id=raw, axis_id=v0_5.AxisId(a), offset=-2 * margin),
        )
        for a in ("y", "x")
    ]
    normalisation = loaded.normalization
    preprocessing = [
        v0_5.ScaleRangeDescr(
            kwargs=v0_5.ScaleRangeKwargs(
                axes=[v0_5.AxisId("channel"), v0_5.AxisId("y"), v0_5.AxisId("x")],
                min_percentile=normalisation.low_percentile,
                max_percentile=normalisation.high_percentile,
            )
        )
    ]
    inputs = v0_5.InputTensorDescr(
        id=raw,
        description="the image, percentiles of each sample mapped to 0 and 1 (not clipped)",
        axes=[v0_5.BatchAxis(), v0_5.ChannelAxis(channel_names=channels), *space_in],
        test_tensor=v0_5.FileDescr(source=files.test_input),
        preprocessing=preprocessing,
    )
    names = [v0_5.Identifier(n) for n in CLASS_NAMES.get(config.classes, ["background"])]
    names += [v0_5.Identifier(f"class{k}") for k in range(len(names), config.classes)]
    outputs = v0_5.OutputTensorDescr(
        id=v0_5.TensorId("probabilities"),
        description=f"class probabilities (softmax); {margin} px smaller on each side than "
        "the input (valid convolutions)",
        axes=[v0_5.BatchAxis(), v0_5.ChannelAxis(channel_names=names), *space_out],
        test_tensor=v0_5.FileDescr(source=files.test_output),
    )
    version = v0_5.Version(torch.__version__.split("+")[0])
    architecture = v0_5.ArchitectureFromFileDescr(
        source=files.source,
        callable=v0_5.Identifier("UNetProbabilities"),
        kwargs=layer_arguments(config),
    )
    weights = {
        "pytorch_state_dict": v0_5.PytorchStateDictWeightsDescr(
            source=files.weights, architecture=architecture, pytorch_version=version
        )
    }
    if files.torchscript is not None:
        weights["torchscript"] = v0_5.TorchscriptWeightsDescr(
            source=files.torchscript, pytorch_version=version, parent="pytorch_state_dict"
        )
    card = {
        "package_version": __version__,
        "created": loaded.created,
        "rules": loaded.rules.to_dict(),
        "scale": config.scale,
        "training": {k: v for k, v in loaded.training.items() if k != "history"},
    }
    return v0_5.ModelDescr(
        name=name,
        description="A U-Net (Ronneberger et al. 2015) trained with napari-paint-unet from "
        "painted cells; cells come from its probabilities as the README says.",
        authors=[v0_5.Author(name=author) for author in authors],
        cite=[v0_5.CiteEntry(text=PAPER, doi=v0_5.Doi(PAPER_DOI))],
        license=v0_5.LicenseId(licence),
        documentation=v0_5.FileDescr(source=files.readme),
        tags=["unet", "segmentation", "instance-segmentation", "cells", "napari"],
        inputs=[inputs],
        outputs=[outputs],
        weights=v0_5.WeightsDescr(**weights),
        attachments=[v0_5.FileDescr(source=files.model)],
        config=v0_5.Config(napari_unet=card),
    )


def _readme(loaded: LoadedModel) -> str:
    rules = loaded.rules
    config = loaded.model.config
    steps = loaded.training.get("steps", "?")
    return f"""# A U-Net trained with napari-paint-unet

The U-Net of Ronneberger, Fischer & Brox (2015) with valid convolutions: {config.depth}
levels, {config.base_channels} base channels, {config.classes} classes
({", ".join(CLASS_NAMES.get(config.classes, []))}), trained for {steps} steps from painted
cells. Input: an image of {config.in_channels} channel(s); its {loaded.normalization.low_percentile}
and {loaded.normalization.high_percentile} percentiles are mapped to 0 and 1. Output: class
probabilities, {halo(config)} px smaller on each side (valid convolutions: tile with an
overlap of twice that). The network works at {config.scale:g} of the image's pixels.

## How the cells are made from the probabilities

For the outline class (three classes): each connected region where the interior
probability is above {rules.interior_threshold} is a cell's interior; background specks
inside it are filled; interiors are cut at necks narrower than {rules.neck_ratio} of the
thinner side (0 = never), unless the two cells together are as convex as
{rules.join_solidity} or notched at one end of their border only (two touching cells
leave a notch at both), or parted where the interior probability (smoothed by 1 px) dips by
{rules.dip} between two maxima (0 = never); interiors that never reach
{rules.core_threshold} are dropped (0 = off); each is grown by {rules.growth} px within
the cell probability (interior + outline above 0.5); cells are then cut where a border
between two of their regions is mostly background (for cells that tile the image, such
as an EM section's: {rules.borders}); objects under {rules.min_size} px are dropped; a
cell or unlabelled patch that only one cell surrounds (every path from it to the image's
edge crosses that cell) joins it: {rules.join_enclosed}. The
probabilities are averaged over the image and its three mirror images first:
{rules.flips}. These rules were calibrated on the painted cells;
`config.napari_unet.rules` holds them.

napari-paint-unet opens this package (Segment layer, `napari-unet segment`) and gets the
same model back (`{MODEL_FILE}`).

Cite: {PAPER} doi:{PAPER_DOI}
"""


# --------------------------------------------------------------------------- opening


class ForeignModel:
    """A bioimage.io model from elsewhere: it segments through ``bioimageio.core``'s own
    prediction, and is not fine-tuned here (its architecture is not ours)."""

    def __init__(self, descr, path: Path) -> None:
        self.descr, self.path = descr, path
        self.name = str(getattr(descr, "name", path.name))
        self._pipeline = None  # bioimageio.core's, made at the first prediction

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """(channels, H, W) output of the model for a 2D ``image`` (one channel): the
        package's preprocessing on the image (its statistics of the image itself), then
        the preprocessed image mirrored by what the model's output loses at its edges and
        up to a size the model takes, the model, and the output cropped back."""
        from bioimageio.core import create_prediction_pipeline
        from bioimageio.core.digest_spec import create_sample_for_model

        descr = self.descr
        if self._pipeline is None:
            self._pipeline = create_prediction_pipeline(descr)
        image = np.asarray(image, np.float32)
        margin = _lost_margin(descr)
        height, width = image.shape
        padded = [_valid_size(descr.inputs[0], n + 2 * margin) for n in (height, width)]
        member = descr.inputs[0].id
        sample = create_sample_for_model(
            descr, inputs={member: _as_input(descr.inputs[0], image)}, sample_id="napari"
        )
        self._pipeline.apply_preprocessing(sample)
        pads = {
            axis: (margin, size - n - margin)
            for axis, size, n in zip(
                _space_axes(descr.inputs[0]), padded, (height, width), strict=True
            )
        }
        sample = sample.pad(pad_width={member: pads}, mode="symmetric")
        result = self._pipeline.predict_sample_without_blocking(sample, skip_preprocessing=True)
        output = np.asarray(result.members[descr.outputs[0].id].data)
        while output.ndim > 3:
            output = output[0]
        output = output[None] if output.ndim == 2 else output
        offset = margin - (padded[0] - output.shape[-2]) // 2  # (0 for a model that crops)
        return output[:, offset : offset + height, offset : offset + width]

    def segment(self, image: np.ndarray) -> Generator[PlaneDone, None, Segmentation]:
        """Labels of a 2D image or a (Z, H, W) stack, plane by plane: the output's last
        channel is the cell probability of one- and two-channel outputs (three: our
        background, interior and outline), made into cells by the default rules."""
        image = np.asarray(image)
        planes = image[None] if image.ndim == 2 else image
        labels = np.zeros(planes.shape, np.uint32)
        count = 0
        yield PlaneDone(done=0, total=len(planes))
        for z, plane in enumerate(planes):
            output = self.probabilities(plane)
            if len(output) == 1:
                output = np.concatenate([1 - output, output])
            cells = labels_from_probabilities(output[:3], **InstanceRules().labelling())
            labels[z] = np.where(cells > 0, cells.astype(np.uint32) + count, 0)
            count += int(cells.max())
            yield PlaneDone(done=z + 1, total=len(planes))
        labels = labels.astype(np.uint16) if count < 2**16 else labels
        return Segmentation(labels[0] if image.ndim == 2 else labels)


def _space_axes(tensor_descr) -> list:
    """The ids of a tensor's two space axes (rows, columns)."""
    return [axis.id for axis in tensor_descr.axes if str(getattr(axis, "type", "")) == "space"]


def _lost_margin(descr) -> int:
    """Pixels a model's first output loses on each side (a negative size offset)."""
    for axis in descr.outputs[0].axes:
        size = getattr(axis, "size", None)
        if str(getattr(axis, "type", "")) == "space" and hasattr(size, "offset"):
            return max(0, -int(size.offset) // 2)
    return 0


def _valid_size(tensor_descr, wanted: int) -> int:
    """The smallest size at least ``wanted`` that the input's y axis takes."""
    for axis in tensor_descr.axes:
        if str(getattr(axis, "type", "")) != "space":
            continue
        size = axis.size
        if isinstance(size, int):
            return size
        if hasattr(size, "min") and hasattr(size, "step"):
            steps = max(0, -(-(wanted - size.min) // max(size.step, 1)))
            return size.min + steps * size.step
    return wanted


def _as_input(tensor_descr, image: np.ndarray):
    """``image`` (H, W) with the singleton axes the package's input wants."""
    from bioimageio.core import Tensor

    kinds = [str(getattr(axis, "type", "")) for axis in tensor_descr.axes]
    array = np.asarray(image, np.float32)
    for position, kind in enumerate(kinds):
        if kind in ("batch", "channel", "index") or (kind == "space" and array.ndim < 2):
            array = np.expand_dims(array, position)
    return Tensor(array, dims=tuple(axis.id for axis in tensor_descr.axes))


class UntrustedPackage(ValueError):
    """A bioimage.io package from elsewhere, opened without ``run_its_code``."""


def is_foreign_package(path: str | Path) -> bool:
    """Whether ``path`` is a bioimage.io package not exported by napari-paint-unet (cheap:
    reads the zip's table of contents)."""
    if not is_bioimageio_package(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return MODEL_FILE not in archive.namelist()


def open_bioimageio(path: str | Path, run_its_code: bool = False) -> LoadedModel | ForeignModel:
    """A bioimage.io package: the napari-paint-unet model it was exported from (exactly,
    from its safetensors file: nothing runs), or a :class:`ForeignModel` for packages from
    elsewhere with PyTorch (state dict or TorchScript) weights.

    Running a package from elsewhere executes code it carries (its architecture's Python
    source, or a TorchScript program), so it opens only with ``run_its_code=True``, the
    user's word that they trust where it came from; without it, :class:`UntrustedPackage`.
    Raises ``ValueError`` in one line for a zip that is not a package, one of a format
    newer than bioimageio.spec knows, or weights we cannot run."""
    opened = _open_package(Path(path))
    if isinstance(opened, ForeignModel) and not run_its_code:
        raise UntrustedPackage(
            f"{Path(path).name} is a bioimage.io model from elsewhere: segmenting with it runs "
            "the code it carries; if you trust where it came from, allow that (Segment "
            "layer: tick 'Run this package's code'; command line: --trust-package)"
        )
    return opened


def _open_package(path: Path) -> LoadedModel | ForeignModel:
    """The package's model, described but not run (see :func:`open_bioimageio`)."""
    if not is_bioimageio_package(path):
        raise ValueError(f"{path.name} is not a bioimage.io package (no rdf.yaml in a zip)")
    with zipfile.ZipFile(path) as archive:
        if MODEL_FILE in archive.namelist():
            with tempfile.TemporaryDirectory() as folder:
                archive.extract(MODEL_FILE, folder)
                try:
                    return load_model(Path(folder) / MODEL_FILE)
                except ModelFileError as error:
                    raise ValueError(f"{path.name}: {error}") from None
    v0_5 = _spec()
    from bioimageio.spec import InvalidDescr, load_model_description

    _refuse_newer_format(path, v0_5.ModelDescr.implemented_format_version)

    try:
        descr = load_model_description(path, perform_io_checks=False)
    except Exception as error:  # noqa: BLE001 - bioimageio raises many kinds
        raise ValueError(
            f"{path.name} cannot be read as a bioimage.io model: {_first_line(error)}"
        ) from None
    if isinstance(descr, InvalidDescr):
        raise ValueError(
            f"{path.name} is not a valid bioimage.io model: {_first_line(descr.validation_summary)}"
        )
    formats = [f for f in ("pytorch_state_dict", "torchscript") if getattr(descr.weights, f, None)]
    if not formats:
        available = [f for f, w in descr.weights if w is not None]
        raise ValueError(
            f"{path.name} has weights as {', '.join(available) or 'nothing'}; napari-paint-unet "
            "runs PyTorch weights (pytorch_state_dict or torchscript) only"
        )
    return ForeignModel(descr, path)


def _refuse_newer_format(path: Path, known: str) -> None:
    """Raise ``ValueError`` for a package whose format (major.minor) is newer than the
    installed bioimageio.spec reads."""
    import yaml

    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith(("rdf.yaml", "bioimageio.yaml")))
        try:
            found = str(yaml.safe_load(archive.read(name)).get("format_version", ""))
        except (yaml.YAMLError, AttributeError):
            raise ValueError(f"{path.name}: its {name} is not readable YAML") from None

    def major_minor(version: str) -> tuple[int, ...]:
        return tuple(int(part) for part in version.split(".")[:2] if part.isdigit())

    if major_minor(found) > major_minor(known):
        raise ValueError(
            f"{path.name} is in bioimage.io format {found}, newer than the installed "
            f"bioimageio.spec reads ({known}); update it: pip install -U "
            '"napari-paint-unet[bioimageio]"'
        )


def _first_line(thing) -> str:
    text = str(thing).strip().splitlines()
    return text[0] if text else type(thing).__name__


def card(path: str | Path) -> dict:
    """The model card an exported package carries (``config.napari_unet``)."""
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith(("rdf.yaml", "bioimageio.yaml")))
        import yaml

        return yaml.safe_load(archive.read(name)).get("config", {}).get("napari_unet", {})


def open_model(
    path: str | Path, device: str = "cpu", run_its_code: bool = False
) -> LoadedModel | ForeignModel:
    """A model file (.safetensors) or a bioimage.io package (.zip), for segmenting
    (``run_its_code``: see :func:`open_bioimageio`)."""
    path = Path(path)
    if path.suffix.lower() == ".zip" or is_bioimageio_package(path):
        opened = open_bioimageio(path, run_its_code)
        return opened if isinstance(opened, ForeignModel) else load_model_on(opened, device)
    return load_model(path, device=device)


def load_model_on(loaded: LoadedModel, device: str) -> LoadedModel:
    from .core.network.device import pick_device

    loaded.model.to(pick_device(device))
    return loaded


def open_for_training(path: str | Path) -> LoadedModel:
    """The model to fine-tune: a model file, or a bioimage.io package exported by
    napari-paint-unet. Raises ``ValueError`` for packages from elsewhere (they segment,
    but their architecture is not one trained here)."""
    path = Path(path)
    if not (path.suffix.lower() == ".zip" or is_bioimageio_package(path)):
        return load_model(path)
    opened = _open_package(path)  # described, not run
    if isinstance(opened, ForeignModel):
        raise ValueError(
            f"{Path(path).name} is a bioimage.io model from elsewhere: it can segment, but "
            "its architecture is not one napari-paint-unet trains; train a new model instead"
        )
    return opened
