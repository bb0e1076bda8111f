"""How sensitive the cells are to each constant of the rules that stays fixed.

A threshold that decides what a cell is stays a constant only where a table shows that
it is not sensitive on every data set (issue 31); everything else is calibrated on the
user's paint. This is that table: each constant set a step below and a step above its
default, one at a time, on the models of ``separation.py``'s table (HeLa six trainings,
BBBC007's six images, E. coli six, ISBI six: its cache), every other rule calibrated
on each model's paint as training does (``separation.py --rules calibrated``).

    ../.venv/bin/python constants.py /tmp/realdata [--seeds 0 1 2 3 4 5] [--only NAME ...]
        [--values V ...]

``--values``: other values than the two of ``VALUES``, for the one constant ``--only`` names.

A constant is measured only on the models whose rules read it; elsewhere its rows are
the defaults' by construction, and the table says "-":

- ``NECK_DEPTH``, ``NOTCH_DEPTH`` and ``JOIN_QUANTILE``: where necks are cut (outline
  networks on roundish, convex cells: ``CellShape.cuts_necks``);
- ``DIP_SMOOTHING`` and the cut along membranes (``BORDER_REACH``, ``MEMBRANE``,
  ``SMOOTHING``, ``SEED_DISTANCE``): where cells are parted at dips instead (roundish
  cells that are not convex: ``CellShape.parts_at_dips``);
- ``CONVEX_SOLIDITY``, which chooses between the two: roundish cells (``flips``);
- ``GAP_PROBABILITY``, ``TOLERANCE``, ``TIE``, ``MIN_SIZE_FRACTION``: every model.

Each cell of the table gives F1 at IoU 0.5 and the touching pairs (true masks sharing a
border) split, summed over the models; ISBI the Rand error. Needs the cache (it does not
train: run ``separation.py`` first). Prints the table and writes results/constants.json.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from pathlib import Path

import numpy as np
import separation
from _common import write_results

# each constant: the values measured (a step either side of the default) and which models'
# rules read it (a CellShape predicate, given whether the network has an outline class)
NECKS = "cuts_necks"
DIPS = "parts_at_dips"
ROUNDISH = "flips"
VALUES: dict[str, tuple[tuple[float, float], str | None]] = {
    "NECK_DEPTH": ((1.0, 1.5), NECKS),
    "NOTCH_DEPTH": ((1.0, 2.0), NECKS),
    "JOIN_QUANTILE": ((0.025, 0.1), NECKS),
    "CONVEX_SOLIDITY": ((0.85, 0.9), ROUNDISH),
    "DIP_SMOOTHING": ((0.5, 1.5), DIPS),
    "BORDER_REACH": ((3, 6), DIPS),
    "MEMBRANE": ((0.4, 0.6), DIPS),
    "SMOOTHING": ((0.5, 2.0), DIPS),
    "SEED_DISTANCE": ((2, 5), DIPS),
    "GAP_PROBABILITY": ((0.8, 0.95), None),
    "TOLERANCE": ((0.025, 0.1), None),
    "TIE": ((0.005, 0.02), None),
    "MIN_SIZE_FRACTION": ((0.1, 0.4), None),
}
DATASETS = ("hela", "bbbc007", "ecoli", "isbi")


def models(data: Path, seeds: list[int]) -> list[tuple[separation.Unit, int]]:
    """The (unit, seed) of every model of the table: BBBC007's six images at seed 0
    (one model each), the other data sets one model per seed."""
    found = []
    for dataset in DATASETS:
        for seed in [0] if dataset == "bbbc007" else seeds:
            found += [(unit, seed) for unit in separation.units(data, dataset, seed)]
    for unit, seed in found:
        path = separation.model_path(unit, seed)
        if not path.exists() or separation.paint_changed(path, unit.paint):
            sys.exit(f"{path.name}: no cached model of this paint; run separation.py first")
    return found


def shape_of(unit: separation.Unit, seed: int) -> tuple:
    """What decides which constants the rules of ``unit``'s model of ``seed`` read: its
    painted cells' shape, and whether the network has an outline class."""
    loaded, _ = separation.cached_model(unit, seed, fresh=False)
    return separation.painted_cells(unit), loaded.model.config.outlines


def reads(shape: tuple, predicate: str | None) -> bool:
    """Whether the rules of a model of ``shape`` (:func:`shape_of`) read a constant of
    ``predicate``."""
    cells, outlines = shape
    return predicate is None or getattr(cells, predicate)(outlines)


def scored(unit: separation.Unit, seed: int, name: str | None = None, value=None) -> dict:
    """The calibrated rules' row of one model, with the constant ``name`` at ``value``."""
    default = separation.set_constant(name, value) if name else None
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # (run_unit prints every row)
            rows = separation.run_unit(unit, seed, ["calibrated"], fresh=False)
    finally:
        if name:
            separation.set_constant(name, default)
    return rows[-1]


def summary(rows: list[dict]) -> str:
    """F1 and pairs split (ISBI: Rand error) over the rows of one data set."""
    if rows[0]["dataset"] == "isbi":
        return f"{np.mean([r['rand_error'] for r in rows]):.3f}"
    split = sum(r["pairs_1px"][0] for r in rows)
    total = sum(r["pairs_1px"][1] for r in rows)
    return f"{np.mean([r['f1'] for r in rows]):.3f}, {split} of {total}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="folder written by get-real-data")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--only", nargs="+", default=list(VALUES), choices=list(VALUES))
    parser.add_argument("--values", nargs="+", type=float, help="with one --only: these values")
    args = parser.parse_args()
    if args.values and len(args.only) != 1:
        parser.error("--values needs exactly one --only NAME")
    units = models(args.data, args.seeds)
    default = [scored(unit, seed) for unit, seed in units]
    shapes = [shape_of(unit, seed) for unit, seed in units]
    table = [("(the defaults)", "", {d: summary(_of(default, d)) for d in DATASETS})]
    records = [{**row, "constant": None, "value": None} for row in default]
    for name in args.only:
        values, predicate = VALUES[name]
        values = args.values or values
        read = [reads(shape, predicate) for shape in shapes]
        for value in values:
            rows = [
                scored(unit, seed, name, value) if r else row
                for (unit, seed), row, r in zip(units, default, read, strict=True)
            ]
            records += [
                {**row, "constant": name, "value": value}
                for row, r in zip(rows, read, strict=True)
                if r
            ]
            table.append(
                (
                    f"`{name}` ({getattr(separation.CONSTANTS[name], name)})",
                    f"{value:g}",
                    {
                        d: summary(_of(rows, d))
                        if any(r for (u, _), r in zip(units, read, strict=True) if u.dataset == d)
                        else "-"
                        for d in DATASETS
                    },
                )
            )
            print(f"{name} = {value:g}: {table[-1][2]}", flush=True)
    print(
        "\n| constant (default) | value | HeLa F1, pairs split | BBBC007 F1, pairs split "
        "| E. coli F1, pairs split | ISBI Rand error |"
    )
    print("|---|---|---|---|---|---|")
    for constant, value, cells in table:
        print(f"| {constant} | {value} | " + " | ".join(cells[d] for d in DATASETS) + " |")
    name = "constants" + ("" if args.only == list(VALUES) else "-" + "-".join(args.only))
    name += "".join(f"-{v:g}" for v in args.values or ())
    path = write_results(name, records, seeds=args.seeds)
    print(f"\nwritten: {path}")
    return 0


def _of(rows: list[dict], dataset: str) -> list[dict]:
    return [r for r in rows if r["dataset"] == dataset]


if __name__ == "__main__":
    sys.exit(main())
