"""Zhao et al. 2024 (DC-Solver): the predictor-corrector, the compensation, the ratio search."""
import math

import pytest
import torch

from course.diffusion import edm, mixtures, ode
from course.diffusion.papers import dc_solver

RING = mixtures.ring()


def noise(n=32, seed=0):
    return 80 * torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def exact(x):
    return ode.solve_pf_ode(RING.denoise, x, 80.0, steps=64)


def test_lagrange_compensation_reproduces_its_nodes_and_is_exact_on_quadratics():
    lambdas = torch.tensor([-3.0, -1.5, 0.5], dtype=torch.float64)
    a, b, c = (torch.randn(4, 2, generator=torch.Generator().manual_seed(k), dtype=torch.float64)
               for k in range(3))
    quadratic = torch.stack([a + b * lam + c * lam ** 2 for lam in lambdas])  # [3, 4, 2]
    for ratio, node in ((1.0, 2), (0.0, 1)):
        torch.testing.assert_close(dc_solver.lagrange_compensation(lambdas, quadratic, ratio),
                                   quadratic[node])
    at = 0.3 * lambdas[2] + 0.7 * lambdas[1]
    torch.testing.assert_close(dc_solver.lagrange_compensation(lambdas, quadratic, 0.3),
                               a + b * at + c * at ** 2)
    many = dc_solver.lagrange_compensation(lambdas, quadratic, torch.tensor([1.0, 0.3], dtype=torch.float64))
    assert many.shape == (2, 4, 2)
    torch.testing.assert_close(many[1], a + b * at + c * at ** 2)


def test_unic_weights_are_a_half_at_first_order_and_adams_moulton_for_small_steps():
    assert dc_solver.unic_coefficients([1.0], -0.5, math.expm1(-0.5)).tolist() == [0.5]
    hh = -1e-4  # small steps: UniC-2 becomes Adams-Moulton 3, x + h (5/12 f_new + 8/12 f_0 - 1/12 f_-1)
    a = dc_solver.unic_coefficients([-1.0, 1.0], hh, math.expm1(hh))
    assert a.shape == (2,) and torch.isfinite(a).all()
    torch.testing.assert_close(a, torch.tensor([1 / 12, 5 / 12], dtype=torch.float64), atol=1e-3, rtol=0)


def test_ratios_of_one_are_the_plain_predictor_corrector():
    x, sigmas = noise(), edm.edm_sigmas(6, sigma_max=80.0)
    plain = dc_solver.sample_dc(RING.denoise, x, sigmas)
    ones = dc_solver.sample_dc(RING.denoise, x, sigmas, torch.ones(6))
    torch.testing.assert_close(ones, plain, rtol=0, atol=0)
    moved = dc_solver.sample_dc(RING.denoise, x, sigmas, torch.tensor([1, 1, 1, 0.8, 1, 1.0]))
    assert not torch.equal(moved, plain)
    early = dc_solver.sample_dc(RING.denoise, x, sigmas, torch.tensor([0.5, 0.5, 1, 1, 1, 1.0]))
    torch.testing.assert_close(early, plain, rtol=0, atol=0)  # fewer than three outputs: none to compensate


def test_predictor_corrector_converges_to_the_exact_solution_faster_than_its_predictor():
    x = noise(32)
    truth = exact(x)
    errors = {}
    for steps in (30, 60):
        sigmas = edm.edm_sigmas(steps, sigma_max=80.0)
        errors[steps] = (ode.rms_error(dc_solver.sample_dc(RING.denoise, x, sigmas), truth),
                         ode.rms_error(dc_solver.sample_dc(RING.denoise, x, sigmas, corrector=False), truth))
    assert errors[60][0] < 2e-3 and errors[60][0] < errors[60][1] / 2
    assert errors[30][0] / errors[60][0] > 3  # better than second order: the corrector raises the order


