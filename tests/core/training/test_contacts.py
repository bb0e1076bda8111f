"""Pasted neighbours: painted cells made to touch, for training on contacts."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_unet.core.config import TrainConfig
from napari_unet.core.training.contacts import cut_cells, paste_neighbours
from napari_unet.core.training.trainset import TrainingSet


def disk(shape, centre, radius):
    rows, cols = np.indices(shape)
    return (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius**2


def plane(shape=(120, 120), centres=((30, 30), (30, 90), (90, 60)), radius=9):
    """A (1, H, W) image of bright disks on 0.1 and labels 2, 3, ... for them, 1 elsewhere
    (painted background)."""
    labels = np.ones(shape, np.int64)
    image = np.full((1, *shape), 0.1, np.float32)
    for value, centre in enumerate(centres, start=2):
        cell = disk(shape, centre, radius)
        labels[cell] = value
        image[0, cell] = 0.5 + 0.01 * value + 0.001 * np.arange(cell.sum())  # traceable
    return image, labels


def chessboard_gap(a: np.ndarray, b: np.ndarray) -> int:
    """Smallest chessboard distance between a pixel of ``a`` and one of ``b``."""
    distance = ndi.distance_transform_cdt(~a, metric="chessboard")
    return int(distance[b].min())


@pytest.mark.parametrize("gap", [0, 1, 2])
def test_each_host_gains_a_neighbour_at_the_gap_asked_for(gap):
    image, labels = plane()
    before = image.copy(), labels.copy()
    donors = cut_cells(image, labels, [2, 3, 4])
    new_image, new_labels = paste_neighbours(
        image, labels, [2, 3, 4], donors, np.random.default_rng(1), gap=(gap, gap)
    )
    np.testing.assert_array_equal(image, before[0])  # the inputs are not changed
    np.testing.assert_array_equal(labels, before[1])
    assert sorted(np.unique(new_labels)) == [1, 2, 3, 4, 5, 6, 7]
    for host in (2, 3, 4):
        np.testing.assert_array_equal(new_labels == host, labels == host)  # hosts intact
    donor_values = {round(float(v), 4) for d in donors for v in d.image[0][d.mask]}
    for pasted in (5, 6, 7):
        cell = new_labels == pasted
        # a whole donor (turned or mirrored): as many pixels, the same values
        assert cell.sum() == donors[0].mask.sum()
        assert {round(float(v), 4) for v in new_image[0][cell]} <= donor_values
        # next to exactly one host, ``gap`` background pixels away (rounding: +1 at most)
        gaps = [chessboard_gap(labels == host, cell) for host in (2, 3, 4)]
        assert gap + 1 <= min(gaps) <= gap + 2
    outside = new_labels < 5
    np.testing.assert_array_equal(new_image[0][outside], image[0][outside])


def test_negative_gaps_overlap_the_host_edge_but_leave_most_of_it():
    image, labels = plane(centres=((60, 60),))
    donors = cut_cells(image, labels, [2])
    _, new_labels = paste_neighbours(
        image, labels, [2], donors, np.random.default_rng(0), gap=(-2, -2)
    )
    host_before, host_after = (labels == 2).sum(), (new_labels == 2).sum()
    assert (new_labels == 3).sum() == host_before  # the whole donor was pasted
    assert host_before / 2 <= host_after < host_before  # it covers the host's edge
    assert ((new_labels == 3) & ~(labels == 2)).any()


def test_contrast_scales_the_donor_about_its_local_background():
    image, labels = plane(centres=((60, 60),))
    donors = cut_cells(image, labels, [2])
    assert donors[0].background == pytest.approx([0.1])
    new_image, new_labels = paste_neighbours(
        image, labels, [2], donors, np.random.default_rng(0), contrast=(0.5, 0.5)
    )
    pasted = np.sort(new_image[0][new_labels == 3])
    expected = np.sort(0.1 + 0.5 * (image[0][labels == 2] - 0.1))
    np.testing.assert_allclose(pasted, expected, rtol=1e-6)


def test_no_neighbour_where_there_is_no_room():
    # the host fills the plane but for a 3 px frame: no donor fits beside it
    labels = np.ones((40, 40), np.int64)
    labels[3:-3, 3:-3] = 2
    image = np.where(labels == 2, 1.0, 0.0).astype(np.float32)[None]
    donors = cut_cells(image, labels, [2])
    new_image, new_labels = paste_neighbours(image, labels, [2], donors, np.random.default_rng(0))
    np.testing.assert_array_equal(new_labels, labels)
    np.testing.assert_array_equal(new_image, image)


def test_training_set_pastes_only_training_cells():
    centres = [(20 + 40 * (i // 4), 20 + 40 * (i % 4)) for i in range(12)]
    image, labels = plane(shape=(120, 160), centres=centres, radius=7)
    labels[labels == 1] = 0  # sparse: painted cells only
    labels[5:8, 5:60] = 1  # and a background stroke
    data = TrainingSet([(image[0], labels)], rng=np.random.default_rng(0))
    assert len(data.held_back) == 2 and len(data.contact_planes) == 1
    real, contact = data.planes[0], data.contact_planes[0]
    held = [v for _, v in data.held_back]
    assert not np.isin(contact.labels, held).any()  # held-back cells are not annotated
    pasted = contact.labels > real.labels.max()
    assert len(np.unique(contact.labels[pasted])) >= 5  # neighbours were pasted
    assert (contact.weight.numpy()[pasted] > 0).all()  # and are annotated in the targets
    # the real plane is untouched, and without pasting there are no contact planes
    np.testing.assert_array_equal(real.labels > 1, labels > 1)
    off = TrainingSet(
        [(image[0], labels)], TrainConfig(paste_neighbours=False), rng=np.random.default_rng(0)
    )
    assert off.contact_planes == []


def test_rods_get_no_pasted_neighbours():
    labels = np.zeros((120, 160), np.int64)
    for i in range(12):
        top, left = 10 + 36 * (i // 4), 10 + 36 * (i % 4)
        labels[top : top + 5, left : left + 24] = i + 2  # 5 x 24 px rods
    labels[115:118, 5:60] = 1
    image = np.where(labels > 1, 1.0, 0.1).astype(np.float32)
    data = TrainingSet([(image, labels)], rng=np.random.default_rng(0))
    assert data.cells.median_elongation > 3
    assert not data.pasting and data.contact_planes == []


def test_calibration_gets_pairs_of_touching_cells_whose_truth_is_known():
    from napari_unet.core.config import UNetConfig
    from napari_unet.core.network.model import UNet
    from napari_unet.core.training.validation import contact_crops

    centres = [(20 + 40 * (i // 4), 20 + 40 * (i % 4)) for i in range(12)]
    image, labels = plane(shape=(120, 160), centres=centres, radius=7)
    labels[labels == 1] = 0
    labels[5:8, 5:60] = 1
    data = TrainingSet([(image[0], labels)], rng=np.random.default_rng(0))
    model = UNet(UNetConfig(classes=3, depth=2, base_channels=2)).eval()
    crops = contact_crops(model, data, "cpu")
    assert len(crops) >= 10 and len(crops) % 2 == 0  # both cells of each pasted pair
    for (first, a), (second, b) in zip(crops[::2], crops[1::2], strict=True):
        assert first is second and first.shape == (3, *a.shape)  # one crop per pair
        assert 20 <= a.sum() and 20 <= b.sum() and not (a & b).any()
        assert chessboard_gap(a, b) <= 3  # touching, or a pasted gap of at most 2 px
        np.testing.assert_allclose(first.sum(axis=0), 1.0, atol=1e-5)
    rods = np.zeros((120, 160), np.int64)
    for i in range(12):
        top, left = 10 + 36 * (i // 4), 10 + 36 * (i % 4)
        rods[top : top + 5, left : left + 24] = i + 2
    rods_data = TrainingSet([(np.where(rods > 1, 1.0, 0.1), rods)], rng=np.random.default_rng(0))
    assert contact_crops(model, rods_data, "cpu") == []  # rods get no pasted neighbours
