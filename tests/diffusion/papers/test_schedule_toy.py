"""The schedule papers' shared toy: resolution by upsampling, its exact denoiser and ODE solution, the
schedules' sampling levels, and training side by side (what separate runs give)."""
import math

import pytest
import torch

from course.diffusion import edm, networks, ode, samplers
from course.diffusion.papers import schedule_toy as st


def test_downsample_undoes_upsample_and_averages_the_copies():
    y = torch.randn(5, 2, dtype=torch.float64)
    up = st.upsample(y, 3)
    assert up.shape == (5, 6) and torch.equal(up[:, :3], y[:, :1].expand(5, 3))
    torch.testing.assert_close(st.downsample(up, 3), y)
    noise = torch.randn(20000, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert abs(float(st.downsample(noise, 4).std()) - 0.5) < 0.01  # the premise: noise / sqrt(r)


def test_the_data_is_the_ring_upsampled_with_pixel_noise_in_every_value():
    m = st.mixture_at(4)
    assert m.means.shape == (8, 8) and torch.equal(m.means, st.upsample(st.mixture_at(1).means, 4))
    assert torch.all(m.stds == st.PIXEL_STD)
    assert st.training_set(0, 4).shape == (st.POOL, 8) and st.training_set(0, 4).dtype == torch.float32


def test_the_split_exact_solution_is_the_full_ode_solution():
    x = 80 * torch.randn(16, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    split = st.exact_solution(x, 3)
    full = ode.solve_pf_ode(st.mixture_at(3).denoise, x, 80.0, steps=50)
    torch.testing.assert_close(split, full, atol=2e-3, rtol=0)


@pytest.mark.parametrize("name,options", [("cosine", {}), ("shifted_cosine", {"shift": 0.25})])
def test_schedule_levels_start_at_sigma_max_and_end_at_sigma_min_then_0(name, options):
    sigmas = st.schedule_levels(name, 16, **options)
    edm.check_sigmas("test", sigmas)
    assert sigmas.shape == (18,) and sigmas[0] == st.SIGMA_MAX and sigmas[-2] == st.SIGMA_MIN
    assert sigmas[-1] == 0


def test_the_exact_denoiser_on_many_levels_reaches_the_exact_solution():
    x = st.SIGMA_MAX * torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = samplers.sample_heun(st.mixture_at(1).denoise, x, st.schedule_levels("cosine", 64))
    assert ode.rms_error(out, st.exact_solution(x, 1)) < 0.01
    assert st.denoising_error(ExactAsNetwork(1), seed=0) < 1e-9


class ExactAsNetwork:
    """The exact denoiser behind the interface `denoising_error` expects of a network."""

    sigma_data = 1.0

    def __init__(self, r):
        self.mixture = st.mixture_at(r)

    def __call__(self, x, sigma):
        return self.mixture.denoise(x.double(), sigma.double())


def test_side_by_side_training_is_separate_training_at_once():
    y = st.training_set(0, 2)
    table = {"cosine": ("cosine", {}), "shifted": ("shifted_cosine", {"shift": 0.5})}
    both = st.train_side_by_side(y, table, steps=15, seed=4)
    alone, _ = networks.train_denoiser(y, steps=15, seed=4, sigma_sampler=networks.schedule_sampler("cosine"))
    x, sigma = torch.randn(32, 4), torch.rand(32) * 3 + 0.05
    with torch.no_grad():
        torch.testing.assert_close(both["cosine"][0](x, sigma), alone(x, sigma), atol=1e-5, rtol=1e-5)
        assert (both["cosine"][0](x, sigma) - both["shifted"][0](x, sigma)).abs().max() > 1e-3
    assert both["cosine"][1].steps == 15 and math.isfinite(both["cosine"][1].final_loss)


def test_bad_input_is_refused_by_name():
    cases = [
        (lambda: st.upsample(torch.randn(2, 2), 0), ValueError, "`r`"),
        (lambda: st.downsample(torch.randn(2, 5), 2), ValueError, "`x`"),
        (lambda: st.schedule_levels("cosine", 0), ValueError, "`steps`"),
        (lambda: st.schedule_levels("sigmoid", 4), ValueError, "`name`"),
        (lambda: st.train_side_by_side(torch.randn(8, 2), {}, steps=1, seed=0), ValueError, "`table`"),
        (lambda: st.train_side_by_side(torch.randn(8, 2), {"a": ("nope", {})}, steps=1, seed=0),
         ValueError, "`name`"),
        (lambda: st.train_side_by_side(torch.randn(8, 2), {"a": ("cosine", {})}, steps=-1, seed=0),
         ValueError, "`steps`"),
    ]
    for call, error, name in cases:
        with pytest.raises(error, match=name):
            call()
