"""Eyring et al. 2024 (ReNO): the chi regulariser, the class reward, the noise optimisation."""
import math

import pytest
import torch
from torch import nn

from course.diffusion import mixtures
from course.diffusion.papers import reno


@pytest.mark.parametrize("d", [2, 5, 64])
def test_the_regulariser_is_minus_the_chi_log_density_up_to_a_constant(d):
    radii = torch.tensor([0.5, 1.0, math.sqrt(d), 3.0 + d], dtype=torch.float64)
    eps = torch.zeros(4, d, dtype=torch.float64)
    eps[:, 0] = radii
    log_chi = ((d - 1) * radii.log() - radii ** 2 / 2 + (1 - d / 2) * math.log(2) - math.lgamma(d / 2))
    k = reno.chi_regulariser(eps)
    torch.testing.assert_close(k - k[0], -(log_chi - log_chi[0]))
    r = torch.linspace(0.2, 3 * math.sqrt(d), 2000, dtype=torch.float64)
    at = torch.zeros(2000, d, dtype=torch.float64)
    at[:, -1] = r
    assert abs(r[reno.chi_regulariser(at).argmin()].item() - math.sqrt(d - 1)) < 0.01  # chi_d's mode


def test_rewards_are_log_posteriors_of_the_blurred_mixture():
    ring = mixtures.ring()
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    total = sum(reno.class_reward(ring, x, torch.full((5,), c)).exp() for c in range(8))
    torch.testing.assert_close(total, torch.ones(5, dtype=torch.float64))
    on_mean = reno.class_reward(ring, ring.means[[3]], torch.tensor([3]))
    assert on_mean.item() > reno.class_reward(ring, ring.means[[3]], torch.tensor([4])).item()


def test_optimising_the_noise_climbs_the_reward_and_leaves_the_generator_as_it_was():
    generator = nn.Linear(2, 2)
    with torch.no_grad():
        generator.weight.copy_(torch.tensor([[2.0, 1.0], [0.0, 1.0]]))
        generator.bias.copy_(torch.tensor([0.5, 0.0]))
    before = [p.clone() for p in generator.parameters()]
    goal = torch.tensor([1.5, -0.5])
    eps = torch.zeros(3, 2)

    def reward(x):
        return -(x - goal).square().sum(1)

    free = reno.optimise_noise(generator, reward, eps, lam=0.0, iterations=200, lr=0.05)
    with torch.no_grad():
        torch.testing.assert_close(generator(free), goal.expand(3, 2), atol=1e-2, rtol=0)
    assert torch.equal(eps, torch.zeros(3, 2))  # the caller's noise is not changed
    for p, q in zip(generator.parameters(), before):
        assert torch.equal(p, q) and p.requires_grad and p.grad is None


def test_the_regulariser_pulls_an_atypical_noise_back():
    generator = nn.Identity()
    far = torch.full((4, 2), 6.0)

    def no_reward(x):
        return torch.zeros(x.shape[0])

    back = reno.optimise_noise(generator, no_reward, far, lam=1.0, iterations=300, lr=0.05)
    torch.testing.assert_close(back.norm(dim=1), torch.ones(4), atol=0.05, rtol=0)  # chi_2's mode


def test_sample_report_counts_target_data_and_typicality():
    ring = mixtures.ring()
    x = torch.stack([ring.means[0], ring.means[1], torch.zeros(2, dtype=torch.float64)]).float()
    eps = torch.tensor([[1.0, 0.0], [0.0, 10.0], [0.5, 0.5]])
    report = reno.sample_report(ring, x, eps, torch.tensor([0, 2, 1]))  # the origin is nearest to mean 0
    assert report == pytest.approx({"on_target": 1 / 3, "on_data": 2 / 3, "typical": 2 / 3})


def test_bad_input_is_refused_with_the_argument_named():
    ring = mixtures.ring()
    with pytest.raises(ValueError, match="`eps`"):
        reno.chi_regulariser(torch.ones(3))
    with pytest.raises(ValueError, match="`target`"):
        reno.class_reward(ring, torch.zeros(2, 2), torch.tensor([0, 8]))
    with pytest.raises(TypeError, match="`target`"):
        reno.class_reward(ring, torch.zeros(2, 2), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="`eps`"):
        reno.optimise_noise(nn.Identity(), lambda x: x.sum(1), torch.tensor([[float("nan"), 0.0]]))
    with pytest.raises(ValueError, match="`lam`"):
        reno.optimise_noise(nn.Identity(), lambda x: x.sum(1), torch.zeros(1, 2), lam=-1.0)
