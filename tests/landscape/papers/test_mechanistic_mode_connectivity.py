"""Mechanistic mode connectivity's pieces: the cue data, cue reliance, alignment and the learned curve."""
import pytest
import torch

from course.data import PLACES
from course.landscape import models
from course.landscape.interpolation import barrier
from course.landscape.papers import mechanistic_mode_connectivity as mmc


def ink_place(x):
    """The place holding the most ink of each flattened 8 x 8 image."""
    images = x.reshape(-1, 8, 8)
    return torch.stack([images[:, r:r + 4, c:c + 4].sum((1, 2)) for r, c in PLACES], 1).argmax(1)


def test_the_cue_is_the_place_in_d_cue_and_another_class_in_the_conflict_data():
    d = mmc.cue_data(0)
    assert d["x_cue"].shape == (mmc.N_TRAIN, 64) and d["y"].shape == (mmc.N_TRAIN,)
    assert (ink_place(d["x_cue"]) == d["y"]).double().mean() > 0.95
    assert (ink_place(d["x_conflict"]) == d["conflict_cue"]).double().mean() > 0.95
    assert not (d["conflict_cue"] == d["y"]).any()
    assert 0.1 < (ink_place(d["x_random"]) == d["y"]).double().mean() < 0.4  # chance: 1 in 4
    with pytest.raises(TypeError, match="`where` must be an integer tensor"):
        mmc.glyph_scene(d["y"], d["y"].float(), torch.Generator())


def test_cue_reliance_counts_predictions_of_the_cues_class():
    widths = (64, 4)
    place_reader = torch.zeros(4, 64)  # a linear network that reads the ink of each place
    for p, (r, c) in enumerate(PLACES):
        place_reader[p].view(8, 8)[r:r + 4, c:c + 4] = 1
    theta = torch.cat([place_reader.reshape(-1), torch.zeros(4)])
    d = mmc.cue_data(0)
    assert mmc.cue_reliance(theta, widths, d["x_conflict"], d["conflict_cue"]) > 0.95
    assert mmc.cue_reliance(theta, widths, d["x_conflict"], d["y"]) < 0.05


def test_alignment_keeps_the_function_and_the_trained_bend_lowers_the_curve():
    widths, d = mmc.WIDTHS, mmc.cue_data(0)
    x, y = d["x_cue"][:128], d["y"][:128]
    a, b = (models.flatten(models.mlp(widths, seed=s)) for s in (0, 1))
    _, aligned = mmc.align(a, b, x)
    torch.testing.assert_close(models.mlp_logits(aligned, x, widths), models.mlp_logits(b, x, widths))
    ts = torch.linspace(0, 1, 9)
    straight = mmc.curve_losses(x, y, a, (a + b) / 2, b, widths, ts)
    bend = mmc.train_bend(x, y, a, b, widths, steps=30, ts_per_step=2)
    curved = mmc.curve_losses(x, y, a, bend, b, widths, ts)
    torch.testing.assert_close(curved[[0, -1]], straight[[0, -1]])  # the ends stay
    assert curved[1:-1].mean() < straight[1:-1].mean()
    assert barrier(curved, ts) <= barrier(straight, ts) + 1e-6
    with pytest.raises(ValueError, match="`theta_b` must be a network of widths"):
        mmc.train_bend(x, y, a, b[:-1], widths)
