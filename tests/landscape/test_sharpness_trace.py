"""Power iteration from a given start, and the sharpness traced along a trajectory (warm-started)."""
import pytest
import torch

from course.landscape import curvature, models


def symmetric(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    values = torch.linspace(-1.0, 5.0, n, dtype=torch.float64)
    return q @ torch.diag(values) @ q.T, q[:, -1]


def test_power_iteration_finds_the_top_eigenpair_and_a_warm_start_needs_few_products():
    A, top = symmetric()
    start = torch.randn(12, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    value, v, cold = curvature.power_iteration(lambda u: A @ u, start, iterations=500, tol=1e-12)
    assert value == pytest.approx(5.0, rel=1e-8)
    assert abs(float(v @ top)) == pytest.approx(1.0, abs=1e-5)
    warm_value, _, warm = curvature.power_iteration(lambda u: A @ u, top, iterations=500, tol=1e-12)
    assert warm_value == pytest.approx(5.0, rel=1e-12) and warm == 2 < cold


def test_power_iteration_rejects_a_zero_start():
    with pytest.raises(ValueError, match="`start` must be a non-zero finite vector"):
        curvature.power_iteration(lambda u: u, torch.zeros(4))


def test_sharpness_trace_matches_the_dense_hessian_at_every_point():
    widths = (3, 6, 3)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(25, 3, generator=g, dtype=torch.float64)
    labels = torch.randint(3, (25,), generator=g)
    thetas = torch.stack([models.flatten(models.mlp(widths, seed=s)).double() for s in (0, 1)])
    trace = curvature.sharpness_trace(x, labels, thetas, widths, iterations=400, tol=1e-10)
    for theta, value in zip(thetas, trace):
        H = torch.autograd.functional.hessian(lambda t: models.mlp_loss(t, x, labels, widths), theta)
        eig = torch.linalg.eigvalsh(H)
        exact = float(eig[eig.abs().argmax()])  # power iteration's: the largest in magnitude
        assert float(value) == pytest.approx(exact, rel=1e-5)


def test_sharpness_trace_rejects_a_single_theta():
    widths = (3, 6, 3)
    theta = models.flatten(models.mlp(widths, seed=0))
    with pytest.raises(ValueError, match="`thetas` must be a 2-D tensor"):
        curvature.sharpness_trace(torch.randn(5, 3), torch.zeros(5, dtype=torch.long), theta, widths)
