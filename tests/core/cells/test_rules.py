"""The rules record, the shape policy and the calibration on painted cells."""

import dataclasses

import numpy as np
import pytest
from skimage.morphology import convex_hull_image

from napari_unet.core.cells import rules as rules_module
from napari_unet.core.cells.instances import labels_from_probabilities
from napari_unet.core.cells.rules import (
    CONVEX_SOLIDITY,
    UNSEEN_CELLS,
    CellShape,
    InstanceRules,
    calibrate_core,
    calibrate_dip,
    calibrate_interior,
    calibrate_join,
    calibrate_neck_ratio,
    measure_cells,
    painted_cells_found,
    rules_for,
    rules_from_paint,
)
from napari_unet.core.config import UNetConfig
from napari_unet.core.training.validation import LEAK_PX


def rods(count=4):
    cells = np.zeros((60, 60), np.int64)
    for k in range(count):
        cells[5 + 12 * k : 11 + 12 * k, 5:55] = 1 + k  # 6 x 50 px rods
    return cells


def test_cells_are_measured_by_count_area_and_shape():
    shape = measure_cells([rods()])
    assert shape.count == 4 and shape.median_area == 300 and shape.median_elongation > 5
    assert shape.rods and not shape.roundish and not shape.cuts_necks(outlines=True)
    discs = np.zeros((40, 40), np.int64)
    discs[5:15, 5:15], discs[20:30, 20:32] = 7, 9
    assert measure_cells([discs, discs]).count == 4
    assert measure_cells([discs]).roundish and measure_cells([discs]).cuts_necks(True)
    assert not measure_cells([discs]).cuts_necks(False)  # two-class networks
    assert measure_cells([np.zeros((5, 5), int)]) == CellShape()


def crescents(count=4):
    """Roundish cells with a deep notch each (C shapes), as cells that tile an EM section."""
    yy, xx = np.mgrid[:40, :40]
    ring = ((yy - 20) ** 2 + (xx - 20) ** 2 <= 15**2) & ((yy - 20) ** 2 + (xx - 27) ** 2 > 11**2)
    cells = np.zeros((40, 40 * count), np.int64)
    for k in range(count):
        cells[:, 40 * k : 40 * (k + 1)][ring] = 1 + k
    return cells


def test_necks_are_cut_only_where_the_painted_cells_are_convex():
    discs = np.zeros((40, 40), np.int64)
    discs[5:15, 5:15], discs[20:30, 20:32] = 7, 9
    convex = measure_cells([discs])
    assert convex.solidity == 1.0 and convex.convex and convex.cuts_necks(True)
    notched = measure_cells([crescents()])
    assert notched.roundish and notched.solidity < CONVEX_SOLIDITY
    # still roundish: predicted with flips, but a notch is no contact there
    assert notched.flips(True) and not notched.cuts_necks(True)
    assert rules_for(notched, outlines=True).flips
    # cut along membranes, and parted at dips of their interior probability; convex cells
    # and rods never, nor two-class networks
    assert rules_for(notched, outlines=True).borders
    assert not rules_for(notched, outlines=False).borders
    assert not rules_for(convex, outlines=True).borders
    assert notched.parts_at_dips(True) and not notched.parts_at_dips(False)
    assert not convex.parts_at_dips(True) and not measure_cells([rods()]).parts_at_dips(True)
    # one notched cell among four convex ones: the lower quartile decides, not the odd one
    squares = np.zeros((40, 80), np.int64)
    for k in range(4):
        squares[5:15, 5 + 20 * k : 15 + 20 * k] = 2 + k
    assert measure_cells([np.hstack([crescents(1), squares])]).convex
    assert not measure_cells([np.hstack([crescents(2), squares[:, :40]])]).convex


def test_memory_follows_the_cells_not_the_largest_label_value():
    cells = np.zeros((30, 30), np.int64)
    cells[2:8, 2:8], cells[10:20, 10:20] = 2**40, 2**27  # would be TiBs as a bincount
    shape = measure_cells([cells])
    assert shape.count == 2 and shape.median_area == (36 + 100) / 2


ROUND = CellShape(count=20, median_area=400.0, median_elongation=1.2)


def test_the_rules_before_calibration_follow_the_painted_cells():
    assert rules_for(ROUND, outlines=True) == InstanceRules(min_size=80, flips=True)
    assert not rules_for(ROUND, outlines=False).flips
    small = CellShape(count=20, median_area=20.0, median_elongation=3.0)  # small rods
    assert rules_for(small, outlines=True) == InstanceRules(min_size=10)


