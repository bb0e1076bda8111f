"""Frozen configuration records with validation and a JSON-friendly round trip.

Every record here is plain data: it is written into model files as JSON (see
:mod:`napari_unet.model_io`) and read back with ``from_dict``. Invalid values raise
``ValueError`` with a message that says how to fix them.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

_Record = TypeVar("_Record", bound="_JsonRecord")

PADDING_MODES = ("valid", "same")
# "auto": measured where it matters (core.network.precision); or one forced
PRECISIONS = ("auto", "float32", "bfloat16", "float16")


def _check_int(name: str, value: Any, *, minimum: int, maximum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number, not {value!r}")
    if value < minimum:
        raise ValueError(f"{name} = {value} is too small; the smallest allowed is {minimum}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} = {value} is too large; the largest allowed is {maximum}")


class _JsonRecord:
    """Mixin: ``to_dict``/``from_dict`` for frozen dataclasses of JSON scalars and of
    other such records."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[_Record], data: dict[str, Any]) -> _Record:
        if not isinstance(data, dict):
            raise ValueError(f"{cls.__name__} must be a JSON object, not {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(
                f"{cls.__name__} has no field(s) {', '.join(unknown)}; "
                f"known fields: {', '.join(sorted(names))}"
            )
        hints = typing.get_type_hints(cls)
        values = {}
        for name, value in data.items():
            record = next(
                (t for t in typing.get_args(hints[name]) or (hints[name],) if _is_record(t)),
                None,
            )
            values[name] = record.from_dict(value) if record and value is not None else value
        return cls(**values)


def _is_record(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, _JsonRecord)


def _check_record(name: str, value: Any, kind: type, optional: bool = False) -> None:
    if not (isinstance(value, kind) or (optional and value is None)):
        raise ValueError(f"{name} must be a {kind.__name__}, not {value!r}")


@dataclass(frozen=True)
class UNetConfig(_JsonRecord):
    """Architecture of a U-Net (Ronneberger et al. 2015, Fig. 1).

    The defaults are the paper's network: 5 resolution levels (4 poolings), 64 feature
    channels at the first level doubling at each pooling, unpadded ("valid") 3x3
    convolutions, dropout at the end of the contracting path, no batch normalisation; and
    the pixel scale the network works at.
    """

    in_channels: int = 1  # channels of the input image (1 for a grey image)
    classes: int = 2  # output classes; 2 = background and cell
    depth: int = 5  # resolution levels; the network pools depth - 1 times
    base_channels: int = 64  # feature channels at the first level
    padding: Literal["valid", "same"] = "valid"  # "valid": unpadded convolutions (paper)
    dropout: float = 0.5  # dropout probability at the end of the contracting path; 0 = off
    batch_norm: bool = False  # batch normalisation after each 3x3 convolution (not in the paper)
    # network px per image px: images are resized by this before the network sees them.
    # Training shrinks large cells (core.scale); 1 = the image's own pixels.
    scale: float = 1.0

    def __post_init__(self) -> None:
        _check_int("in_channels", self.in_channels, minimum=1)
        _check_int("classes", self.classes, minimum=2)
        _check_int("depth", self.depth, minimum=1, maximum=8)
        _check_int("base_channels", self.base_channels, minimum=1)
        if self.padding not in PADDING_MODES:
            raise ValueError(
                f"padding {self.padding!r} is not known; use 'valid' (the paper) or 'same'"
            )
        if not (isinstance(self.dropout, (int, float)) and 0.0 <= self.dropout < 1.0):
            raise ValueError(f"dropout {self.dropout!r} must be a probability in [0, 1), e.g. 0.5")
        if not isinstance(self.batch_norm, bool):
            raise ValueError(f"batch_norm must be True or False, not {self.batch_norm!r}")
        if not (isinstance(self.scale, (int, float)) and 0.01 <= self.scale <= 1.0):
            raise ValueError(f"scale {self.scale!r} must be in [0.01, 1], e.g. 0.5")

    @property
    def poolings(self) -> int:
        """Number of 2x2 max-poolings (and of up-convolutions): ``depth - 1``."""
        return self.depth - 1

    @property
    def outlines(self) -> bool:
        """Whether the network has the outline class (three classes: background, cell
        interior, cell outline) rather than the paper's two."""
        return self.classes == 3


PRESETS: dict[str, UNetConfig] = {
    # The network of the paper: 31,030,658 parameters for 1 input channel and 2 classes.
    "paper": UNetConfig(depth=5, base_channels=64, padding="valid"),
    # CPU-friendly: 481,762 parameters (1 channel, 2 classes), 3 poolings
    # (docs/decisions/2026-11-21-light-preset.md).
    "light": UNetConfig(depth=4, base_channels=16, padding="valid"),
}


