"""Graves et al. 2023 (Bayesian Flow Networks): the Bayesian updates, the schedules, the flows, the
samplers on exact networks, and bad input."""
import math

import pytest
import torch

from course.diffusion.papers import bfn


def gen(seed: int = 0):
    return torch.Generator().manual_seed(seed)


def test_gaussian_update_is_the_posterior_of_a_gaussian_prior_and_likelihood():
    mu, y = torch.tensor([[0.3]], dtype=torch.float64), torch.tensor([[-1.1]], dtype=torch.float64)
    rho, alpha = 2.0, 5.0
    new_mu, new_rho = bfn.gaussian_update(mu, rho, y, alpha)
    grid = torch.linspace(-6, 6, 20001, dtype=torch.float64)
    log_post = -0.5 * rho * (grid - mu[0, 0]) ** 2 - 0.5 * alpha * (y[0, 0] - grid) ** 2  # prior x likelihood
    post = (log_post - log_post.max()).exp()
    post = post / post.sum()
    mean = (post * grid).sum()
    torch.testing.assert_close(new_mu[0, 0], mean, atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.tensor(1 / new_rho, dtype=torch.float64),
                               (post * (grid - mean) ** 2).sum(), atol=1e-6, rtol=0)


def test_gaussian_updates_in_sequence_give_the_precision_weighted_average():
    ys, alphas = torch.randn(5, 3, 2, generator=gen()), [0.5, 1.0, 2.0, 4.0, 8.0]
    mu, rho = torch.zeros(3, 2), 1.0
    for y, a in zip(ys, alphas):
        mu, rho = bfn.gaussian_update(mu, rho, y, a)
    expected = sum(a * y for y, a in zip(ys, alphas)) / (1 + sum(alphas))
    torch.testing.assert_close(mu, expected)
    assert rho == 1 + sum(alphas)


def test_categorical_update_is_bayes_rule_with_the_sender_distribution_and_keeps_a_distribution():
    K, alpha = 3, 0.7
    theta = torch.softmax(torch.randn(4, 5, K, generator=gen(1), dtype=torch.float64), -1)
    y = torch.randn(4, 5, K, generator=gen(2), dtype=torch.float64)
    updated = bfn.categorical_update(theta, y)
    # p(k | y) proportional to theta_k N(y | alpha (K e_k - 1), alpha K I) (eq. 143)
    means = alpha * (K * torch.eye(K, dtype=torch.float64) - 1)  # [K, K], row k: the mean given class k
    log_lik = -((y[..., None, :] - means) ** 2).sum(-1) / (2 * alpha * K)
    torch.testing.assert_close(updated, torch.softmax(theta.log() + log_lik, -1))
    extreme = bfn.categorical_update(theta, 1e4 * y)
    for out in (updated, extreme):
        assert torch.isfinite(out).all() and (out >= 0).all()
        torch.testing.assert_close(out.sum(-1), torch.ones(4, 5, dtype=torch.float64))


def test_schedules_are_monotone_with_the_papers_endpoints():
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    beta = bfn.continuous_beta(t, 0.02)
    gamma = bfn.continuous_gamma(t, 0.02)
    discrete = bfn.discrete_beta(t, 3.0)
    for schedule in (beta, gamma, discrete):
        assert (schedule.diff() > 0).all() and schedule[0] == 0
    assert math.isclose(beta[-1].item(), 0.02 ** -2 - 1) and math.isclose(discrete[-1].item(), 3.0)
    torch.testing.assert_close(gamma, beta / (1 + beta))
    assert math.isclose(gamma[-1].item(), 1 - 0.02 ** 2)


def test_continuous_output_is_zero_before_t_min_and_clipped():
    mu, eps = torch.full((3, 2), 0.5), torch.full((3, 2), -50.0)
    out = bfn.continuous_output(mu, torch.tensor([0.0, 0.5, 1.0]), eps)
    assert (out[0] == 0).all() and (out[1:] == 1).all()


