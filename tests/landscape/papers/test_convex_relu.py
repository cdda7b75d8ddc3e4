"""The convex program of two-layer ReLU networks: recovery, the ADMM solution, and its cones."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

from course.landscape.papers import convex_relu as cr
from course.train import one_thread


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 999), n=st.integers(2, 30))
def test_the_recovered_network_computes_the_convex_models_prediction_when_the_cones_hold(seed, n):
    g = torch.Generator().manual_seed(seed)
    X = torch.cat([torch.randn(n, 2, generator=g, dtype=torch.float64),
                   torch.ones(n, 1, dtype=torch.float64)], 1)
    gates = torch.randn(6, 3, generator=g, dtype=torch.float64)
    patterns = (X @ gates.T >= 0).T.to(X.dtype)  # [6, n]: v_i, w_i along the gates are feasible
    v = gates * torch.rand(6, 1, generator=g, dtype=torch.float64)
    w = gates * torch.rand(6, 1, generator=g, dtype=torch.float64)
    w[::2] = 0  # some groups empty
    assert cr.cone_violation(X, patterns, v, w) == 0
    U, alpha = cr.recover_network(v, w, tol=1e-12)
    torch.testing.assert_close(cr.relu_network(X, U, alpha), cr.convex_prediction(X, patterns, v, w))
    beta = 0.3
    assert float(cr.network_objective(X, torch.zeros(n, dtype=X.dtype), U, alpha, beta)) == pytest.approx(
        cr.convex_objective(X, torch.zeros(n, dtype=X.dtype), patterns, v, w, beta))


def test_admm_solution_is_feasible_sparse_and_matches_its_network():
    X, y = cr.regression_data(0, n=20)
    patterns = cr.sample_patterns(X, 200, seed=0)
    with one_thread():
        v, w = cr.admm(X, y, patterns, beta=0.1, steps=600)
    assert cr.cone_violation(X, patterns, v, w) < 1e-3
    U, alpha = cr.recover_network(v, w)
    assert 0 < len(alpha) < 2 * len(patterns)
    objective = cr.convex_objective(X, y, patterns, v, w, 0.1)
    assert float(cr.network_objective(X, y, U, alpha, 0.1)) == pytest.approx(objective, rel=1e-3)
    assert objective < 0.5 * float(y @ y)  # far below the empty network's 1/2 |y|^2


def test_group_soft_threshold_is_the_proximal_map_of_the_group_norm():
    q = torch.tensor([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]], dtype=torch.float64)
    out = cr.group_soft_threshold(q, 1.0)
    torch.testing.assert_close(out, torch.tensor([[2.4, 3.2], [0.0, 0.0], [0.0, 0.0]], dtype=torch.float64))


def test_patterns_are_distinct_and_bad_input_is_named():
    X, _ = cr.regression_data(1, n=15)
    patterns = cr.sample_patterns(X, 300, seed=1)
    assert len(torch.unique(patterns, dim=0)) == len(patterns) <= 2 * (15 + 1)
    with pytest.raises(ValueError, match="`beta` and `rho` must be > 0"):
        cr.admm(X, torch.zeros(15, dtype=X.dtype), patterns, beta=0.0)
    with pytest.raises(ValueError, match="`y` must be of shape"):
        cr.admm(X, torch.zeros(14, dtype=X.dtype), patterns)
