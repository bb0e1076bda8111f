"""Models trained in this napari session, shared by the "Train U-Net" and "Segment layer"
widgets of one viewer (a trained model is usable at once, before it is saved)."""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from psygnal import Signal

from ..core.cells.rules import InstanceRules
from ..core.config import NormalizationConfig
from ..core.network.model import UNet


@dataclass(frozen=True)
class TrainedModel:
    name: str
    model: UNet
    normalization: NormalizationConfig
    rules: InstanceRules = InstanceRules()  # TrainResult.rules


class SessionModels:
    """The trained models of one viewer, newest last; ``changed`` fires on every change."""

    changed = Signal()

    def __init__(self) -> None:
        self.models: list[TrainedModel] = []

    def add(self, trained: TrainedModel) -> None:
        self.models = [m for m in self.models if m.name != trained.name] + [trained]
        self.changed.emit()

    def get(self, name: str) -> TrainedModel | None:
        return next((m for m in self.models if m.name == name), None)


_SESSIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def session_models(viewer) -> SessionModels:
    """The :class:`SessionModels` of ``viewer`` (created on first use, gone with it)."""
    if viewer not in _SESSIONS:
        _SESSIONS[viewer] = SessionModels()
    return _SESSIONS[viewer]
