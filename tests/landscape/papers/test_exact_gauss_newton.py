"""EGN's step: the b x b Duncan-Guttman solve against the P x P one, the Jacobian, and a short run."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

from course.landscape import models
from course.landscape.papers import exact_gauss_newton as egn


@settings(max_examples=20, deadline=None)
@given(b=st.integers(1, 12), P=st.integers(1, 40), damping=st.floats(1e-3, 10.0), seed=st.integers(0, 99))
def test_the_woodbury_step_equals_the_direct_solve_in_float64(b, P, damping, seed):
    g = torch.Generator().manual_seed(seed)
    J = torch.randn(b, P, generator=g, dtype=torch.float64)
    r = torch.randn(b, generator=g, dtype=torch.float64)
    torch.testing.assert_close(egn.egn_direction(J, r, damping), egn.direct_direction(J, r, damping),
                               rtol=1e-9, atol=1e-11)


def test_the_batch_jacobian_has_one_row_per_example_and_matches_autograd():
    widths = (1, 5, 1)
    theta = models.flatten(models.mlp(widths, seed=0)).double()
    x = torch.randn(4, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    J = egn.batch_jacobian(theta, x, widths)
    assert J.shape == (4, theta.numel())
    for i in range(4):
        t = theta.clone().requires_grad_(True)
        (row,) = torch.autograd.grad(egn.regression_output(t, x[i:i + 1], widths)[0], t)
        torch.testing.assert_close(J[i], row)


def test_with_little_damping_the_step_fits_the_linearised_model_to_the_batch():
    g = torch.Generator().manual_seed(0)
    J = torch.randn(8, 49, generator=g, dtype=torch.float64)  # P > b: J J^T is invertible
    r = torch.randn(8, generator=g, dtype=torch.float64)
    d = egn.egn_direction(J, r, 1e-9)
    torch.testing.assert_close(J @ d, -r, rtol=0, atol=1e-6)  # r + J d = 0: the batch interpolated
    assert (J @ egn.egn_direction(J, r, 10.0) + r).norm() > 0.1 * r.norm()  # damping holds it back


def test_bad_input_is_named():
    J, r = torch.randn(3, 5), torch.randn(4)
    with pytest.raises(ValueError, match="`r` must be of shape"):
        egn.egn_direction(J, r, 0.1)
    with pytest.raises(ValueError, match="`damping`"):
        egn.direct_direction(J, torch.randn(3), 0.0)
