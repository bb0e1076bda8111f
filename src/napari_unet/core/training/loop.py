"""Training: from painted cells to a model, as a generator of events.

:func:`train` is the one training loop behind the "Train U-Net" widget, ``napari-unet
train`` and Python. Each step draws a batch of tiles centred on annotated pixels
(:mod:`.sampling`), deforms them (:mod:`.augment`), and takes one Adam step on the
weighted cross-entropy (:mod:`~napari_unet.core.targets`). Every few seconds the model is
scored on the painted cells held back from training and the best model is kept
(:mod:`.validation`). Training ends when the budget is spent (:mod:`.budget`) or when the
caller stops it (:class:`.TrainingControl`, within one step); the result holds the best and
the last model and the rules that turn the best model's probabilities into cells.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Generator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np
import torch

from ..cells.rules import InstanceRules
from ..config import LabelConfig, NormalizationConfig, TrainConfig, preset
from ..events import Checkpoint, LabelsIgnored, Status, TrainingStarted, TrainStep, Validation
from ..images import colour_channels, pair_channels
from ..network.device import pick_device
from ..network.model import UNet, nearest_valid_input_sizes, output_size
from ..network.precision import Precision, choose_precision, named_precision, will_measure
from ..targets import weighted_cross_entropy
from . import budget
from .control import TrainingControl
from .trainset import TrainingSet
from .validation import (
    BestModel,
    calibrated_cells,
    calibrated_rules,
    cpu_state,
    preview,
    uncalibrated_rules,
    validate,
)

__all__ = ["StartingModel", "TrainResult", "augmented_samples", "train"]

TILE_OUTPUT = (
    188  # px: default output of a training tile (docs/decisions/2026-11-21-light-preset.md)
)
PASTE_EVERY = 20  # steps between new draws of pasted neighbours (0.2 s for 700 x 1100 px)
PREVIEW_EVERY = 5.0  # seconds between previews, when a preview window is set
READY_SHARE = 0.5  # of its painted cells a model must find to be offered for use


class StartingModel(Protocol):
    """A model to fine-tune or resume: a loaded model file
    (:class:`~napari_unet.model_io.LoadedModel`) or a :class:`TrainResult`."""

    model: UNet
    optimizer_state: dict[str, Any] | None
    normalization: NormalizationConfig


@dataclass
class TrainResult:
    """What training produced.

    model: the best model (see :class:`~.validation.BestModel`; the last one without
        validation), eval mode, on the CPU.
    last_model: the model after the last step.
    optimizer_state: the optimiser's state after the last step, to resume from.
    history: {"steps": [[step, elapsed s, loss], ...], "validations": [[step, elapsed s,
        f1], ...]}; best_step: the step of ``model``.
    rules: how the model's probabilities become cells, measured on the painted cells
        (:func:`~.validation.calibrated_rules`); stored in the model file.
    """

    model: UNet
    last_model: UNet
    optimizer_state: dict[str, Any]
    config: TrainConfig
    history: dict[str, list] = field(default_factory=dict)
    best_step: int = 0
    best_f1: float | None = None
    ended: str = "steps"  # "steps" or "minutes" (the budget spent), or "stopped" (the caller)
    validation_cells: int = 0  # painted cells held back; best_f1 was measured on them
    rules: InstanceRules = field(default_factory=InstanceRules)
    # painted cells the rules find (IoU >= 0.5), of those checked (up to 40)
    painted_found: tuple[int, int] = (0, 0)
    painted_cells: int = 0  # painted cells at the end, held-back ones included
    best_iou: float | None = None  # mean IoU of the matched held-back cells, with best_f1

    @property
    def ready(self) -> bool:
        """Whether the model finds at least half of the painted cells it was checked on
        (``READY_SHARE``): a model that does not is never offered as ready to use."""
        found, checked = self.painted_found
        return self.steps > 0 and (checked == 0 or found >= READY_SHARE * checked)

    @property
    def stopped(self) -> bool:
        """Whether the caller stopped training before its budget was spent."""
        return self.ended == "stopped"

    @property
    def steps(self) -> int:
        """Optimiser steps taken."""
        return len(self.history.get("steps", []))

    @property
    def normalization(self) -> NormalizationConfig:
        return self.config.normalization

    @property
    def labels(self) -> LabelConfig:
        return self.config.labels

    def description(self) -> dict[str, Any]:
        """JSON-friendly record of the training, for the model file."""
        return {
            "config": self.config.to_dict(),
            "best_step": self.best_step,
            "best_f1": self.best_f1,
            "best_iou": self.best_iou,
            "validation_cells": self.validation_cells,
            "painted_found": list(self.painted_found),
            "painted_cells": self.painted_cells,
            "steps": self.steps,
            "stopped": self.stopped,
            "ended": self.ended,
            **self.rules.to_dict(),  # min_size, neck_ratio, core_threshold, flips
            "history": self.history,
        }


def train(
    pairs: list[tuple[np.ndarray, np.ndarray]],
    config: TrainConfig | None = None,
    *,
    start: StartingModel | UNet | None = None,
    device: str | torch.device | None = None,
    control: TrainingControl | None = None,
) -> Generator[Any, None, TrainResult]:
    """Train a U-Net on (image, labels) pairs.

    pairs: images (H, W), (C, H, W), (Z, H, W) or (Z, C, H, W), or colour images with the
        colour axis last (:func:`~napari_unet.core.images.colour_channels`), with labels
        (H, W) or (Z, H, W) in the label convention ``config.labels`` (sparse by default:
        0 = not annotated, 1 = background, others cells).
    start: a model to fine-tune (its architecture and classes are kept): a loaded model
        file or a result, whose optimiser state and normalisation are taken too, or a bare
        :class:`UNet` (normalised as ``config`` says); by default a new one from
        ``config.preset``, He-initialised from ``config.seed``.
    control: stop the training, hand it new paint, ask for previews, from any thread.
    Yields :class:`TrainingStarted` once, then :class:`TrainStep` per step,
    :class:`Validation` and :class:`Checkpoint` when the model is scored, and
    :class:`Preview` when a preview window is set. Returns a :class:`TrainResult`; raises
    ``ValueError`` for data that cannot be trained on, before any step. Reproducible for
    a seed with ``minutes=None`` on one CPU thread count, validated on the same steps.
    """
    began = time.perf_counter()  # the time budget starts here
    config, given, optimizer_state = _starting_point(config or TrainConfig(), start)
    control = control or TrainingControl()
    device = pick_device(device)
    rng = np.random.default_rng(config.seed)
    yield Status("reading the images and the paint")
    data, model = _prepare(pairs, config, given, rng)
    input_size, out_size = tile_sizes(model, config)
    shape = (config.batch_size, model.config.in_channels, input_size, input_size)
    precision = yield from _precision(model, device, shape, config.precision, control)
    model.to(device=device, memory_format=precision.memory_format).train()
    optimizer = _optimizer(model, config, optimizer_state)
    scaler = torch.amp.GradScaler(device.type, enabled=precision.autocast == torch.float16)
    regions = data.validation_regions()
    best = BestModel(len(data.held_back))
    yield _started(data, device, precision, input_size)
    history: dict[str, list] = {"steps": [], "validations": []}
    last_validation = last_preview = time.perf_counter()
    reserve = 0.0  # seconds kept for what follows the last step
    step = 0
    torch_state = torch.random.get_rng_state()
    torch.manual_seed(config.seed)  # dropout; restored at the end
    try:
        while True:
            progress = budget.progress(config, step, time.perf_counter() - began, reserve)
            if (progress >= 1.0 and step) or control.stopped:  # (at least one step)
                break
            regions = yield from _new_paint(data, control, step, regions)
            batch = data.sample_batch(config.batch_size, input_size, out_size, rng)
            lr = budget.learning_rate(config, progress)
            loss = _step(model, optimizer, scaler, precision, batch, lr, device)
            step += 1
            now = time.perf_counter()
            history["steps"].append([step, round(now - began, 3), round(loss, 5)])
            progress = budget.progress(config, step, now - began, reserve)
            yield TrainStep(step, loss, lr, now - began, progress)
            finished = progress >= 1.0 or control.stopped
            if finished or now - last_validation >= config.validate_every:
                scored = yield from _validation(
                    model, data, regions, best, step, now - began, device
                )
                if scored is not None:
                    f1, seconds = scored
                    history["validations"].append([step, round(now - began, 3), f1])
                    calibrated = calibrated_cells(model, data)
                    reserve = budget.finishing_time(seconds, len(regions), calibrated)
                last_validation = time.perf_counter()
            request = control.preview_window()
            if request is not None and now - last_preview >= PREVIEW_EVERY:
                yield preview(model, data, request, device, control.take_unsure())
                last_preview = time.perf_counter()
    finally:
        torch.random.set_rng_state(torch_state)
    ended = "stopped" if control.stopped else _why_it_ended(config, step)
    return _result(model, optimizer, data, config, history, best, step, ended, device)


def _starting_point(
    config: TrainConfig, start: StartingModel | UNet | None
) -> tuple[TrainConfig, UNet | None, dict[str, Any] | None]:
    """The settings, the model to fine-tune (None: a new one) and the optimiser state to
    resume from: a starting model brings its normalisation and optimiser state."""
    if start is None or isinstance(start, UNet):
        return config, start, None
    return replace(config, normalization=start.normalization), start.model, start.optimizer_state


def _prepare(
    pairs: list[tuple[np.ndarray, np.ndarray]],
    config: TrainConfig,
    model: UNet | None,
    rng: np.random.Generator,
) -> tuple[TrainingSet, UNet]:
    """The training set, and the network to train: a copy of ``model``, or a new one."""
    wanted = model.config.in_channels if model is not None else None  # None: a new model
    pairs = [(colour_channels(image, wanted), labels) for image, labels in pairs]
    if model is not None:
        channels, outlines = model.config.in_channels, model.config.outlines
    else:
        first = pairs[0] if pairs else None
        channels = pair_channels(np.shape(first[0]), np.shape(first[1])) if first else 1
        outlines = config.outlines
    data = TrainingSet(
        pairs,
        config,
        in_channels=channels,
        outlines=outlines,
        scale=model.config.scale if model is not None else None,  # None: from the cells
        rng=rng,
    )
    model = copy.deepcopy(model) if model is not None else new_model(config, channels, data)
    return data, model


def new_model(config: TrainConfig, channels: int, data: TrainingSet) -> UNet:
    """A new network from ``config.preset``, He-initialised from ``config.seed``, with
    batch normalisation when ``config.batch_norm`` says so; by default (None) for
    roundish cells (docs/decisions/2026-12-01-shape-policy.md)."""
    batch_norm = config.batch_norm if config.batch_norm is not None else data.cells.roundish
    model = UNet(
        preset(
            config.preset,
            in_channels=channels,
            classes=2 + config.outlines,
            batch_norm=batch_norm,
            scale=data.scale,
        )
    )
    model.reset_parameters(torch.Generator().manual_seed(config.seed))
    return model


def tile_sizes(model: UNet, config: TrainConfig) -> tuple[int, int]:
    """(input, output) px of a training tile: ``config.tile_size`` rounded up to a valid
    size, by default the input whose output is about ``TILE_OUTPUT`` px."""
    wanted = config.tile_size or TILE_OUTPUT + 2 * model.halo
    input_size = nearest_valid_input_sizes(model.config, wanted)[1]
    return input_size, output_size(model.config, input_size)


def _precision(
    model: UNet, device: torch.device, shape: tuple[int, ...], name: str, control
) -> Generator[Status, None, Precision]:
    """The precision to train in: ``name``, or for "auto" the measured choice (said
    before it is measured: a few seconds, once per machine); not measured when training
    was stopped while the data was prepared (no step follows)."""
    if name != "auto" or control.stopped:
        return named_precision("float32" if name == "auto" else name, device, training=True)
    if will_measure(model, device, shape, training=True):
        yield Status("timing float32 against bfloat16 on this CPU (once for this machine)")
    return choose_precision(model, device, shape, training=True)


def _why_it_ended(config: TrainConfig, steps: int) -> str:
    """ "steps" when the step budget was spent, else "minutes"."""
    return "steps" if config.iterations is not None and steps >= config.iterations else "minutes"


def _started(
    data: TrainingSet, device: torch.device, precision: Precision, input_size: int
) -> TrainingStarted:
    return TrainingStarted(
        device=str(device),
        precision=precision.name,
        cells=data.cell_count,
        validation_cells=len(data.held_back),
        input_size=input_size,
        warnings=tuple(data.warnings),
    )


def _optimizer(
    model: UNet, config: TrainConfig, state: dict[str, Any] | None
) -> torch.optim.Optimizer:
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    if state is not None:
        try:
            optimizer.load_state_dict(state)
        except (ValueError, KeyError) as error:
            raise ValueError(
                f"the saved optimiser state does not fit this model: {error}"
            ) from None
    return optimizer


def _new_paint(
    data: TrainingSet, control: TrainingControl, step: int, regions: list
) -> Generator[LabelsIgnored, None, list]:
    """Before a step: new pasted neighbours every ``PASTE_EVERY`` steps, and the paint
    handed in since the last step. Returns the validation regions (new ones when the
    paint changed)."""
    if data.pasting and step and step % PASTE_EVERY == 0:
        data.paste_new_neighbours()
    updates = control.take_labels()
    if updates:
        try:
            if data.apply_labels(updates):
                return data.validation_regions()
        except ValueError as error:  # new paint that breaks the rules: keep the old
            yield LabelsIgnored(str(error))
    return regions


def _step(
    model: UNet,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    precision: Precision,
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    lr: float,
    device: torch.device,
) -> float:
    """One optimiser step on a batch of (images, targets, weights); returns the loss."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    x, y, w = batch
    memory_format = precision.memory_format
    model.to(memory_format=memory_format)  # (prediction switches to channels_last)
    x = x.to(device).contiguous(memory_format=memory_format)
    y, w = y.to(device), w.to(device)
    try:
        with precision.autocast_on(device.type):
            logits = model(x)
        loss = weighted_cross_entropy(logits, y, w)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
    except torch.OutOfMemoryError:
        raise MemoryError(
            f"out of memory on {device} training on {x.shape[0]} tiles of "
            f"{x.shape[-1]} px; choose a smaller tile size or another device"
        ) from None
    scaler.step(optimizer)
    scaler.update()
    return float(loss.detach())


