"""Where training tiles come from, and which painted cells are held back for validation.

Tiles are centred on annotated pixels only, drawn with probability proportional to the
pixel's loss weight: the class balance makes cells and background equally likely, and the
border term favours the places where cells touch. Pixels that are not annotated weigh 0
and are never drawn. Randomness comes from the ``rng`` passed in.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MAX_VALIDATION_CELLS", "MIN_VALIDATION_CELLS", "WeightedPixels", "hold_back_cells"]

MIN_VALIDATION_CELLS = 10  # fewer painted cells than this: no validation, all train
# validation time grows with the held-back cells, and each is a cell not trained on
# (complete masks can have thousands)
MAX_VALIDATION_CELLS = 40


class WeightedPixels:
    """Draws pixels of one or more weight maps with probability proportional to weight.

    weights: (H, W) float arrays, >= 0; an all-zero map is never drawn from.
    """

    def __init__(self, weights: list[np.ndarray]):
        self._shapes = [w.shape for w in weights]
        self._cumulative = [np.cumsum(w, dtype=np.float64).ravel() for w in weights]
        self.totals = np.array([c[-1] if c.size else 0.0 for c in self._cumulative])
        if not (self.totals > 0).any():
            raise ValueError("no pixel has a weight above 0: nothing is annotated")

    def draw(self, count: int, rng: np.random.Generator) -> list[tuple[int, int, int]]:
        """``count`` draws of (map index, row, column)."""
        maps = rng.choice(len(self.totals), size=count, p=self.totals / self.totals.sum())
        draws = []
        for index in maps:
            cumulative = self._cumulative[index]
            flat = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
            row, column = divmod(min(flat, cumulative.size - 1), self._shapes[index][1])
            draws.append((int(index), row, column))
        return draws


def hold_back_cells(
    cells: list[tuple[int, int]], fraction: float, rng: np.random.Generator
) -> set[tuple[int, int]]:
    """The painted cells kept out of training to validate on.

    cells: (plane, label) of every painted cell. With fewer than ``MIN_VALIDATION_CELLS``
    none are held back; otherwise ``fraction`` of them, at least 2 and at most
    ``MAX_VALIDATION_CELLS``, at random.
    """
    if fraction <= 0 or len(cells) < MIN_VALIDATION_CELLS:
        return set()
    count = min(max(2, round(fraction * len(cells))), MAX_VALIDATION_CELLS)
    chosen = rng.choice(len(cells), size=count, replace=False)
    return {cells[i] for i in sorted(chosen)}