def oracle_continuous(x: float, sigma_1: float):
    """eps_hat that makes x_hat = x exactly (for t >= t_min)."""
    def net(mu, t):
        gamma = bfn.continuous_gamma(t, sigma_1).clamp_min(1e-12)[:, None]
        return (mu / gamma - x) / ((1 - gamma) / gamma).sqrt()
    return net


def test_sampler_with_a_known_x_ends_in_the_bayesian_flow_distribution():
    sigma_1, steps, x = 0.1, 20, 0.5
    out, trajectory = bfn.sample_continuous(oracle_continuous(x, sigma_1), 20000, 1, steps, sigma_1, seed=3)
    beta = sigma_1 ** -2 - 1
    assert math.isclose(trajectory["rho"][-1].item(), 1 + beta, rel_tol=1e-6)
    alpha_1 = sigma_1 ** (-2 / steps) * (1 - sigma_1 ** (2 / steps))  # step 1 sees x_hat = 0 (t < t_min)
    mu = trajectory["mu"][-1, :, 0]
    assert abs(mu.mean().item() - (beta - alpha_1) * x / (1 + beta)) < 0.005
    assert abs(mu.var().item() / (beta / (1 + beta) ** 2) - 1) < 0.05  # gamma (1 - gamma), eq. 80
    torch.testing.assert_close(out, torch.full((20000, 1), x))


def test_discrete_sampler_with_a_known_x_ends_in_the_bayesian_flow_distribution():
    beta_1, x = 3.0, torch.tensor([1, 0, 1])

    def net(theta, t):  # the output distribution puts all its mass on x
        return 50.0 * torch.nn.functional.one_hot(x, 2).float().expand(theta.shape[0], 3, 2)

    out, trajectory = bfn.sample_discrete(net, 10000, 3, 10, beta_1=beta_1, seed=4)
    theta = trajectory["theta"][-1].double()  # softmax(y), y ~ N(beta_1 (K e_x - 1), beta_1 K I) (eq. 167)
    log_odds = (theta[..., 1] / theta[..., 0]).log() * (2 * x - 1)  # y_x - y_other ~ N(2 beta_1, 4 beta_1)
    assert (log_odds.mean(0) - 2 * beta_1).abs().max() < 0.1
    assert ((log_odds.var(0) / (4 * beta_1)) - 1).abs().max() < 0.05
    assert (out == x).all()


def test_samplers_with_the_exact_networks_match_the_data():
    probs = bfn.string_distribution()
    x, _ = bfn.sample_discrete(bfn.exact_discrete_network(probs), 1000, 8, 15, seed=5)
    independent = 0.5 * (bfn.independent_bits(probs) - probs).abs().sum().item()
    assert bfn.total_variation(x, probs) < 0.15 and independent > 0.5
    ring = bfn.scaled_ring()
    points, _ = bfn.sample_continuous(bfn.exact_continuous_network(ring), 1000, 2, 20, seed=6)
    data = ring.sample(1000, seed=6)[0]
    assert abs(ring.log_prob(points.double(), 1e-6).mean() - ring.log_prob(data, 1e-6).mean()) < 0.3


def test_the_exact_network_has_the_lower_loss():
    probs = bfn.string_distribution()
    x = bfn.strings_of(8)[torch.multinomial(probs, 2000, True, generator=gen(7))]
    exact = bfn.discrete_loss(bfn.exact_discrete_network(probs), x, generator=gen(8))
    uniform = bfn.discrete_loss(lambda theta, t: torch.zeros_like(theta), x, generator=gen(8))
    assert exact < 0.5 * uniform
    ring = bfn.scaled_ring()
    points = ring.sample(2000, seed=9)[0].float()
    exact = bfn.continuous_loss(bfn.exact_continuous_network(ring), points, generator=gen(10))
    zero = bfn.continuous_loss(lambda mu, t: torch.zeros_like(mu), points, generator=gen(10))
    assert exact < 0.7 * zero  # eps_hat = 0 guesses x_hat = mu / gamma, the noisy observation itself


