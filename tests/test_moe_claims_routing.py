"""Routing papers of the MoE family at toy scale: the claims hold, and the pieces behind them work.

CMoE (carving), sparsity-constrained OT, task-level / conditional routing, KAMoE. Each claim runs
once per session (module fixtures); the unit tests check the math on small inputs.
"""
import itertools
import time

import pytest
import torch

from course import claims
from course.moe import cmoe, kamoe, sparse_ot, task_routing, task_routing_claims


@pytest.fixture(scope="module", autouse=True)
def tiny_tensors_on_one_thread():
    """The unit tests' tensors are tiny too: a second intra-op thread would only wait."""
    with claims.one_thread():
        yield


# ----------------------------------------------------------------------------------------- CMoE

@pytest.fixture(scope="module")
def cmoe_result():
    return cmoe.cmoe_claim()


def test_cmoe_claim_holds(cmoe_result):
    m = cmoe_result.measured
    assert cmoe_result.holds, cmoe_result
    assert m["dense_accuracy"] >= 0.93
    assert m["cmoe_k3"] >= 0.8 * m["dense_accuracy"]  # 50% of the neurons active
    assert m["cmoe_k1"] - m["random_k1"] >= 0.1 and m["cmoe_k3"] - m["random_k3"] >= 0.05
    assert m["active_k1"] == 0.25 and m["active_k7"] == 1.0
    assert m["cmoe_k7"] == pytest.approx(m["dense_accuracy"])  # every expert active: dense
    assert cmoe_result.seconds < 20


@pytest.mark.parametrize("seed", range(4))
def test_linear_assignment_is_optimal(seed):
    cost = torch.rand(6, 6, generator=torch.Generator().manual_seed(seed))
    col = cmoe.linear_assignment(cost.numpy())
    assert sorted(col.tolist()) == list(range(6))
    best = min(sum(cost[i, p[i]].item() for i in range(6))
               for p in itertools.permutations(range(6)))
    assert cost[torch.arange(6), col].sum().item() == pytest.approx(best, abs=1e-6)


def small_dense_model(hidden=32, seed=0):
    x, label = cmoe.sphere_blob_classification(256, blobs=16, classes=4, seed=seed)
    return cmoe.train_dense_mlp(x, label, hidden=hidden, steps=30, seed=seed), x


def test_carving_partitions_neurons_and_recovers_dense():
    ffn, x = small_dense_model()
    h = cmoe.hidden_activations(ffn, x)
    markers = cmoe.activation_markers(h, 4)
    assert torch.equal(markers.sum(1), torch.full((len(x),), 4.0))
    for carving in (cmoe.carve_experts(markers, 8, 2), cmoe.random_carving(markers, 8, 2)):
        assert carving.shared.shape == (8,) and carving.routed.shape == (6, 4)
        every = torch.cat([carving.shared, carving.routed.flatten()])
        assert torch.equal(every.sort().values, torch.arange(32))  # each neuron exactly once
        for group, rep in zip(carving.routed, carving.representative):
            assert rep in group
        dense = cmoe.dense_forward(ffn, x)
        assert torch.allclose(cmoe.carved_forward(ffn, carving, x, 6), dense, atol=1e-5)
        assert not torch.allclose(cmoe.carved_forward(ffn, carving, x, 1), dense, atol=1e-3)
    carving = cmoe.carve_experts(markers, 8, 2)
    rates = markers.mean(0)
    assert rates[carving.shared].min() >= rates[carving.routed.flatten()].max()


def test_balanced_clusters_have_equal_sizes():
    points = torch.rand(12, 5, generator=torch.Generator().manual_seed(0))
    cluster = cmoe.balanced_clusters(points, points[:3], 4)
    assert torch.equal(torch.bincount(cluster, minlength=3), torch.tensor([4, 4, 4]))


def test_cmoe_bad_arguments():
    markers = torch.zeros(10, 30)
    with pytest.raises(ValueError, match="num_experts"):
        cmoe.carve_experts(markers, 8, 1)
    with pytest.raises(ValueError, match="num_shared"):
        cmoe.carve_experts(markers, 6, 6)
    with pytest.raises(ValueError, match="k_act"):
        cmoe.activation_markers(torch.rand(4, 8), 9)