def preset(name: str, **overrides: Any) -> UNetConfig:
    """The :class:`UNetConfig` of a named preset, with fields optionally replaced.

    >>> preset("light", in_channels=3).in_channels
    3
    """
    try:
        config = PRESETS[name]
    except KeyError:
        raise ValueError(
            f"unknown preset {name!r}; choose one of {', '.join(sorted(PRESETS))}"
        ) from None
    return dataclasses.replace(config, **overrides)


@dataclass(frozen=True)
class NormalizationConfig(_JsonRecord):
    """How an image's intensities are mapped before the network sees them.

    Per image, the ``low`` and ``high`` percentiles map to 0 and 1 (values outside are kept,
    not clipped). Stored in the model file so that prediction normalises as training did.
    """

    low_percentile: float = 1.0  # percent, 0-100
    high_percentile: float = 99.8  # percent, 0-100

    def __post_init__(self) -> None:
        lo, hi = self.low_percentile, self.high_percentile
        if not (0.0 <= lo < hi <= 100.0):
            raise ValueError(
                f"percentiles ({lo}, {hi}) must satisfy 0 <= low < high <= 100, e.g. (1, 99.8)"
            )


@dataclass(frozen=True)
class LabelConfig(_JsonRecord):
    """How a label image is read.

    Sparse (default, as painted in napari): 0 = not annotated (ignored), ``background`` =
    painted background, every other value one cell. Dense (complete masks, as in public
    datasets): 0 = background, every other value one cell.
    """

    dense: bool = False
    background: int = 1  # the painted-background value in sparse mode

    def __post_init__(self) -> None:
        if not isinstance(self.dense, bool):
            raise ValueError(f"dense must be True or False, not {self.dense!r}")
        _check_int("background", self.background, minimum=1)


@dataclass(frozen=True)
class WeightMapConfig(_JsonRecord):
    """The pixel weights of the loss (paper, eq. 2).

    w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))^2 / (2 sigma^2)) on background pixels, where d1
    and d2 are the distances to the nearest and second-nearest cell and w_c balances the
    class frequencies over the annotated pixels; 0 on pixels that are not annotated.
    """

    w0: float = 10.0  # height of the border term; 0 switches it off
    sigma: float = 5.0  # pixels; width of the border term
    insert_gaps: bool = True  # make the pixels where two cells touch background
    balance_classes: bool = True  # w_c: equal total weight for background and cells

    def __post_init__(self) -> None:
        if not (isinstance(self.w0, (int, float)) and self.w0 >= 0):
            raise ValueError(
                f"w0 = {self.w0!r} must be >= 0 (the paper uses 10; 0 = no border term)"
            )
        if not (isinstance(self.sigma, (int, float)) and self.sigma > 0):
            raise ValueError(f"sigma = {self.sigma!r} must be > 0 pixels (the paper uses 5)")


@dataclass(frozen=True)
class AugmentConfig(_JsonRecord):
    """Random changes applied to every training tile (paper, Sec. 3.1, and common practice).

    Elastic deformation: displacement vectors on a coarse ``elastic_grid`` x ``elastic_grid``
    grid over the tile, drawn from N(0, ``elastic_sigma``), interpolated bicubically to every
    pixel. Plus a rotation by a uniform angle, flips, isotropic scaling, pixel noise
    added to make the tile as noisy as an image ``noise`` times noisier than its own
    (docs/decisions/2026-12-06-noise-augmentation.md), and intensity gain, offset and
    gamma on the normalised image.
    """

    elastic: bool = True
    elastic_grid: int = 3  # grid points per axis (paper: 3)
    elastic_sigma: float = 10.0  # pixels (paper: 10)
    rotate: bool = True  # uniform angle in [0, 360) degrees
    flip: bool = True  # each axis flipped with probability 1/2
    scale: tuple[float, float] = (0.9, 1.1)  # zoom factor range; (1, 1) = off
    gain: tuple[float, float] = (0.8, 1.2)  # intensity factor range
    offset: tuple[float, float] = (-0.1, 0.1)  # added to the normalised intensity
    gamma: tuple[float, float] = (0.8, 1.25)  # exponent range; (1, 1) = off
    noise: tuple[float, float] = (1.0, 2.0)  # x the image's own pixel noise; (1, 1) = off
    image_order: Literal["linear", "cubic"] = "linear"  # image interpolation

    def __post_init__(self) -> None:
        _check_int("elastic_grid", self.elastic_grid, minimum=2)
        if not (isinstance(self.elastic_sigma, (int, float)) and self.elastic_sigma >= 0):
            raise ValueError(f"elastic_sigma = {self.elastic_sigma!r} must be >= 0 pixels, e.g. 10")
        limits = (("scale", 1e-3), ("gain", 0.0), ("gamma", 1e-3), ("offset", None), ("noise", 1))
        for name, low_limit in limits:
            low, high = getattr(self, name)
            if low > high or (low_limit is not None and low < low_limit):
                raise ValueError(
                    f"{name} range ({low}, {high}) must be (low, high) with low <= high"
                    + (f" and low >= {low_limit}" if low_limit is not None else "")
                )
            object.__setattr__(self, name, (float(low), float(high)))  # JSON lists -> tuples
        if self.image_order not in ("linear", "cubic"):
            raise ValueError(f"image_order {self.image_order!r} must be 'linear' or 'cubic'")