def outline_crop(cells):
    """Probabilities of a sure three-class network for ``cells`` (0 = background)."""
    from skimage.segmentation import find_boundaries

    outline = find_boundaries(cells, mode="inner") & (cells > 0)
    interior = (cells > 0) & ~outline
    return np.stack([cells == 0, interior, outline]).astype(np.float32)


def test_the_neck_ratio_is_the_most_eager_that_leaves_painted_cells_whole():
    yy, xx = np.mgrid[:40, :60]
    # a dumbbell: two discs of radius 10 joined by a waist 8 px wide
    dumbbell = ((yy - 20) ** 2 + (xx - 15) ** 2 <= 100) | ((yy - 20) ** 2 + (xx - 45) ** 2 <= 100)
    dumbbell |= (abs(yy - 20) <= 4) & (xx > 15) & (xx < 45)
    whole = (outline_crop(dumbbell.astype(int)), dumbbell)
    cut = labels_from_probabilities(whole[0], neck_ratio=0.5)
    assert len(np.unique(cut[dumbbell])) == 2  # even the gentlest ratio cuts the waist...
    # ...so, painted as one cell, it turns neck cutting off
    assert calibrate_neck_ratio([whole], InstanceRules()) == 0.0
    disc = (yy - 20) ** 2 + (xx - 30) ** 2 <= 144
    assert calibrate_neck_ratio([(outline_crop(disc.astype(int)), disc)], InstanceRules()) == 0.9


def test_rules_are_read_from_a_model_files_training_record():
    record = {"steps": 40, "min_size": 25, "neck_ratio": 0.7, "flips": True, "history": {}}
    assert InstanceRules.from_training(record) == InstanceRules(25, 0.7, 0.0, True)
    assert InstanceRules.from_training({}) == InstanceRules()
    with pytest.raises(ValueError, match="neck_ratio"):
        InstanceRules.from_training({"neck_ratio": 2})


def unsure_crop(cells, interior=0.45):
    """Probabilities of a network that has learned little yet: ``interior`` in each
    cell's core (the rest outline), mostly outline at its edge, background outside."""
    from scipy import ndimage as ndi

    p = np.zeros((3, *cells.shape), np.float32)
    p[0] = cells == 0
    inside = cells > 0
    core = ndi.binary_erosion(inside, iterations=2)
    p[1][core], p[2][core] = interior, 1 - interior
    p[1][inside & ~core], p[2][inside & ~core] = 0.2, 0.8
    return p


