"""The ideal denoiser of a training set: its limits, its equality with the mixture's, bad input."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course.diffusion import ideal, mixtures

FORMS = (ideal.ideal_denoiser, ideal.ideal_denoiser_online, ideal.ideal_denoiser_sdpa)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 30), st.integers(1, 130), st.integers(1, 5), st.floats(0.05, 50.0),
       st.integers(0, 10 ** 6))
def test_every_form_is_the_empirical_mixtures_posterior_mean(n, m, d, sigma, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randn(m, d, generator=g, dtype=torch.float64)
    expected = mixtures.empirical(y).denoise(x, sigma)
    for form in FORMS:
        torch.testing.assert_close(form(x, y, sigma), expected, rtol=1e-9, atol=1e-9)


def test_at_small_sigma_it_returns_the_nearest_training_point():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(50, 3, generator=g), torch.randn(40, 3, generator=g)
    nearest = y[torch.cdist(x, y).argmin(1)]
    for form in FORMS:
        torch.testing.assert_close(form(x, y, 1e-3), nearest)


def test_at_large_sigma_it_returns_the_mean_and_one_point_is_always_itself():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(8, 2, generator=g), torch.randn(30, 2, generator=g)
    torch.testing.assert_close(ideal.ideal_denoiser(x, y, 1e4), y.mean(0).expand(8, 2), atol=1e-4, rtol=0)
    torch.testing.assert_close(ideal.ideal_denoiser(x, y[:1], 0.3), y[:1].expand(8, 2))


def test_the_streaming_gradient_is_the_references():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(20, 4, generator=g, dtype=torch.float64)
    y = torch.randn(150, 4, generator=g, dtype=torch.float64)
    sigma = torch.rand(20, generator=g, dtype=torch.float64) + 0.2
    assert torch.autograd.gradcheck(lambda x: ideal.ideal_denoiser_online(x, y, sigma), (x.requires_grad_(),))


def test_bad_input_is_refused_by_name():
    x, y = torch.zeros(3, 2), torch.zeros(5, 2)
    with pytest.raises(ValueError, match="`y` must hold at least one training point"):
        ideal.ideal_denoiser(x, y[:0], 1.0)
    with pytest.raises(ValueError, match="must share D"):
        ideal.ideal_denoiser(x, torch.zeros(5, 3), 1.0)
    with pytest.raises(TypeError, match="`y` must have x's dtype"):
        ideal.ideal_denoiser(x, y.double(), 1.0)
    with pytest.raises(ValueError, match="`sigma` must be positive"):
        ideal.ideal_denoiser(x, y, -1.0)
    with pytest.raises(ValueError, match="differentiates `x` only; `y` requires grad"):
        ideal.ideal_denoiser_online(x, y.requires_grad_(), 1.0)
