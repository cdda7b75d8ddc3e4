"""Sparsity-constrained optimal transport: the projections, the conjugate, the dual and semi-dual
solvers, Sinkhorn, and the balanced routing read off the plan."""
import itertools
import time

import pytest
import torch

from course.moe import transport
from course.moe.papers import sparse_ot


def brute_force_sparse_projection(v, k):
    """The nearest point of {y in simplex, ||y||_0 <= k} by trying every support. v [m]"""
    best, best_dist = None, float("inf")
    for size in range(1, k + 1):
        for support in itertools.combinations(range(len(v)), size):
            y = torch.zeros_like(v)
            y[list(support)] = transport.simplex_projection(v[list(support)].unsqueeze(1))[:, 0]
            if (y - v).norm() < best_dist:
                best, best_dist = y, (y - v).norm()
    return best


@pytest.mark.parametrize("k", [1, 2, 3])
def test_sparse_simplex_projection_is_the_nearest_k_sparse_point(k):
    v = 2 * torch.randn(5, 7, generator=torch.Generator().manual_seed(k), dtype=torch.float64)
    y = transport.sparse_simplex_projection(v, k)
    assert torch.allclose(y.sum(0), torch.ones(7, dtype=torch.float64)) and (y >= 0).all()
    assert ((y > 0).sum(0) <= k).all()
    for j in range(7):
        assert torch.allclose(y[:, j], brute_force_sparse_projection(v[:, j], k), atol=1e-9)


def test_max_k_sparse_conjugate_matches_its_definition():
    gamma, k = 0.5, 2
    s = torch.randn(5, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    value, t = transport.max_k_sparse_conjugate(s, k, gamma)
    for j in range(6):  # max over supports S of size k of <s, t> - gamma/2 |t|^2, t >= 0 on S
        best = max((s[list(S), j].clamp(min=0) ** 2).sum().item() / (2 * gamma)
                   for S in itertools.combinations(range(5), k))
        assert value[j].item() == pytest.approx(best)
        assert (s[:, j] * t[:, j]).sum().item() - gamma / 2 * (t[:, j] ** 2).sum().item() == \
            pytest.approx(best)
    assert ((t > 0).sum(0) <= k).all()


def routing_problem(T=64, E=4, seed=0):
    scores = sparse_ot.imbalanced_router_logits(T, E, seed).softmax(1)
    a, b = transport.balanced_marginals(T, E, torch.float64)
    return -scores.t().double(), a, b


@pytest.mark.parametrize("T, k, gamma", [(256, 2, 0.05), (64, 3, 0.1), (64, 1, 0.5)])
def test_dual_plan_is_k_sparse_feasible_and_closes_the_gap(T, k, gamma):
    # problems whose dual optimum is a smooth point; at a kink (a tie in some column's top k) the
    # recovered plan can miss the marginals, and the nonconvex primal keeps a gap
    cost, a, b = routing_problem(T)
    dual = transport.sparsity_constrained_ot_dual(cost, a, b, k, gamma)
    semi = transport.sparsity_constrained_ot_semi_dual(cost, a, b, k, gamma)
    for sol in (dual, semi):
        plan = sol.plan
        assert ((plan > 0).sum(0) <= k).all() and (plan >= 0).all()
        assert torch.allclose(plan.sum(1), a, rtol=1e-4)
        assert torch.allclose(plan.sum(0), b, atol=1e-4)
        # a feasible plan whose primal value equals the dual value is optimal (weak duality)
        assert transport.primal_objective(plan, cost, gamma) == pytest.approx(sol.value, rel=1e-5)
    assert dual.value == pytest.approx(semi.value, rel=1e-5)
    assert torch.allclose(semi.plan.sum(0), b, rtol=0, atol=1e-12)  # exact for the semi-dual


def test_sinkhorn_meets_marginals_with_a_dense_plan():
    cost, a, b = routing_problem()
    plan = transport.sinkhorn(cost, a, b, epsilon=0.05)
    assert torch.allclose(plan.sum(1), a, rtol=1e-4) and torch.allclose(plan.sum(0), b, atol=1e-6)
    assert (plan > 0).all()


def test_sparse_ot_route_for_the_widget():
    scores = torch.rand(256, 4, generator=torch.Generator().manual_seed(0))
    transport.sparse_ot_route(scores, 2)  # the first call pays torch.optim's lazy imports
    start = time.perf_counter()
    expert_index, gates, potentials = transport.sparse_ot_route(scores, 2)
    assert time.perf_counter() - start < 0.5
    assert expert_index.shape == gates.shape == (256, 2)
    assert torch.allclose(gates.sum(1), torch.ones(256)) and (gates >= 0).all()
    load = torch.zeros(4).index_add_(0, expert_index.flatten(), gates.flatten())
    assert torch.allclose(load, torch.full((4,), 64.0), rtol=1e-3)  # balanced
    # the potentials route without solving again: a token's first expert is the top of score + alpha
    assert potentials.shape == (4,)
    first = (scores + potentials).argmax(1)
    assert (first == expert_index[:, 0]).float().mean() > 0.97


def test_sparse_ot_bad_arguments():
    cost, a, b = routing_problem(T=8)
    with pytest.raises(ValueError, match="`k`"):
        transport.sparsity_constrained_ot_semi_dual(cost, a, b, 5)
    with pytest.raises(ValueError, match="equal sums"):
        transport.sparsity_constrained_ot_dual(cost, a, 2 * b, 2)
    with pytest.raises(ValueError, match="gamma"):
        transport.sparsity_constrained_ot_semi_dual(cost, a, b, 2, gamma=0.0)
    with pytest.raises(ValueError, match="shapes"):
        transport.sinkhorn(cost, a[:3], b)
