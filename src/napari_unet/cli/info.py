"""``napari-unet info``: what a model file or a preset holds, and its tile sizes."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(commands) -> None:
    info = commands.add_parser(
        "info",
        help="describe a model file or a preset",
        description="Print the architecture, size, halo and valid tile sizes of a model file "
        "or a preset; for a model file also how it normalises images, how its cells are made "
        "and how it was trained.",
        epilog="examples:\n  napari-unet info model.safetensors\n  napari-unet info --preset paper",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = info.add_mutually_exclusive_group(required=True)
    source.add_argument("model", nargs="?", type=Path, help="a model file (.safetensors)")
    source.add_argument("--preset", help="a preset name: paper or light")
    info.set_defaults(run=run)


def training_facts(training: dict) -> dict[str, str]:
    """What a model file says about its training, for people (empty for files without)."""
    if "steps" not in training:
        return {}
    config = training.get("config", {})
    budget = [
        f"{config['iterations']} steps" if config.get("iterations") else None,
        f"{config['minutes']:g} minutes" if config.get("minutes") else None,
    ]
    budget = [b for b in budget if b]
    said = " or ".join(budget) + (", whichever first" if len(budget) > 1 else "")
    ended = {"steps": "its steps", "minutes": "its minutes", "stopped": "being stopped"}
    facts = {
        "trained": f"{training['steps']} steps, ended by {ended.get(training.get('ended'), '?')}"
        f" (budget: {said or '?'}; seed {config.get('seed', '?')})",
    }
    if training.get("images") or training.get("painted_cells"):
        facts["trained on"] = (
            f"{', '.join(training.get('images') or ['?'])}; "
            f"{training.get('painted_cells', '?')} painted cells"
        )
    f1, held = training.get("best_f1"), training.get("validation_cells")
    if isinstance(f1, (int, float)):
        cells = f" on {held} held-back painted cells" if held else ""
        facts["validation"] = f"F1 {f1:.2f}{cells}, best at step {training.get('best_step')}"
    else:
        facts["validation"] = "none (fewer than 10 painted cells)"
    return facts


def run(args: argparse.Namespace) -> int:
    from ..core.config import preset
    from ..core.network.model import UNet, halo, nearest_valid_input_sizes, output_size

    if args.preset:
        config, details = preset(args.preset), {}
        title = f"preset {args.preset}"
    else:
        from ..model_io import load_model

        loaded = load_model(args.model)
        config = loaded.model.config
        title = str(args.model)
        details = {
            "normalization": loaded.normalization.to_dict(),
            "labels": loaded.labels.to_dict(),
            "cells": loaded.rules.to_dict(),
            "written": f"{loaded.created or '?'} by napari-unet {loaded.package_version}",
            **training_facts(loaded.training),
        }
    parameters = sum(p.numel() for p in UNet(config).parameters())
    smallest = nearest_valid_input_sizes(config, 1)[1]
    examples = [smallest] + [nearest_valid_input_sizes(config, s)[1] for s in (256, 512, 1024)]
    print(title)
    for key, value in {**config.to_dict(), **details}.items():
        print(f"  {key + ':':<16} {value}")
    print(f"  {'parameters:':<16} {parameters:,}")
    print(f"  {'halo:':<16} {halo(config)} px per side")
    print(
        f"  {'tile sizes:':<16} {smallest} + {2**config.poolings} k px, e.g. "
        + ", ".join(f"{s} -> {output_size(config, s)}" for s in examples)
    )
    return 0
