"""Hessian-vector products, and the top eigenvalue by power iteration and Lanczos."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

from course.landscape import curvature, models


def problem(widths=(3, 8, 3), n=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    theta = models.flatten(models.mlp(widths, seed=seed)).double()
    x = torch.randn(n, widths[0], generator=g, dtype=torch.float64)
    return x, torch.randint(widths[-1], (n,), generator=g), theta


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 100))
def test_the_hessian_vector_product_is_symmetric(seed):
    widths = (3, 8, 3)
    x, labels, theta = problem(widths, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    u, v = (torch.randn(theta.shape, generator=g, dtype=torch.float64) for _ in range(2))
    uHv = u @ curvature.hvp(x, labels, theta, v, widths)
    vHu = v @ curvature.hvp(x, labels, theta, u, widths)
    assert float(uHv) == pytest.approx(float(vHu), rel=1e-9, abs=1e-12)


def test_power_iteration_and_lanczos_find_the_largest_eigenvalue_of_the_full_hessian():
    widths = (3, 8, 3)
    x, labels, theta = problem(widths)
    H = torch.autograd.functional.hessian(lambda t: models.mlp_loss(t, x, labels, widths), theta)
    exact = float(torch.linalg.eigvalsh(H)[-1])
    operator = curvature.hessian_operator(x, labels, theta, widths)
    value, products = curvature.top_eigenvalue(operator, theta.numel(), iterations=300, tol=1e-9,
                                               dtype=torch.float64)
    assert value == pytest.approx(exact, rel=1e-5)
    ritz = curvature.lanczos(operator, theta.numel(), steps=30, dtype=torch.float64)
    assert float(ritz[-1]) == pytest.approx(exact, rel=1e-8)
    assert products > 30  # Lanczos needs fewer products for more digits


def test_bad_input_names_the_argument():
    widths = (3, 8, 3)
    x, labels, theta = problem(widths)
    with pytest.raises(ValueError, match="`v` must be of shape"):
        curvature.hvp(x, labels, theta, theta[:-1], widths)
    with pytest.raises(ValueError, match="`size` must be an int"):
        curvature.top_eigenvalue(lambda v: v, 0)
