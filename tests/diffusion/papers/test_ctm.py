"""Kim et al. 2023 (CTM): the jump's parameterisation, the teacher's targets, the sampler."""
import math

import pytest
import torch

from course.diffusion import edm, mixtures
from course.diffusion.papers import ctm
from course.train import fit, seeded

RING = mixtures.ring()


def model(seed=0):
    with seeded(seed):
        return ctm.ConsistencyTrajectoryModel(2, ctm.ring_sigma_data(RING), hidden=16, layers=2)


def levels(n, value):
    return torch.full((n,), value)


def test_a_jump_to_its_own_level_is_the_identity_and_a_jump_to_zero_is_g():
    net, x = model(), 5 * torch.randn(32, 2, generator=torch.Generator().manual_seed(1))
    t = torch.rand(32, generator=torch.Generator().manual_seed(2)) * 10 + 0.01
    torch.testing.assert_close(net(x, t, t), x, rtol=0, atol=0)
    torch.testing.assert_close(net(x, t, torch.zeros(32)), net.g(x, t, torch.zeros(32)))
    s = t / 2  # halfway: the average of x_t and g (eq. 3 with s / t = 1/2)
    torch.testing.assert_close(net(x, t, s), (x + net.g(x, t, s)) / 2)


def test_sigma_data_is_the_rings_spread_per_coordinate():
    assert math.isclose(ctm.ring_sigma_data(RING), math.sqrt(2 + 0.15 ** 2), rel_tol=1e-9)


def test_the_exact_g_between_close_levels_is_the_denoiser_to_first_order():
    gaps = []
    for count in (60, 120):
        sigmas, states = ctm.teacher_trajectories(RING, 0, count=16, levels=count)
        assert states.shape == (count + 1, 16, 2) and sigmas[0] == 80 and sigmas[-1] == 0
        i = count // 2  # sigma = 0.4, where the trajectories bend most
        ratio = sigmas[i + 1] / sigmas[i]
        g = (states[i + 1] - ratio * states[i]) / (1 - ratio)
        gaps.append(float((g - RING.denoise(states[i].double(), float(sigmas[i])).float()).norm(dim=1).max()))
    assert gaps[1] < 0.06 and 1.6 < gaps[0] / gaps[1] < 2.5


def test_training_on_the_teachers_pairs_lowers_the_loss():
    sigmas, states = ctm.teacher_trajectories(RING, 0, count=64, levels=12)
    net, g = model(), torch.Generator().manual_seed(0)
    result = fit(net.parameters(), lambda: ctm.pair_loss(net, sigmas, states, g, batch=128), steps=60,
                 lr=1e-2, seed=0, optimizer=ctm.DecayingAdam, total=60, progress=False)
    assert sum(result.losses[-10:]) < 0.5 * sum(result.losses[:10])


def test_the_sampler_ignores_the_denoiser_and_jumps_through_levels_picked_from_the_schedule():
    def never(x, sigma):
        raise AssertionError("CTM must not call the denoiser")

    net, steps = model(), []
    x = 80 * torch.randn(8, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sigmas = edm.edm_sigmas(6, sigma_max=80.0)
    out = ctm.ctm_sampler(net, jumps=2)(never, x, sigmas, callback=steps.append)
    assert out.dtype == torch.float64 and out.shape == (8, 2) and len(steps) == 2
    picked = sigmas[[0, 3, 6]].tolist()
    assert [s["sigma"] for s in steps] == picked[:2] and [s["sigma_next"] for s in steps] == picked[1:]
    torch.testing.assert_close(out, ctm.sample_ctm(net, x, sigmas[[0, 3, 6]]))
    every = ctm.ctm_sampler(net)(never, x, sigmas, callback=None)
    torch.testing.assert_close(every, ctm.sample_ctm(net, x, sigmas))


def test_best_solver_at_one_evaluation_is_one_euler_step_to_the_mean():
    x = 80 * torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    rms, _ = ctm.best_solver(RING, x, torch.zeros(64, 2, dtype=torch.float64), 1)
    one_step = RING.denoise(x, 80.0)  # Euler from 80 to 0 lands on D(x; 80)
    assert math.isclose(rms, float(one_step.pow(2).sum(1).mean().sqrt()), rel_tol=1e-9)


def test_bad_input_is_refused_with_the_argument_named():
    net, x = model(), torch.randn(4, 2)
    with pytest.raises(ValueError, match="0 <= s <= t"):
        net(x, levels(4, 1.0), levels(4, 2.0))
    with pytest.raises(ValueError, match="t > 0"):
        net(x, levels(4, 0.0), levels(4, 0.0))
    with pytest.raises(ValueError, match="`t`"):
        net(x, levels(3, 1.0), levels(4, 0.5))
    with pytest.raises(ValueError, match="`x`"):
        net(torch.randn(4, 3), levels(4, 1.0), levels(4, 0.5))
    with pytest.raises(TypeError, match="`model`"):
        ctm.ctm_sampler(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="`jumps`"):
        ctm.ctm_sampler(net, jumps=0)
    with pytest.raises(ValueError, match="`jumps` = 5"):
        ctm.ctm_sampler(net, jumps=5)(None, x, edm.edm_sigmas(2, sigma_max=80.0))
    with pytest.raises(ValueError, match="`sigmas`"):
        ctm.sample_ctm(net, x, torch.tensor([1.0, 2.0]))
