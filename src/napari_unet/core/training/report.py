"""What a training did, in plain lines for the command line and the dock: how many steps
of how many, why it ended, and how far to trust its validation score."""

from __future__ import annotations

from .loop import TrainResult

__all__ = ["FEW_VALIDATION_CELLS", "SHORT_OF_PLAN", "describe"]

SHORT_OF_PLAN = 0.8  # of the planned steps: fewer, and the clock ended training early
FEW_VALIDATION_CELLS = 10  # held-back cells below which one cell moves F1 by over 0.1


def describe(result: TrainResult) -> list[str]:
    """One to three lines: the steps and why training ended (and what to do when the clock
    ended it far short of its steps), then the validation score with the number of
    held-back cells it rests on."""
    config, steps = result.config, result.steps
    planned = config.iterations
    of = f" of {planned}" if planned is not None else ""
    if result.ended == "stopped":
        lines = [f"stopped after {steps}{of} steps"]
    elif result.ended == "minutes":
        lines = [f"trained {steps}{of} steps in the {config.minutes:g}-minute budget"]
        if planned is not None and steps < SHORT_OF_PLAN * planned:
            seconds = result.history["steps"][-1][1] / max(steps, 1) if steps else 0.0
            lines[0] = (
                f"trained only {steps} of {planned} steps: the {config.minutes:g}-minute "
                f"budget ran out first ({seconds:.1f} s a step on this machine)"
            )
            lines.append(
                "the model may be undertrained: give it more minutes (--minutes, or Minutes "
                "in the dock), close other work, or train on a GPU"
            )
    else:
        lines = [f"trained {steps} steps"]
    lines.append(_validation_line(result))
    verdict = _verdict(result)
    found, checked = result.painted_found
    if result.steps and not result.ready:
        lines.append(
            f"NOT READY: with its rules the model finds {found} of {checked} painted cells "
            "it was checked on; train longer (more steps or minutes), or paint more cells "
            "like the ones it misses"
        )
    elif checked:
        lines.append(f"its rules find {found} of {checked} painted cells it was checked on")
    if verdict and result.ready:
        lines.append(verdict)
    return lines


GOOD = (0.9, 0.75)  # validation F1 and matched IoU of a model to use as it is
USABLE_F1 = 0.7


def _verdict(result: TrainResult) -> str | None:
    """One line on what to do with the model, from its validation scores. On fewer than
    ``FEW_VALIDATION_CELLS`` held-back cells, one cell more found would move F1 by about
    1 / their number: a model is called weak only if it stays below usable even so."""
    f1, iou, held = result.best_f1, result.best_iou, result.validation_cells
    if f1 is None:
        return None
    if f1 >= GOOD[0] and (iou is None or iou >= GOOD[1]):
        return "verdict: good: segment with it, and look at the cells"
    one_cell = 1 / held if 0 < held < FEW_VALIDATION_CELLS else 0.0
    if f1 + one_cell >= USABLE_F1:
        return (
            "verdict: usable: segment, correct the cells it gets wrong in the paint, and "
            "train again (fine-tune) on them"
        )
    return "verdict: weak: paint more cells, above all like the ones it misses, and train longer"


def _validation_line(result: TrainResult) -> str:
    held = result.validation_cells
    if result.best_f1 is None:
        return (
            "not validated: fewer than 10 cells are painted, so none were held back; the "
            "last model is kept"
        )
    iou = "" if result.best_iou is None else f", matched IoU {result.best_iou:.2f}"
    line = (
        f"best model at step {result.best_step}: validation F1 {result.best_f1:.2f}{iou} "
        f"on {held} held-back painted cell{'s' if held != 1 else ''}"
    )
    if held < FEW_VALIDATION_CELLS:
        line += (
            f" (a rough score: one cell more or less moves it by about {1 / held:.2f}; "
            "paint more cells for a firmer one)"
        )
    return line