# ------------------------------------------------------------------------- sparse OT routing

@pytest.fixture(scope="module")
def sparse_ot_result():
    return sparse_ot.sparse_ot_claim()


def test_sparse_ot_claim_holds(sparse_ot_result):
    m = sparse_ot_result.measured
    assert sparse_ot_result.holds, sparse_ot_result
    assert m["sparse_ot_dropped_tokens"] == 0 and m["sparse_ot_max_experts_per_token"] <= 2
    assert m["sparse_ot_max_mass_over_share"] <= 1.01 and m["sparse_ot_max_load_over_capacity"] <= 1
    assert m["top_k_dropped_tokens"] >= 0.1 and m["top_k_max_load_over_capacity"] <= 1
    assert m["sinkhorn_experts_per_token"] == 4 and m["sinkhorn_max_load_over_capacity"] == 2
    assert m["sinkhorn_max_mass_over_share"] <= 1.01


def brute_force_sparse_projection(v, k):
    """The nearest point of {y in simplex, ||y||_0 <= k} by trying every support. v [m]"""
    best, best_dist = None, float("inf")
    for size in range(1, k + 1):
        for support in itertools.combinations(range(len(v)), size):
            y = torch.zeros_like(v)
            y[list(support)] = sparse_ot.simplex_projection(v[list(support)].unsqueeze(1))[:, 0]
            if (y - v).norm() < best_dist:
                best, best_dist = y, (y - v).norm()
    return best


@pytest.mark.parametrize("k", [1, 2, 3])
def test_sparse_simplex_projection_is_the_nearest_k_sparse_point(k):
    v = 2 * torch.randn(5, 7, generator=torch.Generator().manual_seed(k), dtype=torch.float64)
    y = sparse_ot.sparse_simplex_projection(v, k)
    assert torch.allclose(y.sum(0), torch.ones(7, dtype=torch.float64)) and (y >= 0).all()
    assert ((y > 0).sum(0) <= k).all()
    for j in range(7):
        assert torch.allclose(y[:, j], brute_force_sparse_projection(v[:, j], k), atol=1e-9)


