"""Cells from probabilities: the labelling (:mod:`.instances`), the rules that steer it with
their shape policy and calibration (:mod:`.rules`), and how labels are scored
(:mod:`.metrics`; the warping error, :mod:`.warping`). Nothing here runs a network."""

from .instances import cell_probability, label_instances, labels_from_probabilities
from .metrics import match_instances, split_touching_pairs
from .rules import CellShape, InstanceRules, measure_cells, rules_for

__all__ = [
    "CellShape",
    "InstanceRules",
    "cell_probability",
    "label_instances",
    "labels_from_probabilities",
    "match_instances",
    "measure_cells",
    "rules_for",
    "split_touching_pairs",
]
