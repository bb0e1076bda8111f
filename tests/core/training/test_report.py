"""What training says it did."""

import numpy as np
import torch

from napari_unet.core.config import TrainConfig, UNetConfig
from napari_unet.core.events import drain
from napari_unet.core.network.model import UNet
from napari_unet.core.synthetic import touching_cells
from napari_unet.core.training import TrainingControl, TrainResult, describe, train


def result(steps, ended, best_f1=0.93, held=6, found=(12, 12), iou=0.8, **config):
    net = UNet(UNetConfig(depth=2, base_channels=2))
    history = {"steps": [[k + 1, 5.0 * (k + 1), 0.5] for k in range(steps)]}
    config = TrainConfig(**config)
    return TrainResult(
        net,
        net,
        {},
        config,
        history,
        steps,
        best_f1,
        ended,
        held,
        painted_found=found,
        best_iou=iou if best_f1 is not None else None,
    )


def test_a_training_the_clock_ended_far_short_says_so_and_what_to_do():
    lines = describe(result(35, "minutes"))
    assert lines[0] == (
        "trained only 35 of 450 steps: the 3-minute budget ran out first (5.0 s a step on "
        "this machine)"
    )
    assert "may be undertrained" in lines[1] and "--minutes" in lines[1]
    assert describe(result(400, "minutes"))[0] == "trained 400 of 450 steps in the 3-minute budget"
    assert describe(result(450, "steps"))[0] == "trained 450 steps"
    assert describe(result(3, "stopped"))[0] == "stopped after 3 of 450 steps"
    assert describe(result(3, "stopped", iterations=None))[0] == "stopped after 3 steps"


def test_the_validation_score_comes_with_the_cells_it_rests_on():
    few = describe(result(450, "steps", best_f1=1.0, held=4))[1]
    assert few.startswith(
        "best model at step 450: validation F1 1.00, matched IoU 0.80 on 4 held-back"
    )
    assert "rough score" in few and "0.25" in few
    many = describe(result(450, "steps", best_f1=0.9, held=40))[1]
    assert many.endswith("on 40 held-back painted cells")
    none = describe(result(450, "steps", best_f1=None, held=0))[1]
    assert none.startswith("not validated: fewer than 10 cells are painted")


def test_a_training_stopped_before_its_first_step_takes_none_and_says_so():
    sample = touching_cells((96, 96), rng=np.random.default_rng(0))
    control = TrainingControl()
    control.stop()
    config = TrainConfig(minutes=None, iterations=5, batch_size=2, tile_size=60)
    net = UNet(UNetConfig(classes=3, depth=2, base_channels=4))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    done = drain(train([(sample.image, sample.annotation)], config, start=net, control=control))
    assert done.steps == 0 and done.stopped and done.ended == "stopped"
    assert all(torch.equal(v, before[k]) for k, v in done.model.state_dict().items())
    assert describe(done)[0] == "stopped after 0 of 5 steps"


def test_a_model_that_finds_few_of_its_painted_cells_is_not_ready():
    ready = result(450, "steps", found=(11, 12))
    assert (
        ready.ready
        and describe(ready)[-2] == "its rules find 11 of 12 painted cells it was checked on"
    )
    lost = result(40, "steps", found=(0, 12))
    assert not lost.ready
    assert describe(lost)[-1].startswith("NOT READY: with its rules the model finds 0 of 12")
    assert "train longer" in describe(lost)[-1]


def test_a_ready_model_ends_with_a_verdict_from_its_scores():
    def verdict(**scores):
        return describe(result(450, "steps", **{"held": 30, **scores}))[-1]

    assert verdict(best_f1=0.95, iou=0.85).startswith("verdict: good")
    assert verdict(best_f1=0.95, iou=0.6).startswith("verdict: usable")  # loose outlines
    assert verdict(best_f1=0.8).startswith("verdict: usable") and "fine-tune" in verdict(
        best_f1=0.8
    )
    assert verdict(best_f1=0.5).startswith("verdict: weak")
    # on 5 held-back cells one cell more found moves F1 by about 0.2: not weak on one cell
    assert verdict(best_f1=0.67).startswith("verdict: weak")
    assert verdict(best_f1=0.67, held=5).startswith("verdict: usable")
    assert verdict(best_f1=0.4, held=5).startswith("verdict: weak")
    assert not verdict(best_f1=None, held=0).startswith("verdict")  # nothing to judge on
    lost = describe(result(40, "steps", found=(0, 12)))
    assert lost[-1].startswith("NOT READY") and not any("verdict" in line for line in lost)
