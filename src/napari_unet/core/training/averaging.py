"""The mean of the weights over the last part of training.

Late in a short training the weights still wander from step to step, and so do the cells
they make (docs/decisions/2026-12-06-averaged-weights.md). The mean of the weights over the
steps from ``TrainConfig.average_from`` of the budget on (batch-normalisation statistics
averaged alike) is the model that validation scores from then on: one network, so it costs
nothing when segmenting.
"""

from __future__ import annotations

import copy

import torch

from ..network.model import UNet

__all__ = ["WeightAverage"]


class WeightAverage:
    """The running mean of a training model's weights from ``start`` (a fraction of the
    budget; None: never, the last weights are the model)."""

    def __init__(self, start: float | None) -> None:
        self.start = start
        self.model: UNet | None = None  # None: nothing averaged yet
        self.count = 0

    def update(self, model: UNet, progress: float) -> None:
        """Add ``model``'s weights after a step taken at ``progress`` (0-1 of the budget)."""
        if self.start is None or progress < self.start:
            return
        if self.model is None:
            self.model, self.count = copy.deepcopy(model), 1
            return
        self.count += 1
        with torch.no_grad():
            for mean, now in zip(
                self.model.state_dict().values(), model.state_dict().values(), strict=True
            ):
                if mean.is_floating_point():
                    mean.lerp_(now, 1.0 / self.count)
                else:  # (batch-normalisation's count of batches)
                    mean.copy_(now)

    def restart(self) -> None:
        """Forget the mean (the paint changed: earlier weights learned other cells)."""
        self.model, self.count = None, 0

    def current(self, model: UNet) -> UNet:
        """The model to score and keep: the mean where there is one, else ``model``."""
        return self.model if self.model is not None else model
