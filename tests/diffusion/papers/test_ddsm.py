"""Yang et al. 2024 (DDSM): the coarsening ladder, step-aware sampling, the evolutionary search."""
import pytest
import torch

from course.diffusion import edm, mixtures, samplers
from course.diffusion.papers import ddsm


def moments(m):
    """Overall mean [D] and mean squared norm of a mixture."""
    p = m.probabilities
    mean = p @ m.means
    second = (p * ((m.means ** 2).sum(1) + m.dim * m.stds ** 2)).sum()
    return mean, second


def test_merging_keeps_the_weight_mean_and_second_moment():
    m = mixtures.random_mixture(5, 3, seed=1)
    merged = ddsm.merge(m, 1, 3)
    assert merged.means.shape == (4, 3)
    torch.testing.assert_close(merged.weights.sum(), m.weights.sum())
    for a, b in zip(moments(merged), moments(m)):
        torch.testing.assert_close(a, b)


def test_the_ladder_halves_down_to_one_gaussian_with_the_data_moments():
    m = mixtures.random_mixture(8, 2, seed=0)
    ladder = ddsm.coarsening_ladder(m)
    assert [r.means.shape[0] for r in ladder] == [8, 4, 2, 1]
    for a, b in zip(moments(ladder[-1]), moments(m)):
        torch.testing.assert_close(a, b)


def test_coarse_rungs_differ_from_the_full_model_in_the_middle_noise_levels_only():
    ladder = ddsm.coarsening_ladder(mixtures.random_mixture(8, 2, spread=1.5, seed=2))
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def gap(sigma):  # mean |D_full - D_one_gaussian| at noisy points of level sigma
        return (ladder[0].denoise(sigma * x, sigma) - ladder[-1].denoise(sigma * x, sigma)).norm(dim=1).mean()

    assert gap(50.0) < 0.05 and gap(0.005) < 0.005 and gap(1.0) > 0.2


def test_the_full_schedule_is_heuns_sampler_and_costs_count_calls():
    m = mixtures.ring()
    ladder = ddsm.coarsening_ladder(m)
    sigmas = edm.edm_sigmas(5, sigma_max=20.0)
    x = 20 * torch.randn(32, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    torch.testing.assert_close(ddsm.sample_step_aware(ladder, [0] * 5, x, sigmas),
                               samplers.sample_heun(m.denoise, x, sigmas))
    assert ddsm.schedule_cost(ladder, [0] * 5, sigmas) == 8 * (2 * 4 + 1)
    assert ddsm.schedule_cost(ladder, [3, 3, 2, 1, 0], sigmas) == 2 * (1 + 1 + 2 + 4) + 8


def test_the_search_finds_the_cheapest_schedule_within_the_limit():
    cost = {0: 8, 1: 4, 2: 1}

    def cost_of(s):
        return sum(cost[r] for r in s)

    def error_of(s):  # steps 2 and 3 need the full rung; the others take any
        return float(s[2] != 0) + float(s[3] != 0)

    found = ddsm.evolutionary_search(error_of, cost_of, 6, 3, limit=0.0, generations=60, children=8, seed=0)
    assert found == [2, 2, 0, 0, 2, 2]


def test_bad_input_is_refused_with_the_argument_named():
    m = mixtures.ring()
    with pytest.raises(ValueError, match="`i` and `j`"):
        ddsm.merge(m, 2, 2)
    ladder = ddsm.coarsening_ladder(m)
    sigmas = edm.edm_sigmas(3)
    with pytest.raises(ValueError, match="`schedule`"):
        ddsm.sample_step_aware(ladder, [0, 0], torch.zeros(4, 2, dtype=torch.float64), sigmas)
    with pytest.raises(ValueError, match="`schedule`"):
        ddsm.sample_step_aware(ladder, [0, 0, 9], torch.zeros(4, 2, dtype=torch.float64), sigmas)
    with pytest.raises(ValueError, match="`steps`"):
        ddsm.evolutionary_search(len, len, 0, 3, 1.0)
