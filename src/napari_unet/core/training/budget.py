"""The training budget: how far along training is, the learning rate at each point, and the
time kept for what follows the last step.

Training stops after ``TrainConfig.iterations`` steps or ``TrainConfig.minutes``, whichever
comes first (docs/decisions/2026-12-01-step-budget.md). The minutes cover the whole call:
reading the data, the steps, and the last validation and calibration of the rules, whose
time is estimated from the last validation and kept back from the steps.
"""

from __future__ import annotations

import math

from ..config import TrainConfig

__all__ = ["finishing_time", "learning_rate", "progress"]

FINAL_LR_FRACTION = 0.1  # of the learning rate, reached along a cosine at the end of the budget
# seconds the neck calibration takes per cell, in units of the seconds validation takes
# per held-back cell (both predict a crop around the cell; calibration labels it at every
# candidate neck ratio, which measured about 1.5x)
CALIBRATION_COST = 2.0


def progress(config: TrainConfig, step: int, elapsed: float, reserve: float = 0.0) -> float:
    """Fraction of the budget used: the larger of the time and the step fractions. The
    time for steps is the budget less ``reserve`` seconds (at most half of it) kept for
    what follows the last step."""
    fractions = []
    if config.minutes is not None:
        budget = 60.0 * config.minutes
        fractions.append(elapsed / (budget - min(reserve, budget / 2)))
    if config.iterations is not None:
        fractions.append(step / config.iterations)
    return min(max(fractions), 1.0)


def learning_rate(config: TrainConfig, progress: float) -> float:
    """The learning rate at ``progress`` (0-1): from ``config.learning_rate`` down to
    ``FINAL_LR_FRACTION`` of it along a cosine."""
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))  # 1 -> 0
    return config.learning_rate * (FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * cosine)


def finishing_time(seconds_per_cell: float, validated: int, calibrated: int) -> float:
    """Seconds training takes after its last step, from how long validation took per
    held-back cell: a last validation of ``validated`` cells, then the calibration of the
    rules on ``calibrated`` painted cells."""
    return seconds_per_cell * (validated + CALIBRATION_COST * calibrated)