def test_max_k_sparse_conjugate_matches_its_definition():
    gamma, k = 0.5, 2
    s = torch.randn(5, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    value, t = sparse_ot.max_k_sparse_conjugate(s, k, gamma)
    for j in range(6):  # max over supports S of size k of <s, t> - gamma/2 |t|^2, t >= 0 on S
        best = max((s[list(S), j].clamp(min=0) ** 2).sum().item() / (2 * gamma)
                   for S in itertools.combinations(range(5), k))
        assert value[j].item() == pytest.approx(best)
        assert (s[:, j] * t[:, j]).sum().item() - gamma / 2 * (t[:, j] ** 2).sum().item() == \
            pytest.approx(best)
    assert ((t > 0).sum(0) <= k).all()


def routing_problem(T=64, E=4, seed=0):
    scores = sparse_ot.imbalanced_router_logits(T, E, seed).softmax(1)
    a, b = sparse_ot.balanced_marginals(T, E, torch.float64)
    return -scores.t().double(), a, b


@pytest.mark.parametrize("T, k, gamma", [(256, 2, 0.05), (64, 3, 0.1), (64, 1, 0.5)])
def test_dual_plan_is_k_sparse_feasible_and_closes_the_gap(T, k, gamma):
    # problems whose dual optimum is a smooth point; at a kink (a tie in some column's top k) the
    # recovered plan can miss the marginals, and the nonconvex primal keeps a gap
    cost, a, b = routing_problem(T)
    dual = sparse_ot.sparsity_constrained_ot_dual(cost, a, b, k, gamma)
    semi = sparse_ot.sparsity_constrained_ot_semi_dual(cost, a, b, k, gamma)
    for sol in (dual, semi):
        plan = sol.plan
        assert ((plan > 0).sum(0) <= k).all() and (plan >= 0).all()
        assert torch.allclose(plan.sum(1), a, rtol=1e-4)
        assert torch.allclose(plan.sum(0), b, atol=1e-4)
        # a feasible plan whose primal value equals the dual value is optimal (weak duality)
        assert sparse_ot.primal_objective(plan, cost, gamma) == pytest.approx(sol.value, rel=1e-5)
    assert dual.value == pytest.approx(semi.value, rel=1e-5)
    assert torch.allclose(semi.plan.sum(0), b, rtol=0, atol=1e-12)  # exact for the semi-dual


def test_sinkhorn_meets_marginals_with_a_dense_plan():
    cost, a, b = routing_problem()
    plan = sparse_ot.sinkhorn(cost, a, b, epsilon=0.05)
    assert torch.allclose(plan.sum(1), a, rtol=1e-4) and torch.allclose(plan.sum(0), b, atol=1e-6)
    assert (plan > 0).all()


def test_sparse_ot_route_for_the_widget():
    scores = torch.rand(256, 4, generator=torch.Generator().manual_seed(0))
    sparse_ot.sparse_ot_route(scores, 2)  # the first call pays torch.optim's lazy imports
    start = time.perf_counter()
    expert_index, gates = sparse_ot.sparse_ot_route(scores, 2)
    assert time.perf_counter() - start < 0.5
    assert expert_index.shape == gates.shape == (256, 2)
    assert torch.allclose(gates.sum(1), torch.ones(256)) and (gates >= 0).all()
    load = torch.zeros(4).index_add_(0, expert_index.flatten(), gates.flatten())
    assert torch.allclose(load, torch.full((4,), 64.0), rtol=1e-3)  # balanced


def test_sparse_ot_bad_arguments():
    cost, a, b = routing_problem(T=8)
    with pytest.raises(ValueError, match="`k`"):
        sparse_ot.sparsity_constrained_ot_semi_dual(cost, a, b, 5)
    with pytest.raises(ValueError, match="equal sums"):
        sparse_ot.sparsity_constrained_ot_dual(cost, a, 2 * b, 2)
    with pytest.raises(ValueError, match="gamma"):
        sparse_ot.sparsity_constrained_ot_semi_dual(cost, a, b, 2, gamma=0.0)
    with pytest.raises(ValueError, match="shapes"):
        sparse_ot.sinkhorn(cost, a[:3], b)


# ------------------------------------------------------------ task-level and conditional routing

@pytest.fixture(scope="module")
def task_claims():
    return {name: fn() for name, fn in (("task_level", task_routing_claims.task_level_moe_claim),
                                        ("conditional", task_routing_claims.conditional_moe_claim),
                                        ("task_aware", task_routing_claims.task_aware_gating_claim))}


def test_task_level_claim_holds(task_claims):
    claim = task_claims["task_level"]
    m = claim.measured
    assert claim.holds, claim
    assert m["task_sub_experts"] == 1 and m["task_sub_fraction"] <= 0.3
    assert m["task_sub_error"] == pytest.approx(m["task_sub_full_error"], rel=1e-4)
    assert m["token_used_experts"] >= 3 and m["token_used_fraction"] >= 0.75
    assert m["token_top1_error"] >= 2 * m["token_top1_full_error"]


def test_conditional_routing_claim_holds(task_claims):
    claim = task_claims["conditional"]
    m = claim.measured
    assert claim.holds, claim
    assert m["task_over_dense"] <= 0.6 and m["attribute_over_dense"] < 0.95


def test_task_aware_gating_claim_holds(task_claims):
    claim = task_claims["task_aware"]
    m = claim.measured
    assert claim.holds, claim
    assert m["dense_growth"] >= 1.2 and m["moe_growth"] <= 1.1
    assert m["moe_after"] <= 0.5 * m["dense_after"]
    assert m["moe_experts_before"] == m["moe_experts_after"] == 3  # each old task keeps an expert


def test_task_subnetwork_gives_the_full_models_outputs(task_claims):
    model = task_routing_claims.trained_model("task", 4)
    train, test = task_routing.multitask_data(512), task_routing_claims.held_out()
    x, key = task_routing.expert_inputs(test), task_routing.routing_key(test, "task")
    with torch.no_grad():
        full, _, _ = model(x, key)
    for task in range(4):
        used = task_routing_claims.experts_used(model, train, "task", task)
        assert len(used) == 1  # task routing: one expert per task
        sub = task_routing_claims.extract_subnetwork(model, used)
        mine = test.task == task
        assert torch.allclose(task_routing_claims.subnetwork_forward(sub, x[mine], key[mine]), full[mine],
                              atol=1e-6)
        assert sub.num_params() < 0.3 * task_routing_claims.num_params(model)


def test_token_routed_model_needs_every_expert(task_claims):
    model = task_routing_claims.trained_model("token", 4)
    test = task_routing_claims.held_out()
    x, key = task_routing.expert_inputs(test), task_routing.routing_key(test, "token")
    sub = task_routing_claims.extract_subnetwork(model, torch.arange(4))
    with torch.no_grad():
        assert torch.allclose(task_routing_claims.subnetwork_forward(sub, x, key), model(x, key)[0],
                              atol=1e-6)


def test_dense_model_is_one_expert_and_data_is_stable_under_added_tasks():
    three, four = task_routing.multitask_data(16, 3), task_routing.multitask_data(16, 4)
    assert torch.equal(four.x[:48], three.x) and torch.equal(four.y[:48], three.y)
    x, key = task_routing.expert_inputs(four), task_routing.routing_key(four, "task")
    model = task_routing.ConditionalMoE(x.shape[1], key.shape[1], 8, 1)
    _, expert_index, probs = model(x, key)
    assert (expert_index == 0).all() and torch.equal(probs, torch.ones(64, 1))


def test_task_routing_bad_arguments():
    data = task_routing.multitask_data(4)
    with pytest.raises(ValueError, match="key"):
        task_routing.routing_key(data, "sentence")
    with pytest.raises(ValueError, match="amplitudes"):
        task_routing.multitask_data(4, 4, amplitudes=(1.0, 2.0))
    with pytest.raises(ValueError, match="task ids"):
        task_routing.expert_inputs(task_routing.multitask_data(2, 9))


# ------------------------------------------------------------------------------------ KAMoE

@pytest.fixture(scope="module")
def kamoe_result():
    return kamoe.kamoe_claim()


def test_kamoe_claim_holds(kamoe_result):
    m = kamoe_result.measured
    assert kamoe_result.holds, kamoe_result
    assert m["grkan_over_linear"] <= 0.9
    assert m["noise_floor_mse"] < m["grkan_mse"] < m["linear_mse"]
    assert 0.2 < m["turbulent_fraction"] < 0.6


def test_closed_form_cubic_b_splines_equal_cox_de_boor():
    layer = kamoe.KANLayer(3, 2, grid_size=5)
    x = torch.linspace(-2.99, 2.99, 97)
    general = kamoe.b_spline_basis(x, layer.grid, 3)
    assert torch.allclose(kamoe.cubic_b_spline_basis(x, layer.grid), general, atol=1e-6)
    assert torch.allclose(general.sum(-1), torch.ones(97), atol=1e-6)  # partition of unity


def test_gates_are_distributions_over_experts():
    x = torch.randn(10, 6)
    for gate in (kamoe.GRKANGate(6, 4), kamoe.GRKANGate(6, 4, kan=False), kamoe.LinearGate(6, 4)):
        g = gate(x)
        assert g.shape == (10, 4) and torch.allclose(g.sum(1), torch.ones(10)) and (g > 0).all()


def test_regime_switching_series_follows_its_rule():
    x, regime, noise = kamoe.regime_switching_series(length=400)
    X, y = kamoe.lagged_windows(x, 6)
    assert X.shape == (394, 6) and torch.equal(X[1], x[1:7]) and y[0] == x[6]
    assert set(regime.tolist()) == {0, 1} and 0 < noise < 1
