"""Training: from painted cells to a model, as a generator of events.

:func:`train` is the one training loop behind the "Train U-Net" widget, ``napari-unet
train`` and Python. Each step draws a batch of tiles centred on annotated pixels
(:mod:`~napari_unet.core.sampling`), deforms them (:mod:`~napari_unet.core.augment`),
and takes one Adam step on the weighted cross-entropy (:mod:`~napari_unet.core.loss`).
Every few seconds the model is scored on the painted cells held back from training, and
the best model is kept. Training ends when the time or step budget is spent or when
``stop`` is set (within one step); the result holds the best and the last model. The time
budget covers the whole call: preparing the data, the steps, and measuring the rules that
turn the best model's probabilities into cells.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .colour import colour_channels
from .config import (
    AugmentConfig,
    InstanceRules,
    LabelConfig,
    NormalizationConfig,
    TrainConfig,
    WeightMapConfig,
    preset,
)
from .device import pick_device
from .events import (
    Checkpoint,
    LabelsIgnored,
    Preview,
    TrainingStarted,
    TrainStep,
    Validation,
    drain,
)
from .instances import CORE_THRESHOLD
from .loss import weighted_cross_entropy
from .metrics import InstanceScores, match_instances
from .model import UNet, nearest_valid_input_sizes, output_size
from .precision import choose_precision
from .predict import predict_tiled
from .scale import resize_image
from .segment import cell_probability, labels_from_probabilities
from .trainset import TrainingSet

__all__ = ["TrainResult", "infer_channels", "train"]

TILE_OUTPUT = 188  # px: default output size of a training tile (TRIALS.md)
PASTE_EVERY = 20  # steps between new draws of pasted neighbours (0.2 s for 700 x 1100 px)
DEFAULT_AUGMENTATION = AugmentConfig()  # elastic deformation and the rest, as in the paper
FINAL_LR_FRACTION = 0.1  # of the learning rate, reached along a cosine at the end of the budget
PREVIEW_EVERY = 5.0  # seconds between previews, when a preview window is set
MIN_SIZE_FRACTION = 0.2  # of the median painted cell area: the smallest object kept
NECK_RATIOS = (0.5, 0.6, 0.7, 0.8)  # candidates, gentlest first
NECK_TOLERANCE = 0.05  # share of painted cells a neck ratio may cut
NECK_CELLS = 40  # painted cells the neck ratio is calibrated on, at most
# seconds the neck calibration takes per cell, in units of the seconds validation takes
# per held-back cell (both predict a crop around the cell; calibration labels it at every
# neck ratio: 1.3-1.6x on HeLa nuclei, rounded up)
CALIBRATION_COST = 2.0
# validation F1 x IoU this close to the best counts as a tie (plus what one held-back cell
# can change: 1 / their number)
QUALITY_TOLERANCE = 0.03


@dataclass
class TrainResult:
    """What training produced.

    model: the best model (by F1 x mean matched IoU on the held-back cells, the
        "panoptic quality"; differences one held-back cell could make count as ties, and
        ties go to the later model; the last one without validation), eval mode, on the
        CPU.
    last_model: the model after the last step.
    optimizer_state: the optimiser's state after the last step, to resume from.
    history: {"steps": [[step, elapsed s, loss], ...], "validations": [[step, elapsed s,
        f1], ...]}; best_step: the step of ``model``.
    rules: how the model's probabilities become cells, measured on the painted cells
        (see :func:`_rules`); stored in the model file.
    """

    model: UNet
    last_model: UNet
    optimizer_state: dict[str, Any]
    normalization: NormalizationConfig
    labels: LabelConfig
    config: TrainConfig
    history: dict[str, list] = field(default_factory=dict)
    best_step: int = 0
    best_f1: float | None = None
    stopped: bool = False  # True when ``stop`` ended training before the budget
    rules: InstanceRules = field(default_factory=InstanceRules)

    def description(self) -> dict[str, Any]:
        """JSON-friendly record of the training, for the model file."""
        return {
            "config": self.config.to_dict(),
            "best_step": self.best_step,
            "best_f1": self.best_f1,
            "steps": len(self.history.get("steps", [])),
            "stopped": self.stopped,
            **self.rules.to_dict(),  # min_size, neck_ratio, core_threshold, flips
            "history": self.history,
        }


def infer_channels(image: np.ndarray, labels: np.ndarray) -> int:
    """Input channels of an (image, labels) pair: the image has one axis more than its
    labels when it has a channel axis ((C, H, W) with (H, W), (Z, C, H, W) with (Z, H, W))."""
    image_ndim, labels_ndim = np.ndim(image), np.ndim(labels)
    if image_ndim == labels_ndim + 1:
        return int(np.shape(image)[-3])
    return 1


def train(
    pairs: list[tuple[np.ndarray, np.ndarray]],
    config: TrainConfig | None = None,
    *,
    model: UNet | None = None,
    optimizer_state: dict[str, Any] | None = None,
    normalization: NormalizationConfig | None = None,
    labels: LabelConfig | None = None,
    weight_map: WeightMapConfig | None = None,
    augmentation: AugmentConfig | None = DEFAULT_AUGMENTATION,
    device: str | torch.device | None = None,
    stop: threading.Event | None = None,
) -> Generator[Any, None, TrainResult]:
    """Train a U-Net on (image, labels) pairs.

    pairs: images (H, W), (C, H, W), (Z, H, W) or (Z, C, H, W), or colour images with the
        colour axis last (:func:`~napari_unet.core.colour.colour_channels`), with labels
        (H, W) or (Z, H, W) in the label convention ``labels`` (sparse by default: 0 = not
        annotated, 1 = background, others cells).
    model: a model to fine-tune (its architecture and class count are kept); by default a
        new one from ``config.preset``, He-initialised from ``config.seed``.
    optimizer_state: an Adam ``state_dict`` to resume from (as saved in a model file).
    augmentation: None = no augmentation.
    stop: set it (from any thread) to end training after the current step.
    Yields :class:`TrainingStarted` once, then :class:`TrainStep` per step,
    :class:`Validation` and :class:`Checkpoint` when the model is scored, and
    :class:`Preview` when the data has a preview window. Returns a :class:`TrainResult`.
    Raises ``ValueError`` for data that cannot be trained on, before any step.
    Reproducible on the CPU for a given ``config.seed``.
    """
    start = time.perf_counter()  # the time budget starts here
    config = config or TrainConfig()
    labels = labels or LabelConfig()
    normalization = normalization or NormalizationConfig()
    device = pick_device(device)
    rng = np.random.default_rng(config.seed)
    wanted = model.config.in_channels if model is not None else None  # None: a new model
    pairs = [(colour_channels(image, wanted), label_image) for image, label_image in pairs]
    if model is not None:
        channels, contours = model.config.in_channels, model.config.classes == 3
    else:
        channels, contours = (infer_channels(*pairs[0]) if pairs else 1), config.contours
    for index, (image, label_image) in enumerate(pairs):
        if infer_channels(image, label_image) != channels:
            raise ValueError(
                f"pair {index + 1}: the image has {infer_channels(image, label_image)} "
                f"channel(s) but the model takes {channels}"
            )
    data = TrainingSet(
        pairs,
        in_channels=channels,
        labels=labels,
        weight_map=weight_map,
        normalization=normalization,
        contours=contours,
        paste_neighbours=config.paste_neighbours,
        validation_fraction=config.validation_fraction,
        scale=model.config.scale if model is not None else None,  # None: from the cells
        rng=rng,
    )
    model = copy.deepcopy(model) if model is not None else _new_model(config, channels, data)
    input_size = nearest_valid_input_sizes(
        model.config, config.tile_size or TILE_OUTPUT + 2 * model.halo
    )[1]
    out_size = output_size(model.config, input_size)

    shape = (config.batch_size, channels, input_size, input_size)
    precision = choose_precision(model, device, shape, training=True)
    memory_format = precision.memory_format
    model.to(device=device, memory_format=memory_format).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    if optimizer_state is not None:
        try:
            optimizer.load_state_dict(optimizer_state)
        except (ValueError, KeyError) as error:
            raise ValueError(
                f"the saved optimiser state does not fit this model: {error}"
            ) from None
    scaler = torch.amp.GradScaler(device.type, enabled=precision.autocast == torch.float16)
    regions = data.validation_regions()
    tolerance = QUALITY_TOLERANCE + 1.0 / max(len(data.held_back), 1)
    yield TrainingStarted(
        device=str(device),
        precision=precision.name,
        cells=data.cell_count,
        validation_cells=len(data.held_back),
        input_size=input_size,
        data=data,
        warnings=tuple(data.warnings),
    )

    history: dict[str, list] = {"steps": [], "validations": []}
    best_state, best_step, best_f1, best_quality = None, 0, None, None
    last_validation = last_preview = time.perf_counter()
    reserve = 0.0  # seconds kept for what follows the last step (see _finishing_time)
    step, stopped = 0, False
    torch_state = torch.random.get_rng_state()
    torch.manual_seed(config.seed)  # dropout; restored at the end
    try:
        while True:
            elapsed = time.perf_counter() - start
            progress = _progress(config, step, elapsed, reserve)
            if progress >= 1.0 and step:  # (at least one step, however long preparing took)
                break
            if stop is not None and stop.is_set():
                stopped = True
                break
            if data.pasting and step and step % PASTE_EVERY == 0:
                data.paste_new_neighbours()
            try:
                if data.refresh():
                    regions = data.validation_regions()
            except ValueError as error:  # new paint that breaks the rules: keep the old
                yield LabelsIgnored(str(error))
            cosine = 0.5 * (1.0 + math.cos(math.pi * progress))  # 1 -> 0
            lr = config.learning_rate * (FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * cosine)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y, w = data.sample_batch(config.batch_size, input_size, out_size, rng, augmentation)
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
                    f"out of memory on {device} training on {config.batch_size} tiles of "
                    f"{input_size} px; choose a smaller tile size or another device"
                ) from None
            scaler.step(optimizer)
            scaler.update()
            step += 1
            now = time.perf_counter()
            loss_value = float(loss.detach())
            history["steps"].append([step, round(now - start, 3), round(loss_value, 5)])
            progress = _progress(config, step, now - start, reserve)
            yield TrainStep(step, loss_value, lr, now - start, progress)

            finished = progress >= 1.0 or (stop is not None and stop.is_set())
            due = finished or now - last_validation >= config.validate_every
            if due and not regions:  # nothing to validate on: the latest model is the best
                last_validation = now
                best_step = step
                yield Checkpoint(step, None)
            elif due:
                began = time.perf_counter()
                scores = _validate(model, data, regions, device)
                seconds = time.perf_counter() - began
                reserve = _finishing_time(seconds / len(regions), len(regions), model, data)
                last_validation = time.perf_counter()
                history["validations"].append([step, round(now - start, 3), scores.f1])
                yield Validation(
                    step,
                    now - start,
                    scores.f1,
                    scores.precision,
                    scores.recall,
                    scores.mean_matched_iou,
                )
                quality = scores.f1 * scores.mean_matched_iou  # finer than F1 on few cells
                # near-ties go to the later, longer-trained model: a handful of held-back
                # cells cannot tell models apart more finely (docs/benchmarks.md)
                if best_quality is None or quality >= best_quality - tolerance:
                    best_state, best_step, best_f1 = _cpu_state(model), step, scores.f1
                    best_quality = max(quality, best_quality or 0.0)
                    yield Checkpoint(step, best_f1)
            window = data.preview_window()
            if window is not None and now - last_preview >= PREVIEW_EVERY:
                yield _preview(model, data, window, device)
                last_preview = time.perf_counter()
    finally:
        torch.random.set_rng_state(torch_state)

    last_model = _on_cpu(model, _cpu_state(model))
    best_model = _on_cpu(model, best_state) if best_state is not None else copy.deepcopy(last_model)
    rules = _rules(best_model, data, device=device)
    best_model.to("cpu")  # (calibrating moved it to the device)
    if best_state is None:
        best_step = step
    return TrainResult(
        model=best_model,
        last_model=last_model,
        optimizer_state=optimizer.state_dict(),
        normalization=normalization,
        labels=labels,
        config=config,
        history=history,
        best_step=best_step,
        best_f1=best_f1,
        stopped=stopped,
        rules=rules,
    )


def _new_model(config: TrainConfig, channels: int, data: TrainingSet) -> UNet:
    """A new network from ``config.preset``, He-initialised from ``config.seed``.

    With batch normalisation when ``config.batch_norm`` says so; by default (None) for
    roundish cells and not for rods. Within 3 CPU minutes on HeLa nuclei it split 91 % of
    the touching pairs instead of 85 % (4 seeds; F1 0.909 with ``CORE_THRESHOLD``
    against 0.903); on E. coli rods it cut dividing cells at their constriction, which
    the truth counts as one cell (F1 0.90 -> 0.81-0.83; docs/benchmarks.md).
    """
    batch_norm = config.batch_norm if config.batch_norm is not None else not data.elongated()
    model = UNet(
        preset(
            config.preset,
            in_channels=channels,
            classes=2 + config.contours,
            batch_norm=batch_norm,
            scale=data.scale,
        )
    )
    model.reset_parameters(torch.Generator().manual_seed(config.seed))
    return model


def _rules(
    model: UNet, data: TrainingSet, *, necks: bool = True, device: torch.device | str = "cpu"
) -> InstanceRules:
    """How ``model``'s probabilities become cells, from the painted cells.

    min_size: objects smaller than a fifth of the median painted cell are fragments:
    dropping them raised F1 from 0.85 (10 px) to 0.89 on HeLa nuclei
    (benchmarks/instance_rules.py). core_threshold: ``CORE_THRESHOLD`` for outline
    networks with batch normalisation, else off. neck_ratio: calibrated when ``necks``
    (:func:`_calibrate_necks`, on ``device``); else 0. flips: for outline networks on
    roundish cells (:func:`_cuts_necks`): averaging the four mirror images raised HeLa's
    F1 by 0.004 over 32 models (0.919 -> 0.923) and BBBC007's by 0.005 (20 models), and
    lowered the E. coli colony's in 4 of 6 models (mean 0.907 -> 0.905; presumably it
    blurs the gaps between rods). Validation and the neck calibration predict without
    them (a quarter of the time).
    """
    min_size = max(10, round(MIN_SIZE_FRACTION * data.median_cell_area()))
    outlines = model.config.classes == 3
    core = CORE_THRESHOLD if outlines and model.config.batch_norm else 0.0
    rules = InstanceRules(min_size=min_size, core_threshold=core, flips=_cuts_necks(model, data))
    if necks and outlines:
        ratio = _calibrate_necks(model, data, rules, device)
        rules = dataclasses.replace(rules, neck_ratio=ratio)
    return rules


def _calibrate_necks(
    model: UNet, data: TrainingSet, rules: InstanceRules, device: torch.device | str
) -> float:
    """How eagerly to cut interiors at necks, from the painted cells.

    Cutting at necks assumes roundish cells: rods get 0 (off; :func:`_cuts_necks`).
    On rods it cut cells in two (E. coli: F1 0.95 -> 0.75), while on nuclei it split
    83-86 % of touching pairs instead of 45 % at the same F1 (docs/benchmarks.md).
    Otherwise each painted cell (up to ``NECK_CELLS`` of them, spread evenly) is predicted
    in a crop around it, and the ratio is the most aggressive one that leaves all but
    ``NECK_TOLERANCE`` of them in one piece (no second object covering a quarter of the
    cell).
    """
    if not _cuts_necks(model, data):
        return 0.0
    regions = data.validation_regions(cells="all", at_most=NECK_CELLS)
    if not regions:
        return 0.0
    crops = [(_probabilities(model, data, r.plane, r.window, device), r.truth > 0) for r in regions]
    best = 0.0
    for ratio in NECK_RATIOS:
        cut = 0
        for probabilities, cell in crops:
            options = {**rules.labelling(), "neck_ratio": ratio}
            labels = labels_from_probabilities(probabilities, **options)
            counts = np.bincount(labels[cell])[1:]
            cut += int((counts >= 0.25 * cell.sum()).sum() >= 2)
        if cut > NECK_TOLERANCE * len(crops):
            break
        best = ratio
    return best


def _cuts_necks(model: UNet, data: TrainingSet) -> bool:
    """Whether training calibrates neck cutting (and keeps time for it): outline
    networks on roundish cells (not ``TrainingSet.elongated``)."""
    return model.config.classes == 3 and not data.elongated()


def _progress(config: TrainConfig, step: int, elapsed: float, reserve: float = 0.0) -> float:
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


def _finishing_time(
    seconds_per_region: float, validation_regions: int, model: UNet, data: TrainingSet
) -> float:
    """Seconds training takes after its last step, from how long validation took per
    held-back cell: a last validation, then the neck calibration on up to ``NECK_CELLS``
    painted cells (outline networks on roundish cells only)."""
    calibrated = min(data.painted_cells, NECK_CELLS) if _cuts_necks(model, data) else 0
    return seconds_per_region * (validation_regions + CALIBRATION_COST * calibrated)


def _cpu_state(model: UNet) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _on_cpu(model: UNet, state: dict[str, torch.Tensor]) -> UNet:
    copy_ = UNet(model.config)
    copy_.load_state_dict(state)
    return copy_.eval()


def _probabilities(model: UNet, data: TrainingSet, plane: int, window, device) -> np.ndarray:
    image = data.planes[plane].image[(slice(None), *window)]
    return drain(predict_tiled(model, image, intensity=(0.0, 1.0), device=device))


def _validate(model: UNet, data: TrainingSet, regions, device) -> InstanceScores:
    """Object F1 at IoU 0.5 on the held-back cells: predicted objects count only where
    they overlap a held-back cell (elsewhere nothing is known)."""
    tp = fp = fn = 0
    ious = []
    options = _rules(model, data, necks=False).labelling()
    for region in regions:
        probabilities = _probabilities(model, data, region.plane, region.window, device)
        predicted = labels_from_probabilities(probabilities, **options)
        touching = np.unique(predicted[region.truth > 0])
        predicted = np.where(np.isin(predicted, touching[touching > 0]), predicted, 0)
        scores = match_instances(region.truth, predicted)
        tp, fp, fn = tp + scores.tp, fp + scores.fp, fn + scores.fn
        ious += [scores.mean_matched_iou] * scores.tp
    return InstanceScores(0.5, tp, fp, fn, float(np.mean(ious)) if ious else 0.0)


def _preview(model: UNet, data: TrainingSet, window, device) -> Preview:
    """The cell probability in the preview window, in the image's pixels."""
    pair, z, plane, slices, network_slices = window
    probability = cell_probability(_probabilities(model, data, plane, network_slices, device))
    shape = tuple(s.stop - s.start for s in slices)
    return Preview(pair, z, slices, resize_image(probability, shape))
