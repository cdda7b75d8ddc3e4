"""Ou et al. 2024 (RADD): Theorem 1's factorised score, the cached sampler and its expected NFE."""
import pytest
import torch

from course.diffusion import discrete
from course.diffusion.papers import absorbing_diffusion as radd


@pytest.fixture(scope="module")
def dist():
    return discrete.dna_toy()


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return discrete.MaskedDenoiser(6, 4, hidden=16).requires_grad_(False)


def test_the_concrete_score_is_a_time_factor_times_the_clean_conditionals(dist):
    g = torch.Generator().manual_seed(0)
    x0 = dist.sample(200, g)
    t = 0.05 + 0.9 * torch.rand(200, generator=g, dtype=torch.float64)
    x_t = discrete.mask_tokens(x0, t, g, vocab=4)
    exact = radd.exact_concrete_score(dist, x_t, t)
    assert exact.abs().sum() > 0
    torch.testing.assert_close(radd.concrete_score(discrete.ExactDenoiser(dist), x_t, t), exact,
                               rtol=1e-9, atol=1e-12)


def test_caching_gives_identical_samples_with_fewer_evaluations(model):
    plain, plain_nfe = radd.sample(model, 300, 24, torch.Generator().manual_seed(1), cache=False)
    cached, cached_nfe = radd.sample(model, 300, 24, torch.Generator().manual_seed(1), cache=True)
    assert torch.equal(plain, cached)
    assert (plain < 4).all()  # every token unmasked by t = 0
    assert (plain_nfe == 24).all() and (cached_nfe >= 1).all() and (cached_nfe <= 6).all()


def test_the_measured_evaluations_match_the_expected_nfe(model):
    _, nfe = radd.sample(model, 3000, 24, torch.Generator().manual_seed(2), cache=True)
    expected = radd.expected_cached_nfe(6, 24)
    assert abs(nfe.double().mean().item() - expected) < 4 * nfe.double().std().item() / 3000 ** 0.5
    assert radd.expected_cached_nfe(6, 1) == 1
    assert radd.expected_cached_nfe(6, 6) < radd.expected_cached_nfe(6, 100) < 6


def test_one_step_unmasks_everything_and_the_empirical_distribution_sums_to_one(model, dist):
    x, nfe = radd.sample(model, 50, 1, torch.Generator().manual_seed(3), cache=True)
    assert (x < 4).all() and (nfe == 1).all()
    p = radd.empirical(dist, x)
    assert p.shape == dist.probs.shape and p.sum().item() == pytest.approx(1.0)


def test_a_time_conditioned_denoiser_samples_uncached():
    torch.manual_seed(1)
    timed = discrete.MaskedDenoiser(6, 4, hidden=8, time_conditioned=True).requires_grad_(False)
    x, nfe = radd.sample(timed, 20, 8, torch.Generator().manual_seed(0))
    assert (x < 4).all() and (nfe == 8).all()


def test_bad_input_is_refused_with_the_argument_named(model):
    timed = discrete.MaskedDenoiser(6, 4, hidden=8, time_conditioned=True)
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="`cache`"):
        radd.sample(timed, 4, 8, g, cache=True)
    with pytest.raises(ValueError, match="`steps`"):
        radd.sample(model, 4, 0, g)
    with pytest.raises(ValueError, match="`num`"):
        radd.sample(model, -1, 4, g)
    with pytest.raises(ValueError, match="`t`"):
        radd.concrete_score(model, torch.full((2, 6), 4), torch.tensor([0.0, 0.5]))
    with pytest.raises(ValueError, match="`x_t`"):
        radd.exact_concrete_score(discrete.dna_toy(), torch.full((2, 5), 4), torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match="`steps`"):
        radd.expected_cached_nfe(6, 0)
