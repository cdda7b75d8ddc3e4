"""Gaussian mixtures: the closed-form denoiser, score and density against independent computations."""
import math

import pytest
import torch

from course.diffusion import mixtures


def test_one_gaussian_has_the_textbook_posterior_mean():
    # y ~ N(mu, s^2 I), x = y + sigma n: E[y | x] = mu + s^2 / (s^2 + sigma^2) (x - mu)
    mu, s = torch.tensor([[1.0, -2.0, 0.5]], dtype=torch.float64), 0.7
    g = mixtures.GaussianMixture(mu, torch.tensor([s], dtype=torch.float64),
                                 torch.ones(1, dtype=torch.float64))
    x = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for sigma in (0.1, 1.0, 10.0):
        expected = mu + s ** 2 / (s ** 2 + sigma ** 2) * (x - mu)
        torch.testing.assert_close(g.denoise(x, sigma), expected)
        torch.testing.assert_close(g.score(x, sigma), -(x - mu) / (s ** 2 + sigma ** 2))


def test_the_score_is_the_gradient_of_the_log_density():
    g = mixtures.random_mixture(4, 3, seed=1)
    x = torch.randn(6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2)).requires_grad_()
    sigma = torch.full((6,), 0.4, dtype=torch.float64)
    (grad,) = torch.autograd.grad(g.log_prob(x, sigma).sum(), x)
    torch.testing.assert_close(g.score(x.detach(), sigma), grad)


def test_the_density_integrates_to_one_in_one_dimension():
    g = mixtures.GaussianMixture(torch.tensor([[-1.0], [2.0]], dtype=torch.float64),
                                 torch.tensor([0.3, 0.5], dtype=torch.float64),
                                 torch.tensor([1.0, 3.0], dtype=torch.float64))
    grid = torch.linspace(-12, 12, 24001, dtype=torch.float64)[:, None]
    mass = g.log_prob(grid, 1.5).exp().sum() * (grid[1, 0] - grid[0, 0])
    assert float(mass) == pytest.approx(1.0, abs=1e-6)


def test_samples_follow_the_weights_and_the_components():
    g = mixtures.GaussianMixture(torch.tensor([[0.0, 0.0], [10.0, 0.0]], dtype=torch.float64),
                                 torch.tensor([0.1, 0.1], dtype=torch.float64),
                                 torch.tensor([1.0, 3.0], dtype=torch.float64))
    x, component = g.sample(4000, seed=0)
    assert abs(float((component == 1).double().mean()) - 0.75) < 0.03
    assert float((x[component == 1, 0] - 10).abs().max()) < 1.0


def test_a_ring_is_equal_gaussians_on_a_circle():
    g = mixtures.ring(8, radius=2.0)
    torch.testing.assert_close(g.means.norm(dim=1), torch.full((8,), 2.0, dtype=torch.float64))
    assert math.isclose(float(g.probabilities.sum()), 1.0)


def test_bad_input_is_refused_by_name():
    g = mixtures.ring(4)
    with pytest.raises(ValueError, match="`sigma` must be positive and finite"):
        g.denoise(torch.zeros(3, 2, dtype=torch.float64), 0.0)
    with pytest.raises(ValueError, match=r"`sigma` must be a number or of shape \[N\] = \(3,\)"):
        g.denoise(torch.zeros(3, 2, dtype=torch.float64), torch.ones(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="`stds` must have one entry per component"):
        mixtures.GaussianMixture(torch.zeros(2, 2), torch.ones(3), torch.ones(2))
    with pytest.raises(ValueError, match="stds >= 0"):
        mixtures.GaussianMixture(torch.zeros(2, 2), -torch.ones(2), torch.ones(2))
    with pytest.raises(TypeError, match="`means` must be a floating-point tensor"):
        mixtures.GaussianMixture(torch.zeros(2, 2, dtype=torch.long), torch.ones(2), torch.ones(2))