# TrainConfig fields of the paper's recipe (two classes with gap insertion; none of the
# additions that measured better), as the "Paper's two classes" switch and --two-classes set.
PAPER_RECIPE: dict[str, Any] = {"outlines": False, "paste_neighbours": False, "batch_norm": False}


@dataclass(frozen=True)
class TrainConfig(_JsonRecord):
    """How a model is trained: every setting a user may change
    (:func:`~napari_unet.core.training.train`).

    The defaults are what measured best on real data within a few CPU minutes: the light
    preset, three classes (background, cell, outline), pasted neighbours and batch
    normalisation for roundish cells, Adam, batches of 4 tiles, and 450 steps or 3
    minutes, whichever comes first (docs/decisions/2026-12-01-step-budget.md).
    ``preset="paper"`` with ``PAPER_RECIPE`` is the paper's network and loss. The label
    convention, weight map, augmentation and normalisation are records of their own.
    """

    preset: str = "light"  # architecture of a new model (ignored when fine-tuning)
    outlines: bool = True  # three classes (outline class) instead of gap insertion
    paste_neighbours: bool = True  # also train on copies with painted cells made to touch
    batch_norm: bool | None = None  # in a new network; None: for roundish cells, not rods
    # training stops when either budget is spent
    minutes: float | None = 3.0  # time budget; None = no time limit
    iterations: int | None = 450  # optimiser steps; None = no step limit
    batch_size: int = 4  # tiles per step
    tile_size: int | None = None  # input px per side; None: output about 188 px
    learning_rate: float = 1e-3  # Adam; decays to a tenth along a cosine over the budget
    validation_fraction: float = 0.2  # painted cells held back (when there are >= 10)
    validate_every: float = 15.0  # seconds between validations
    seed: int = 0
    precision: str = "auto"  # one of PRECISIONS
    labels: LabelConfig = LabelConfig()  # how the painted labels are read
    weight_map: WeightMapConfig = WeightMapConfig()  # the loss weights (eq. 2)
    augmentation: AugmentConfig | None = AugmentConfig()  # None = no augmentation
    normalization: NormalizationConfig = NormalizationConfig()  # of a new model's input

    def __post_init__(self) -> None:
        preset(self.preset)  # raises for an unknown name
        _check_record("labels", self.labels, LabelConfig)
        _check_record("weight_map", self.weight_map, WeightMapConfig)
        _check_record("augmentation", self.augmentation, AugmentConfig, optional=True)
        _check_record("normalization", self.normalization, NormalizationConfig)
        if self.batch_norm not in (None, True, False):
            raise ValueError(f"batch_norm must be True, False or None, not {self.batch_norm!r}")
        if self.minutes is None and self.iterations is None:
            raise ValueError("give a time budget (minutes) or a number of iterations")
        if self.minutes is not None and not (
            isinstance(self.minutes, (int, float)) and 0 < self.minutes < math.inf
        ):
            raise ValueError(f"minutes = {self.minutes!r} must be a number above 0, e.g. 3")
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"precision {self.precision!r} is not known; use one of {', '.join(PRECISIONS)}"
            )
        if self.iterations is not None:
            _check_int("iterations", self.iterations, minimum=1)
        _check_int("batch_size", self.batch_size, minimum=1)
        if self.tile_size is not None:
            _check_int("tile_size", self.tile_size, minimum=1)
        if not (isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0):
            raise ValueError(f"learning_rate = {self.learning_rate!r} must be > 0, e.g. 0.001")
        if not (0.0 <= self.validation_fraction < 1.0):
            raise ValueError(
                f"validation_fraction = {self.validation_fraction!r} must be in [0, 1), e.g. 0.2"
            )
        _check_int("seed", self.seed, minimum=0)
