"""EDM's samplers: the general algorithm at EDM's settings, convergence to the exact ODE, churn,
the fused step against the sampler's lines, NFE counts and bad input."""
import math

import pytest
import torch

from course.diffusion import edm, mixtures, ode, samplers
from course.diffusion.ops import heun_step as heun_step_op
from course.diffusion.papers.edm import counted


def start(n=64, d=2, seed=0, sigma_max=80.0):
    return sigma_max * torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_the_general_sampler_at_edms_settings_is_the_edm_sampler():
    g, x = mixtures.ring(), start()
    sigmas = edm.edm_sigmas(12)
    one, zero = (lambda t: torch.ones_like(t)), (lambda t: torch.zeros_like(t))
    general = samplers.sample_general(g.denoise, x, sigmas, lambda t: t, one, one, zero)
    torch.testing.assert_close(general, samplers.sample_heun(g.denoise, x, sigmas))


def test_a_vp_schedule_through_the_general_sampler_reaches_the_same_ode_solution():
    # sigma(t) = t with s(t) = 1 / sqrt(1 + t^2) solves the same probability-flow ODE (EDM section 3)
    g, x = mixtures.ring(), start()
    sigmas = edm.edm_sigmas(128)
    scale = lambda t: 1 / (1 + t ** 2).sqrt()  # noqa: E731
    scale_d = lambda t: -t / (1 + t ** 2) ** 1.5  # noqa: E731
    out = samplers.sample_general(g.denoise, x * scale(sigmas[0]), sigmas, lambda t: t,
                                  lambda t: torch.ones_like(t), scale, scale_d)
    exact = ode.solve_pf_ode(g.denoise, x, 80.0, steps=200)
    assert ode.rms_error(out, exact) < 0.01


def test_heun_converges_to_the_exact_solution_at_second_order():
    g, x = mixtures.ring(), start()
    exact = ode.solve_pf_ode(g.denoise, x, 80.0, steps=200)
    errors = [ode.rms_error(samplers.sample_heun(g.denoise, x, edm.edm_sigmas(n)), exact)
              for n in (32, 64, 128)]
    assert errors[1] < errors[0] / 3 and errors[2] < errors[1] / 3  # halving h: error / 4


def test_heun_takes_two_evaluations_a_step_but_the_last_and_euler_one():
    g, x = mixtures.ring(), start()
    for second_order, expected in ((True, 2 * 10 - 1), (False, 10)):
        denoise, calls = counted(g.denoise)
        samplers.sample_heun(denoise, x, edm.edm_sigmas(10), second_order=second_order)
        assert len(calls) == expected


def test_churn_adds_the_noise_that_climbs_from_sigma_to_sigma_hat():
    seen = []
    samplers.sample_heun(lambda x, s: torch.zeros_like(x), torch.zeros(2000, 1, dtype=torch.float64),
                         torch.tensor([2.0, 1.0, 0.0], dtype=torch.float64), s_churn=10.0,
                         generator=torch.Generator().manual_seed(0), callback=seen.append)
    gamma = math.sqrt(2) - 1  # min(S_churn / N, sqrt 2 - 1)
    assert seen[0]["sigma_hat"] == pytest.approx(2.0 * (1 + gamma))


def test_the_fused_step_is_the_samplers_lines():
    g = torch.Generator().manual_seed(3)
    x, den, den2, noise = (torch.randn(9, 4, generator=g, dtype=torch.float64) for _ in range(4))
    sigma = torch.full((9,), 1.5, dtype=torch.float64)
    sigma_next = torch.tensor([0.7] * 8 + [0.0], dtype=torch.float64)
    hat = sigma_next * 1.2
    out = samplers.heun_step(x, den, den2, noise, sigma, sigma_next, hat)
    s, sn = 1.5, 0.7
    d = (x - den) / s
    euler = x + (sn - s) * d
    heun = x + (sn - s) * (d + (euler - den2) / sn) / 2
    torch.testing.assert_close(out[:8], heun[:8] + math.sqrt(1.2 ** 2 * sn ** 2 - sn ** 2) * noise[:8])
    torch.testing.assert_close(out[8], den[8])  # to sigma = 0: the Euler step lands on D


def test_bad_schedules_and_denoisers_are_refused_by_name():
    x = torch.zeros(4, 2)
    ok = lambda x, s: x  # noqa: E731
    with pytest.raises(ValueError, match="`sigmas` must decrease strictly"):
        samplers.sample_heun(ok, x, torch.tensor([1.0, 2.0, 0.0]))
    with pytest.raises(ValueError, match="`sigmas` must be finite and >= 0"):
        samplers.sample_heun(ok, x, torch.tensor([1.0, -1.0]))
    with pytest.raises(ValueError, match="`sigmas` must hold at least 2 noise levels"):
        samplers.sample_heun(ok, x, torch.tensor([1.0]))
    with pytest.raises(ValueError, match="returned 8 NaN or infinite"):
        samplers.sample_heun(lambda x, s: x * float("nan"), x, torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match=r"must return the state's shape \(4, 2\); got \(4, 3\)"):
        samplers.sample_heun(lambda x, s: torch.zeros(4, 3), x, torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="`steps` must be an int in"):
        edm.edm_sigmas(0)
    with pytest.raises(ValueError, match="`s_churn` and `s_noise` must be >= 0"):
        samplers.sample_heun(ok, x, torch.tensor([1.0, 0.0]), s_churn=-1.0)
    with pytest.raises(ValueError, match="a step goes down in noise"):
        samplers.heun_step(*(torch.zeros(2, 2),) * 4, torch.ones(2), torch.full((2,), 2.0),
                           torch.full((2,), 2.0))


@pytest.mark.parametrize("case", [*heun_step_op.test_cases, *heun_step_op.bench_cases], ids=lambda c: c.name)
def test_the_heun_steps_made_inputs_stay_valid_in_every_dtype_their_case_runs(case):
    """Rounding the levels to bfloat16 must not lift sigma_next to sigma (the H200's benchmark of
    'N=4096 D=3072' tripped on eight such rows before the inputs kept sigma_next <= 0.95 sigma)."""
    made = heun_step_op.make_inputs(case.params, torch.Generator().manual_seed(0))
    levels = {k: made[k] for k in ("sigma", "sigma_next", "sigma_next_hat")}
    rows = made["x"][:, :1]  # the checks read the levels' order and the shapes, not the state
    for dtype in case.dtypes or (torch.float32,):
        cast = {k: v.to(dtype) for k, v in levels.items()}
        samplers.check_heun_step_args("heun", *(rows.to(dtype),) * 4, **cast)


def test_a_level_out_of_order_is_named_by_its_row():
    x, levels = torch.zeros(3, 2), torch.tensor([1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"row 1 of 3 has sigma 1, sigma_next 1\.5"):
        samplers.check_heun_step_args("heun", x, x, x, x, levels, torch.tensor([0.5, 1.5, 0.0]),
                                      torch.tensor([0.5, 1.5, 0.0]))