def test_string_distribution_and_independent_bits_are_distributions_with_the_same_marginals():
    probs = bfn.string_distribution()
    independent = bfn.independent_bits(probs)
    bits = bfn.strings_of(8).double()
    for p in (probs, independent):
        assert (p >= 0).all() and math.isclose(p.sum().item(), 1.0)
    torch.testing.assert_close(independent @ bits, probs @ bits)
    assert bfn.total_variation(bfn.strings_of(8)[[0, 255]], probs) == pytest.approx(
        0.5 * ((torch.tensor([0.5] + [0.0] * 254 + [0.5], dtype=torch.float64) - probs).abs().sum().item()))


def test_sampling_shapes_trajectories_and_callbacks():
    calls = []
    net = bfn.EpsilonMLP(2)
    with torch.no_grad():
        x, trajectory = bfn.sample_continuous(net, 7, 2, 5, seed=0, callback=calls.append)
    assert x.shape == (7, 2) and trajectory["mu"].shape == (6, 7, 2) and trajectory["t"].shape == (6,)
    assert (trajectory["rho"].diff() > 0).all() and len(calls) == 5 and (x.abs() <= 1).all()
    with torch.no_grad():
        s, trajectory = bfn.sample_discrete(bfn.CategoricalMLP(8, 3), 7, 8, 5, classes=3, seed=0,
                                            callback=calls.append)
    assert s.shape == (7, 8) and s.dtype == torch.int64 and 0 <= s.min() and s.max() < 3
    assert trajectory["theta"].shape == (6, 7, 8, 3) and len(calls) == 10
    torch.testing.assert_close(trajectory["theta"].sum(-1), torch.ones(6, 7, 8))


def test_loss_gradients_reach_the_networks():
    for net, loss, data in ((bfn.EpsilonMLP(2), bfn.continuous_loss, torch.rand(16, 2)),
                            (bfn.CategoricalMLP(8), bfn.discrete_loss, torch.randint(0, 2, (16, 8)))):
        loss(net, data, generator=gen()).backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_bad_input_is_refused_with_the_argument_named():
    t = torch.rand(4)
    cases = [
        (lambda: bfn.continuous_beta(t, 1.5), "`sigma_1`"),
        (lambda: bfn.continuous_gamma(torch.tensor([1.5]), 0.1), "`t`"),
        (lambda: bfn.discrete_beta(t, -1.0), "`beta_1`"),
        (lambda: bfn.gaussian_update(torch.zeros(2, 1), 0.0, torch.zeros(2, 1), 1.0), "`rho`"),
        (lambda: bfn.gaussian_update(torch.zeros(2, 1), 1.0, torch.zeros(3, 1), 1.0), "`y`"),
        (lambda: bfn.categorical_update(torch.full((2, 2), 0.7), torch.zeros(2, 2)), "`theta`"),
        (lambda: bfn.continuous_output(torch.zeros(4, 2), t, torch.zeros(4, 3)), "`eps_hat`"),
        (lambda: bfn.sample_continuous(bfn.EpsilonMLP(2), 4, 2, 0), "`steps`"),
        (lambda: bfn.sample_discrete(bfn.CategoricalMLP(8), 0, 8, 3), "`n`"),
        (lambda: bfn.sample_continuous(lambda mu, t: torch.zeros(4, 3), 4, 2, 3), "shape"),
        (lambda: bfn.sample_continuous(lambda mu, t: mu * math.nan, 4, 2, 3), "network's output"),
        (lambda: bfn.string_distribution(("0101", "11")), "`patterns`"),
        (lambda: bfn.string_distribution(weights=(0.5, 0.5, 0.5, 0.5)), "`weights`"),
        (lambda: bfn.total_variation(torch.zeros(3, 8, dtype=torch.long), torch.ones(8)), "`probs`"),
        (lambda: bfn.discrete_loss(bfn.CategoricalMLP(8), torch.zeros(3, 8)), "`x`"),
    ]
    for call, name in cases:
        with pytest.raises((ValueError, TypeError), match=name):
            call()
