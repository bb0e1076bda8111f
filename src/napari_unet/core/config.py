"""Frozen configuration records with validation and a JSON-friendly round trip.

Every record here is plain data: it is written into model files as JSON (see
:mod:`napari_unet.model_io`) and read back with ``from_dict``. Invalid values raise
``ValueError`` with a message that says how to fix them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

_Record = TypeVar("_Record", bound="_JsonRecord")

PADDING_MODES = ("valid", "same")


def _check_int(name: str, value: Any, *, minimum: int, maximum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number, not {value!r}")
    if value < minimum:
        raise ValueError(f"{name} = {value} is too small; the smallest allowed is {minimum}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} = {value} is too large; the largest allowed is {maximum}")


class _JsonRecord:
    """Mixin: ``to_dict``/``from_dict`` for flat frozen dataclasses of JSON scalars."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[_Record], data: dict[str, Any]) -> _Record:
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(
                f"{cls.__name__} has no field(s) {', '.join(unknown)}; "
                f"known fields: {', '.join(sorted(names))}"
            )
        return cls(**data)


@dataclass(frozen=True)
class UNetConfig(_JsonRecord):
    """Architecture of a U-Net (Ronneberger et al. 2015, Fig. 1).

    The defaults are the paper's network: 5 resolution levels (4 poolings), 64 feature
    channels at the first level doubling at each pooling, unpadded ("valid") 3x3
    convolutions, dropout at the end of the contracting path, no batch normalisation.
    """

    in_channels: int = 1  # channels of the input image (1 for a grey image)
    classes: int = 2  # output classes; 2 = background and cell
    depth: int = 5  # resolution levels; the network pools depth - 1 times
    base_channels: int = 64  # feature channels at the first level
    padding: Literal["valid", "same"] = "valid"  # "valid": unpadded convolutions (paper)
    dropout: float = 0.5  # dropout probability at the end of the contracting path; 0 = off
    batch_norm: bool = False  # batch normalisation after each 3x3 convolution (not in the paper)

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

    @property
    def poolings(self) -> int:
        """Number of 2x2 max-poolings (and of up-convolutions): ``depth - 1``."""
        return self.depth - 1


PRESETS: dict[str, UNetConfig] = {
    # The network of the paper: 31,030,658 parameters for 1 input channel and 2 classes.
    "paper": UNetConfig(depth=5, base_channels=64, padding="valid"),
    # CPU-friendly: 481,762 parameters (1 channel, 2 classes), 3 poolings. A first trial on real nuclei (TRIALS.md)
    # found it as good as 32 channels / 4 poolings within a 3-10 minute CPU budget, at 3x
    # the training steps.
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