def _validation(
    model: UNet,
    data: TrainingSet,
    regions: list,
    best: BestModel,
    step: int,
    elapsed: float,
    device: torch.device,
) -> Generator[Validation | Checkpoint, None, tuple[float, float] | None]:
    """Score the model on the held-back cells and keep it if it is the best so far.
    Returns the F1 and the seconds validation took per held-back cell (None without any
    held-back cells)."""
    if not regions:  # nothing to validate on: the latest model is the best
        best.step = step
        yield Checkpoint(step, None)
        return None
    began = time.perf_counter()
    scores = validate(model, data, regions, device)
    seconds = (time.perf_counter() - began) / len(regions)
    yield Validation(
        step, elapsed, scores.f1, scores.precision, scores.recall, scores.mean_matched_iou
    )
    if best.offer(model, step, scores):
        yield Checkpoint(step, best.f1)
    return scores.f1, seconds


def _result(
    model: UNet,
    optimizer: torch.optim.Optimizer,
    data: TrainingSet,
    config: TrainConfig,
    history: dict[str, list],
    best: BestModel,
    steps: int,
    ended: str,
    device,
) -> TrainResult:
    """The best and last models on the CPU, and the best model's calibrated rules (not
    calibrated when no step was taken: such a model is not one to use)."""
    last_model = _on_cpu(model, cpu_state(model))
    best_model = _on_cpu(model, best.state) if best.state is not None else copy.deepcopy(last_model)
    rules, found, checked = uncalibrated_rules(best_model, data), 0, 0
    if steps:
        rules, found, checked = calibrated_rules(best_model, data, device)
    best_model.to("cpu")  # (calibrating moved it to the device)
    return TrainResult(
        model=best_model,
        last_model=last_model,
        optimizer_state=optimizer.state_dict(),
        config=config,
        history=history,
        best_step=best.step if best.state is not None else steps,
        best_f1=best.f1,
        best_iou=best.iou,
        ended=ended,
        validation_cells=len(data.held_back),
        rules=rules,
        painted_found=(found, checked),
        painted_cells=data.cells.count,
    )


def _on_cpu(model: UNet, state: dict[str, torch.Tensor]) -> UNet:
    copy_ = UNet(model.config)
    copy_.load_state_dict(state)
    return copy_.eval()


def augmented_samples(
    pairs: list[tuple[np.ndarray, np.ndarray]],
    config: TrainConfig,
    count: int = 4,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` training tiles as :func:`train` would draw them with ``config`` (same
    training set, network scale and tile size): images (N, C, h, w) float32, targets
    (N, h', w') uint8 (the classes of the tile's output, centred) and their loss weights
    (N, h', w') float32 (0: not painted, ignored)."""
    rng = rng or np.random.default_rng()
    config = replace(config, validation_fraction=0.0)
    data, model = _prepare(pairs, config, None, rng)
    input_size, out_size = tile_sizes(model, config)
    images, targets, weights = data.sample_batch(count, input_size, out_size, rng)
    return images.numpy(), targets.numpy(), weights.numpy()
