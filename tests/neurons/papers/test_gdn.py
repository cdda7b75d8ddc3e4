"""Balle et al. 2016 (GDN): eq. 5 and its simplified form, the closed-form Jacobian against autograd, the
fixed-point inverse inverts, the scale mixture's exact density, the measures, and bad input."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course.neurons.papers import gdn as G


def random_parameters(D: int, seed: int):
    """beta > 0, gamma >= 0, alpha >= 1 and alpha_ij eps_i < 1 (the module's constraint)."""
    g = torch.Generator().manual_seed(seed)
    beta = 0.2 + torch.rand(D, generator=g, dtype=torch.float64)
    gamma = torch.rand(D, D, generator=g, dtype=torch.float64)
    alpha = 1 + 2 * torch.rand(D, D, generator=g, dtype=torch.float64)
    epsilon = 0.9 * torch.rand(D, generator=g, dtype=torch.float64) / alpha.max(1).values + 0.01
    return beta, gamma, alpha, epsilon


def test_the_simplified_form_and_the_linear_limit():
    z = torch.randn(50, 3, dtype=torch.float64)
    beta, gamma = torch.rand(3, dtype=torch.float64) + 0.1, torch.rand(3, 3, dtype=torch.float64)
    two, half = torch.full((3, 3), 2.0, dtype=torch.float64), torch.full((3,), 0.5, dtype=torch.float64)
    torch.testing.assert_close(G.gdn(z, beta, gamma, two, half), z / (beta + z.pow(2) @ gamma.T).sqrt())
    torch.testing.assert_close(G.gdn(z, beta, torch.zeros(3, 3, dtype=torch.float64), two, half),
                               z / beta.sqrt())


@settings(max_examples=8, deadline=None)
@given(D=st.integers(1, 4), seed=st.integers(0, 999))
def test_the_jacobian_matches_autograd_and_the_inverse_inverts(D, seed):
    params = random_parameters(D, seed)
    z = torch.randn(6, D, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)) * 3
    jacobian = G.gdn_jacobian(z, *params)
    by_autograd = torch.stack([torch.autograd.functional.jacobian(lambda v: G.gdn(v[None], *params)[0], row)
                               for row in z])
    torch.testing.assert_close(jacobian, by_autograd)
    y = G.gdn(z, *params)
    torch.testing.assert_close(G.gdn_inverse(y, *params, iterations=2000, tol=1e-13), z, atol=1e-8, rtol=1e-8)


def test_the_trained_module_inverts_and_its_density_integrates_to_one():
    x = G.gaussian_scale_mixture(500, 0)
    model = G.fit_gdn(x, seed=0, steps=10)
    with torch.no_grad():
        xf = x[:200].float()
        torch.testing.assert_close(model.inverse(model(xf)), xf, atol=1e-4, rtol=1e-4)
        # q(x) on a fine grid sums to about 1 (a density, by the change of variables)
        u = torch.linspace(-12, 12, 121)
        grid = torch.stack(torch.meshgrid(u, u, indexing="ij"), -1).reshape(-1, 2)
        mass = model.log_density(grid).exp().sum() * (u[1] - u[0]) ** 2
    assert abs(mass.item() - 1) < 0.03


def test_the_mixture_density_is_exact_and_the_measures_read_what_they_should():
    A = G.mixture_shape(3)
    u = torch.linspace(-40, 40, 401, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(u, u, indexing="ij"), -1).reshape(-1, 2)
    assert abs(G.gsm_log_density(grid, A).exp().sum().item() * 0.2 ** 2 - 1) < 2e-3
    g = torch.Generator().manual_seed(0)
    gaussian = torch.randn(20000, 2, generator=g, dtype=torch.float64)
    assert abs(G.excess_kurtosis(gaussian)) < 0.15 and G.mutual_information(gaussian) < 0.02
    dependent = gaussian * torch.rand(20000, 1, generator=g, dtype=torch.float64).mul(4).exp()  # shared scale
    assert G.excess_kurtosis(dependent) > 2 and G.mutual_information(dependent) > 0.05
    covariance, whitening = G.linear_whitening(G.gaussian_scale_mixture(5000, 1))
    torch.testing.assert_close(whitening @ covariance @ whitening.T, torch.eye(2, dtype=torch.float64))


def test_bad_input_names_the_argument():
    z, ok = torch.zeros(4, 2), (torch.ones(2), torch.ones(2, 2), torch.full((2, 2), 2.0), torch.ones(2) / 2)
    with pytest.raises(ValueError, match="`beta` must be > 0"):
        G.gdn(z, torch.zeros(2), *ok[1:])
    with pytest.raises(ValueError, match="`gamma` must be >= 0"):
        G.gdn(z, ok[0], -torch.ones(2, 2), *ok[2:])
    with pytest.raises(ValueError, match="`alpha` must be >= 1"):
        G.gdn(z, *ok[:2], torch.full((2, 2), 0.5), ok[3])
    with pytest.raises(ValueError, match="`gamma` must have shape"):
        G.gdn(z, ok[0], torch.ones(3, 3), *ok[2:])
    with pytest.raises(ValueError, match="`y` must be finite"):
        G.gdn_inverse(torch.tensor([[math.inf, 0.0]]), *ok)
    with pytest.raises(RuntimeError, match="did not converge"):
        G.gdn_inverse(torch.full((1, 2), 0.7), *ok[:2], torch.full((2, 2), 4.0), ok[3], iterations=50)
