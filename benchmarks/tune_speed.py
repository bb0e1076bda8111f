"""How fast does "Tune the cells" redraw the labels of a 1024 x 1024 image?

The demo's model of `slide.py` (the light preset, 300 steps on the sample, flips off)
segments a 1024 x 1024 tiling of the sample once, keeping the probabilities;
then the labels are drawn again from them (`napari_unet.core.segment.relabel`, what a
slider move runs) with the model's rules and with each slider moved, timed 3 times each
(moved back between times: each is a new move; "not joined": what joining cells inside
cells costs), beside the time of the whole segmentation
(the network included). Only the interior probability slider redoes the interiors and
their basins; the others reuse them (`label_instances`'s memo); beside it, the same
redraw with nothing kept (as before the stages were kept).

    ../.venv/bin/python tune_speed.py

Writes results/tune_speed.json.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from _common import write_results
from slide import demo_model

from napari_unet._sample_data import sample_cells
from napari_unet.core.events import drain
from napari_unet.core.segment import relabel, segment
from napari_unet.model_io import load_model


def main() -> None:
    folder = Path("/tmp/napari-unet-slide")  # (shares slide.py's model)
    folder.mkdir(exist_ok=True)
    loaded = load_model(demo_model(folder))
    image = np.tile(sample_cells().image, (4, 4))
    started = time.perf_counter()
    result = drain(
        segment(loaded.model, image, loaded.normalization, rules=loaded.rules, keep_classes=True)
    )
    whole = time.perf_counter() - started
    rules = loaded.rules
    moves = {
        "the model's rules": rules,
        "smallest cell x 2": dataclasses.replace(rules, min_size=2 * rules.min_size),
        "cut at necks 0.5": dataclasses.replace(rules, neck_ratio=0.5),
        "cut at necks off": dataclasses.replace(rules, neck_ratio=0.0),
        "core probability 0.4": dataclasses.replace(rules, interior_threshold=0.4),
        "core must reach 0.5": dataclasses.replace(rules, core_threshold=0.5),
        "grow cores by 0": dataclasses.replace(rules, growth=0),
        "cells inside cells not joined": dataclasses.replace(rules, join_enclosed=False),
    }
    rows = []
    print(
        f"1024 x 1024, {torch.get_num_threads()} threads; segment (network and labels): "
        f"{whole:.2f} s, {int(result.labels.max())} cells"
    )
    forgetful = dataclasses.replace(result.probabilities, memos=())  # nothing kept
    print("| slider | redraw (median of 3) | without the kept stages | cells |")
    print("|---|---|---|---|")
    for name, moved in moves.items():
        times, afresh = [], []
        for _ in range(3):
            began = time.perf_counter()
            labels = relabel(result.probabilities, moved)
            times.append(time.perf_counter() - began)
            relabel(result.probabilities, rules)  # back, so that each move is a new one
            began = time.perf_counter()
            relabel(forgetful, moved)
            afresh.append(time.perf_counter() - began)
        if name == "the model's rules":
            assert np.array_equal(labels, result.labels)  # the same cells as segment's
        seconds, again = statistics.median(times), statistics.median(afresh)
        rows.append(
            {
                "slider": name,
                "redraw_s": seconds,
                "without_kept_stages_s": again,
                "cells": int(labels.max()),
                "segment_s": whole,
            }
        )
        print(f"| {name} | {seconds:.2f} s | {again:.2f} s | {int(labels.max())} |")
    print(f"written: {write_results('tune_speed', rows)}")


if __name__ == "__main__":
    main()