def test_fitted_ratios_lower_the_error_on_their_trajectories_and_converge_with_many_steps():
    x = noise(10, seed=3)
    truth = exact(x)
    sigmas = edm.edm_sigmas(6, sigma_max=80.0)
    ratios = dc_solver.fit_ratios(RING.denoise, x, sigmas)
    assert ratios.shape == (6,) and ratios[:2].tolist() == [1.0, 1.0]  # three outputs before the first
    fitted = ode.rms_error(dc_solver.sample_dc(RING.denoise, x, sigmas, ratios), truth)
    assert fitted < ode.rms_error(dc_solver.sample_dc(RING.denoise, x, sigmas), truth)
    many = edm.edm_sigmas(30, sigma_max=80.0)
    sampler = dc_solver.dc_sampler(seed=1)  # searches its ratios on 10 trajectories of its own
    assert ode.rms_error(sampler(RING.denoise, x, many), truth) < 1e-2


def test_the_widget_sampler_reports_each_step_and_takes_one_evaluation_per_step():
    calls, steps = [], []

    def counted(x, sigma):
        calls.append(1)
        return RING.denoise(x, sigma)

    sigmas = edm.edm_sigmas(5, sigma_max=80.0)
    out = dc_solver.dc_sampler(ratios=torch.ones(5))(counted, noise(8), sigmas, callback=steps.append)
    assert out.shape == (8, 2) and len(calls) == 5
    assert [s["i"] for s in steps] == list(range(5)) and torch.equal(steps[-1]["x"], out)
    assert steps[0]["sigma"] == 80.0 and steps[-1]["sigma_next"] == 0.0


def test_a_search_denoiser_keeps_the_sampling_evaluations_to_one_per_step_and_searches_once():
    searches, calls = [], []

    def search(x, sigma):
        searches.append(1)
        return RING.denoise(x, sigma)

    def counted(x, sigma):
        calls.append(1)
        return RING.denoise(x, sigma)

    sampler, sigmas = dc_solver.dc_sampler(search=search, seed=2), edm.edm_sigmas(6, sigma_max=80.0)
    x = noise(8)
    first = sampler(counted, x, sigmas)
    searched = len(searches)
    assert searched > 0 and len(calls) == 6
    torch.testing.assert_close(sampler(counted, x, sigmas), first, rtol=0, atol=0)
    assert len(searches) == searched and len(calls) == 12  # the ratios were kept for the schedule
    same_noise = 80 * torch.randn(10, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    fit = dc_solver.fit_ratios(RING.denoise, same_noise, sigmas)
    torch.testing.assert_close(first, dc_solver.sample_dc(RING.denoise, x, sigmas, fit))


def test_bad_input_is_refused_with_the_argument_named():
    x, sigmas = noise(4), edm.edm_sigmas(4, sigma_max=80.0)
    with pytest.raises(ValueError, match="`ratios`"):
        dc_solver.sample_dc(RING.denoise, x, sigmas, torch.ones(3))
    with pytest.raises(ValueError, match="`ratios`"):
        dc_solver.sample_dc(RING.denoise, x, sigmas, torch.tensor([1, 1, float("nan"), 1.0]))
    with pytest.raises(ValueError, match="`sigmas`"):
        dc_solver.sample_dc(RING.denoise, x, sigmas.flip(0))
    with pytest.raises(ValueError, match="`sigmas` must end at 0"):
        dc_solver.sample_dc(RING.denoise, x, sigmas[:-1])
    with pytest.raises(ValueError, match="`x`"):
        dc_solver.sample_dc(RING.denoise, x[0], sigmas)
    with pytest.raises(ValueError, match="denoiser"):
        dc_solver.sample_dc(lambda x, s: x[:, :1], x, sigmas)
    with pytest.raises(TypeError, match="`fit_particles`"):
        dc_solver.dc_sampler(fit_particles=2.5)
    with pytest.raises(TypeError, match="`search`"):
        dc_solver.dc_sampler(search="exact")
