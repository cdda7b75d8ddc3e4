"""Contracting modules, skew-symmetric coupling, and the assembly's measure and step Jacobian."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

from course.ssm.papers import rnns_of_rnns as rr


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 999), M=st.integers(2, 3), n=st.integers(1, 5))
def test_skew_coupling_is_antisymmetric_with_empty_diagonal_blocks(seed, M, n):
    g = torch.Generator().manual_seed(seed)
    L = rr.skew_coupling(torch.randn(M, M, n, n, generator=g))
    torch.testing.assert_close(L, -L.T)
    for i in range(M):
        assert not L[i * n:(i + 1) * n, i * n:(i + 1) * n].any()
    V = 5 * torch.randn(M, n, n, generator=g)
    assert float(torch.linalg.matrix_norm(rr.spectral_normed(V), ord=2).max()) <= rr.NORM + 1e-5


@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 999))
def test_the_stable_assembly_contracts_and_its_jacobians_are_right(seed):
    torch.manual_seed(seed)
    model = rr.Assembly(3, 4, stable=True, modules=2, units=4)
    with torch.no_grad():
        model.B.mul_(10)  # strong feedback: the guarantee does not depend on its size
    x = 3 * torch.randn(5, 8)
    with torch.no_grad():
        J = model.jacobian(x)
        step = model.step_jacobian(x)
    assert float(rr.contraction_measure(J).max()) <= -1 + rr.NORM + 1e-5
    u = torch.randn(5, 3)
    for i in range(2):
        auto = torch.autograd.functional.jacobian(lambda xi: model.velocity(xi[None], u[i:i + 1])[0], x[i])
        torch.testing.assert_close(J[i], auto.detach(), atol=1e-5, rtol=1e-5)
    assert float(torch.linalg.matrix_norm(step, ord=2).max()) <= 1 - rr.DT * (1 - rr.NORM) + 1e-5
    with torch.no_grad():
        gap = rr.trajectory_gap(model, torch.randn(5, 20, 3), seed)
    assert float(gap[-1]) <= float(gap[0]) * (1 - rr.DT * (1 - rr.NORM)) ** 19 * (1 + 1e-4)


def test_run_is_one_step_at_a_time_and_bad_input_raises():
    torch.manual_seed(0)
    model = rr.Assembly(2, 4, stable=False, modules=2, units=3)
    u = torch.randn(4, 6, 2)
    with torch.no_grad():
        whole = model.run(u)
        half = model.run(u[:, 3:], whole[:, 2])
    torch.testing.assert_close(half, whole[:, 3:])
    with pytest.raises(ValueError, match="`u`"):
        model.run(u[0])
    with pytest.raises(ValueError, match="`J`"):
        rr.contraction_measure(torch.randn(3, 4))
