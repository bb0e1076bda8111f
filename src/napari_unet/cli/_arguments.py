"""Argument types shared by the commands, with messages that say what is wrong."""

from __future__ import annotations

import argparse
import math

PRECISION_CHOICES = ["auto", "float32", "bfloat16"]


def positive_int(text: str) -> int:
    """A whole number above 0 (steps, tile sizes)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be a whole number above 0")
    return value


def finite_minutes(text: str) -> float:
    """A number of minutes above 0 and below infinity."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of minutes") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"{text} must be a number of minutes above 0, e.g. 3")
    return value


def folder(text: str):
    """A folder to write into (it need not exist yet)."""
    from pathlib import Path

    if not text.strip():
        raise argparse.ArgumentTypeError("an empty name is not a folder; give one, e.g. labels/")
    return Path(text)
