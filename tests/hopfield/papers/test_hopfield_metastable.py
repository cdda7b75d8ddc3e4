"""Ramsauer et al. 2020 (metastable states): clustered patterns, cluster means, fixed points by beta."""
import pytest
import torch

from course.hopfield import modern
from course.hopfield.papers import hopfield_metastable as meta


def test_clustered_patterns_lie_near_their_cluster_and_far_from_the_others():
    g = torch.Generator().manual_seed(0)
    patterns, cluster = meta.clustered_patterns(3, 5, 64, 0.05, g)
    assert patterns.shape == (15, 64) and torch.equal(cluster, torch.arange(3).repeat_interleave(5))
    hamming = (patterns[:, None] != patterns[None]).sum(-1)
    same = cluster[:, None] == cluster[None]
    assert (hamming[same] <= 2 * round(0.05 * 64)).all()  # two members: at most both flips apart
    assert (hamming[~same] > 10).all()


def test_cluster_means_are_the_members_averages():
    patterns = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    means = meta.cluster_means(patterns, torch.tensor([0, 0, 1]))
    assert torch.equal(means, torch.tensor([[1.0, 0.0], [-1.0, -1.0]]))


def test_a_tiny_beta_gives_the_mean_of_all_patterns_and_a_large_one_the_pattern():
    g = torch.Generator().manual_seed(1)
    patterns, _ = meta.clustered_patterns(2, 4, 32, 0.1, g)
    states, _ = meta.fixed_points(patterns, patterns, 1e-4, steps=3)
    assert (states - patterns.mean(0)).abs().max() < 1e-2
    states, residual = meta.fixed_points(patterns, patterns, 5.0, steps=3)
    assert (states - patterns).abs().max() < 1e-5 and residual < 1e-6


def test_fixed_points_report_how_far_one_more_update_moves_them():
    g = torch.Generator().manual_seed(2)
    patterns, _ = meta.clustered_patterns(2, 3, 16, 0.1, g)
    state, residual = meta.fixed_points(patterns[:1] * 0.3, patterns, 0.05, steps=1)
    moved = modern.update(state, patterns, 0.05) - state
    assert residual == pytest.approx(float(moved.norm() / state.norm()), rel=1e-5)


def test_beta_sweep_moves_from_the_global_mean_to_the_cluster_mean_to_the_pattern():
    sweep = meta.beta_sweep([0.001, meta.BETA_SMALL, meta.BETA_LARGE])
    assert sweep["beta"] == [0.001, meta.BETA_SMALL, meta.BETA_LARGE]
    assert sweep["to_global_mean"][0] < 0.1 and sweep["to_mean"][1] < 0.3 and sweep["to_pattern"][2] < 0.05


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="`spread` must be in \\[0, 1\\]"):
        meta.clustered_patterns(2, 2, 8, 1.5, torch.Generator())
    with pytest.raises(ValueError, match="`clusters`"):
        meta.clustered_patterns(0, 2, 8, 0.1, torch.Generator())
    with pytest.raises(ValueError, match="`beta`"):
        meta.fixed_points(torch.ones(1, 4), torch.ones(2, 4), 0.0)
