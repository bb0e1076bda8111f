"""Training: from painted cells to a model.

``train`` (:mod:`.loop`) is the loop; the training set (:mod:`.trainset`), where tiles come
from (:mod:`.sampling`), their deformation (:mod:`.augment`), made-up contacts
(:mod:`.contacts`), the budget and schedule (:mod:`.budget`), validation and the best
model (:mod:`.validation`) each have a module of their own. A caller steers a running
training through a :class:`TrainingControl`.
"""

from .control import TrainingControl
from .loop import StartingModel, TrainResult, augmented_samples, train
from .report import describe

__all__ = [
    "StartingModel",
    "TrainResult",
    "TrainingControl",
    "augmented_samples",
    "describe",
    "train",
]