def disc(radius=9, size=40, centre=(20, 20)):
    yy, xx = np.mgrid[:size, :size]
    return ((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2).astype(int)


def solidity(cell):
    return float(np.sum(cell) / np.sum(convex_hull_image(cell)))


@pytest.mark.parametrize("count", [15, 30])
def test_one_odd_painted_cell_does_not_set_the_join_bound(count):
    # discs of radius 6-12 px (solidity 0.925-0.949) and one odd cell: two discs run
    # together (0.864)
    discs = [disc(radius=6 + k % 7) > 0 for k in range(count - 1)]
    odd = (disc(radius=9, centre=(20, 13)) | disc(radius=9, centre=(20, 29))) > 0
    cells = [*discs, odd]
    bound = calibrate_join([(None, cell) for cell in cells])
    ordinary = min(solidity(cell) for cell in discs)
    assert solidity(odd) < ordinary - 0.05
    # as convex as the least convex ordinary cell, or more: the odd one is ignored
    assert ordinary - 0.001 <= bound <= max(solidity(cell) for cell in discs)
    # with many cells the quantile alone already passes the odd one by
    quantile = round(float(np.quantile([solidity(c) for c in cells], 0.05)), 3)
    assert (bound == quantile) == (count >= 21)


def test_an_unsure_network_gets_an_interior_threshold_that_finds_its_cells():
    # interior 0.45 in each cell's core: nothing passes 0.5, so fixed rules find no cell
    crops = [(unsure_crop(disc(radius=r)), disc(radius=r) > 0) for r in (7, 8, 9, 10, 11)]
    fixed = InstanceRules(min_size=10)
    assert (painted_cells_found(crops, fixed) == 0).all()
    rules = calibrate_interior(crops, fixed)
    assert rules.interior_threshold < 0.45
    assert (painted_cells_found(crops, rules) > 0.8).all()  # every cell found, well drawn


def test_the_interior_threshold_comes_from_the_cells_held_back_from_training():
    # trained on: pairs that join below 0.45; held back: cells whose cores reach only 0.45
    trained = bridged_pair(bridge=0.45) * 6
    unseen = [(unsure_crop(disc(radius=r)), disc(radius=r) > 0) for r in (7, 8, 9, 10, 11)]
    start, network = InstanceRules(min_size=10), UNetConfig(classes=3)
    everything = rules_from_paint([*trained, *unseen], start, ROUND, network)
    assert everything.interior_threshold == 0.5  # the trained cells outvote the others
    assert (painted_cells_found(unseen, everything) == 0).all()
    rules = rules_from_paint([*trained, *unseen], start, ROUND, network, unseen=unseen)
    assert rules.interior_threshold < 0.45
    assert (painted_cells_found(unseen, rules) > 0.8).all()
    # fewer than UNSEEN_CELLS held back are too few to choose on: every painted cell counts
    few = unseen[: UNSEEN_CELLS - 1]
    assert rules_from_paint([*trained, *few], start, ROUND, network, unseen=few) == (
        rules_from_paint([*trained, *few], start, ROUND, network)
    )


def test_held_back_cells_only_ever_make_the_interior_threshold_gentler():
    # trained on: cells whose cores reach only 0.45; held back: pairs parted only above 0.55
    trained = [(unsure_crop(disc(radius=r)), disc(radius=r) > 0) for r in range(6, 16)]
    unseen = bridged_pair() * 3
    start, network = InstanceRules(min_size=10), UNetConfig(classes=3)
    assert calibrate_interior(unseen, start).interior_threshold > 0.55  # their own choice
    rules = rules_from_paint([*trained, *unseen], start, ROUND, network, unseen=unseen)
    assert rules.interior_threshold < 0.45  # ...is surer than the painted cells': not taken
    assert (painted_cells_found(trained, rules) > 0.8).all()


def test_a_sure_network_gets_the_gentlest_interior_and_the_default_growth():
    # every threshold finds these cells alike: the tie goes to the gentlest
    crops = [(outline_crop(disc(radius=r)), disc(radius=r) > 0) for r in (7, 8, 9, 10, 11)]
    rules = calibrate_interior(crops, InstanceRules(min_size=10))
    assert (rules.interior_threshold, rules.growth) == (0.3, 2)  # (growth stops at the edge)
    assert (painted_cells_found(crops, rules) > 0.9).all()


@pytest.mark.parametrize(
    "quality, chosen",
    [
        # from the best (0.7) one step gentler stays near it; the next does not, and
        # 0.4, near again, lies past that gap
        ({(0.7, 2): 0.80, (0.6, 3): 0.795, (0.5, 2): 0.70, (0.4, 2): 0.799}, (0.6, 3)),
        # never surer than the best, however near
        ({(0.5, 2): 0.80, (0.6, 2): 0.799, (0.7, 2): 0.80 - 1e-9}, (0.5, 2)),
        # the best twice: from the gentler one
        ({(0.4, 1): 0.80, (0.6, 2): 0.80}, (0.4, 1)),
        # growths as near as each other to 2 px: the better one
        ({(0.5, 1): 0.80, (0.5, 3): 0.805}, (0.5, 3)),
    ],
)
def test_near_ties_go_to_gentler_thresholds_one_step_at_a_time(monkeypatch, quality, chosen):
    def found(crops, rules, memos=None):  # the quality table, whatever the crops
        key = (rules.interior_threshold, rules.growth)
        return np.full(len(crops), quality.get(key, 0.5))

    monkeypatch.setattr(rules_module, "painted_cells_found", found)
    crops = [(outline_crop(disc()), disc() > 0)] * 3
    rules = calibrate_interior(crops, InstanceRules(min_size=10))
    assert (rules.interior_threshold, rules.growth) == chosen


def test_the_core_threshold_is_as_sure_as_the_painted_cells_allow():
    sure = [(outline_crop(disc(radius=r)), disc(radius=r) > 0) for r in (7, 8, 9, 10, 11)]
    assert calibrate_core(sure, InstanceRules(min_size=10, growth=1)) == 0.9
    faint = []
    for crop, cell in sure:
        crop = crop.copy()
        crop[1][cell & (crop[1] > 0)] = 0.65  # the interiors peak at 0.65 - 0.35 outline...
        crop[0][cell & (crop[1] > 0)] = 0.35
        faint.append((crop, cell))
    assert calibrate_core(faint, InstanceRules(min_size=10, growth=1)) == 0.6


def test_rules_from_paint_calibrate_what_the_network_and_shape_call_for():
    crops = [(outline_crop(disc(radius=r)), disc(radius=r) > 0) for r in (7, 8, 9, 10, 11)]
    start = InstanceRules(min_size=10, flips=True)
    with_norm = UNetConfig(classes=3, batch_norm=True)
    rules = rules_from_paint(crops, start, ROUND, with_norm)
    assert rules.core_threshold == 0.9 and rules.neck_ratio == 0.9 and rules.growth == 2
    plain = rules_from_paint(crops, start, ROUND, UNetConfig(classes=3))
    assert plain.core_threshold == 0.0  # no core threshold without batch normalisation
    rods_shape = CellShape(count=20, median_area=400.0, median_elongation=4.0)
    assert rules_from_paint(crops, start, rods_shape, with_norm).neck_ratio == 0.0
    notched = CellShape(count=20, median_area=400.0, median_elongation=1.2, solidity=0.7)
    assert rules_from_paint(crops, start, notched, with_norm).neck_ratio == 0.0
    two_classes = UNetConfig(classes=2)
    assert rules_from_paint(crops, start, ROUND, two_classes) == start  # nothing to tune
    assert rules_from_paint([], start, ROUND, with_norm) == start


def bridged_pair(bridge=0.55):
    """A crop of two touching discs whose interiors a network joins at ``bridge`` across
    their contact (the outline there 1 - ``bridge``), as one (probabilities, cell) per disc."""
    cells = disc(radius=8, size=40, centre=(20, 11)) + 2 * disc(radius=8, size=40, centre=(20, 28))
    probabilities = outline_crop(cells)
    contact = (np.abs(np.arange(40) - 19.5) < 2)[None, :] & (np.abs(np.arange(40) - 20) < 4)[
        :, None
    ]
    joined = contact & (cells > 0)
    probabilities[1][joined], probabilities[2][joined] = bridge, 1 - bridge
    return [(probabilities, cells == 1), (probabilities, cells == 2)]


def test_pasted_pairs_make_the_interior_threshold_keep_touching_cells_apart():
    painted = [(outline_crop(disc(radius=r)), disc(radius=r) > 0) for r in (7, 8, 9, 10, 11)]
    pair = bridged_pair()
    plain = InstanceRules(min_size=10)
    merged = labels_from_probabilities(pair[0][0], **plain.labelling())
    assert len(np.unique(merged[pair[0][1] | pair[1][1]])) == 1  # at 0.5 the pair is one
    assert (painted_cells_found(pair, plain) <= 0.5).all()  # (half of the object each)
    network = UNetConfig(classes=3)
    alone = rules_from_paint(painted, plain, ROUND, network)
    assert alone.interior_threshold == 0.3  # the painted cells alone cannot tell: gentlest
    rules = rules_from_paint(painted, plain, ROUND, network, contacts=pair)
    assert rules.interior_threshold == 0.6  # the surer threshold that parts the pair
    assert (painted_cells_found(pair, rules) > 0.8).all()
    assert (painted_cells_found(painted, rules) > 0.8).all()


def test_the_calibration_reuses_stages_without_changing_what_it_finds():
    crops = [*bridged_pair(0.7), (outline_crop(disc(radius=9)), disc(radius=9) > 0)]
    memos = [{} for _ in crops]
    for threshold, growth, neck in ((0.5, 2, 0.0), (0.5, 0, 0.8), (0.7, 2, 0.8), (0.5, 3, 0.5)):
        rules = InstanceRules(interior_threshold=threshold, growth=growth, neck_ratio=neck)
        fresh = painted_cells_found(crops, rules)
        assert np.array_equal(painted_cells_found(crops, rules, memos), fresh)
    assert all(memo["basins"] is not None for memo in memos)  # (kept from a neck ratio)


def cut_off_neighbour(bridge=0.55):
    """A crop of a painted disc (radius 9) touching a neighbour that the crop's edge cuts
    off (a strip whose visible part is small), the network joining their interiors at
    ``bridge`` across the contact: (probabilities, painted cell)."""
    cells = disc(radius=9, size=40, centre=(20, 14))
    cells[16:25, 24:] = 2  # the neighbour runs on past the crop's edge
    probabilities = outline_crop(cells)
    contact = np.zeros(cells.shape, bool)
    contact[17:24, 21:27] = True
    probabilities[1][contact & (cells > 0)] = bridge
    probabilities[2][contact & (cells > 0)] = 1 - bridge
    return probabilities, cells == 1


def test_a_cell_run_into_a_neighbour_the_crop_cuts_off_is_not_found_by_the_check():
    probabilities, cell = cut_off_neighbour()
    crop, plain = [(probabilities, cell)], InstanceRules(min_size=10)
    labels = labels_from_probabilities(probabilities, **plain.labelling())
    merged = labels == labels[20, 14]
    assert merged[20, 39]  # one object with the neighbour, out to the crop's edge...
    assert cell.sum() / (merged | cell).sum() > 0.6  # ...which the crop shows only in part
    assert painted_cells_found(crop, plain)[0] > 0.6  # the calibration's view of the crop
    assert painted_cells_found(crop, plain, leak_px=LEAK_PX)[0] == 0  # the check's: a leak
    parted = dataclasses.replace(plain, interior_threshold=0.6)
    assert painted_cells_found(crop, parted, leak_px=LEAK_PX)[0] > 0.8
    # the bound is on how far outside the cell the object reaches, not on how much of it
    painted = disc(radius=30, size=90, centre=(45, 45)) > 0
    for beyond, found in ((LEAK_PX - 2, True), (LEAK_PX + 2, False)):
        grown = outline_crop(disc(radius=30 + beyond, size=90, centre=(45, 45)))
        assert painted_cells_found([(grown, painted)], plain)[0] > 0.5
        assert (painted_cells_found([(grown, painted)], plain, leak_px=LEAK_PX)[0] > 0) == found


def gap_crop(bridge):
    """Probabilities of two discs (interiors 1.0 and 0.95) whose membrane has a gap where
    the interior probability is ``bridge``."""
    cells = disc(radius=8, size=40, centre=(20, 11)) + 2 * disc(radius=8, size=40, centre=(20, 28))
    probabilities = outline_crop(cells)
    probabilities[1][cells == 2] *= 0.95
    gap = (np.abs(np.arange(40) - 19.5) < 3)[None, :] & (np.abs(np.arange(40) - 20) < 6)[:, None]
    probabilities[1][gap & (cells > 0)], probabilities[2][gap & (cells > 0)] = bridge, 1 - bridge
    probabilities[0] = 1 - probabilities[1] - probabilities[2]
    return probabilities


def test_the_dip_is_where_the_mirrored_predictions_make_the_same_cells():
    start = InstanceRules(min_size=10, flips=True)
    # two of the four predictions see the gap as interior (0.9), two as membrane (0.3):
    # without parting they make one cell and two; parted at a dip they all make two
    mirrored = [gap_crop(0.9), gap_crop(0.3), gap_crop(0.9), gap_crop(0.3)]
    assert labels_from_probabilities(mirrored[0], **start.labelling()).max() == 1
    dip = calibrate_dip(mirrored, start)
    assert 0 < dip <= 0.3  # (small discs: their smoothed peaks stand 0.3 over the gap)
    parted = dataclasses.replace(start, dip=dip)
    assert all(labels_from_probabilities(p, **parted.labelling()).max() == 2 for p in mirrored)
    # predictions that agree keep the gentlest: no parting
    assert calibrate_dip([gap_crop(0.3)] * 4, start) == 0.0
    assert calibrate_dip([gap_crop(0.9)] * 4, start) == 0.0


def test_rules_from_paint_part_at_dips_only_cells_that_are_not_convex():
    crops = [(outline_crop(disc(radius=r)), disc(radius=r) > 0) for r in (7, 8, 9, 10, 11)]
    start = InstanceRules(min_size=10, flips=True)
    network = UNetConfig(classes=3)
    mirrored = [gap_crop(0.9), gap_crop(0.3)] * 2
    notched = CellShape(count=20, median_area=400.0, median_elongation=1.2, solidity=0.7)
    rules = rules_from_paint(crops, start, notched, network, mirrored=mirrored)
    assert rules.dip > 0 and rules.neck_ratio == 0.0
    cut = rules_from_paint(
        crops, dataclasses.replace(start, borders=True), notched, network, mirrored=mirrored
    )
    assert cut == dataclasses.replace(rules, borders=True)  # (calibrated without, kept as it was)
    assert rules_from_paint(crops, start, notched, network).dip == 0.0  # (nothing mirrored)
    convex = rules_from_paint(crops, start, ROUND, network, mirrored=mirrored)
    assert convex.dip == 0.0 and convex.neck_ratio > 0
