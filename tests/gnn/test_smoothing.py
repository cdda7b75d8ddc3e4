"""Oversmoothing: the Dirichlet energy (Cai and Wang 2020), its edge form, zeros, known values and bad
input; and the seeded GCN, SGC and GAT rounds whose energy it measures."""
import pytest
import torch
from hypothesis import given, settings

from course.gnn import Graph, add_self_loops, dirichlet_energy, gcn_norm, undirected
from course.gnn.datasets import csbm, karate_club
from course.gnn.smoothing import MODELS, energy_curves, propagate_states
from graph_strategies import graphs


def cycle(n: int) -> Graph:
    return Graph(undirected([(i, (i + 1) % n) for i in range(n)], n), n)


def edge_form(graph: Graph, x) -> float:
    """1/2 sum over the edges j -> i of the graph with self-loops of ||x_i/sqrt(d_i) - x_j/sqrt(d_j)||^2."""
    g = add_self_loops(graph)
    scaled = x.double() / g.in_degree().double().sqrt()[:, None]
    return 0.5 * float(((scaled[g.destination] - scaled[g.source]) ** 2).sum())


@settings(max_examples=30, deadline=None)
@given(graphs(max_nodes=10, max_edges=24))
def test_the_trace_is_the_sum_over_edges_on_undirected_graphs(directed):
    g = directed.with_(edge_index=torch.cat([directed.edge_index, directed.edge_index.flip(0)], 1))
    energy = dirichlet_energy(g, g.x)
    assert energy >= -1e-9
    assert energy == pytest.approx(edge_form(g, g.x), rel=1e-5, abs=1e-6)
    # the eigenvalues of the normalised Laplacian with self-loops lie in [0, 2)
    assert energy <= 2 * float((g.x.double() ** 2).sum()) + 1e-9


def test_a_constant_signal_on_a_regular_graph_has_no_energy_and_a_delta_has_the_known_one():
    for n in (5, 12):
        assert abs(dirichlet_energy(cycle(n), torch.ones(n, 3))) < 1e-6
        delta = torch.zeros(n, 1)
        delta[0] = 1
        # x^T L~ x = L~_00 = 1 - 1 / (d + 1) with d = 2 on a cycle
        assert dirichlet_energy(cycle(n), delta) == pytest.approx(2 / 3, rel=1e-6)


def test_the_component_propagation_keeps_has_no_energy_and_propagation_lowers_it():
    g = karate_club()
    kept = (g.in_degree().double() + 1).sqrt()[:, None]  # S's eigenvector of eigenvalue 1
    x = torch.randn(g.num_nodes, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert abs(dirichlet_energy(g, kept)) < 1e-6 * dirichlet_energy(g, x)
    s = gcn_norm(g)
    energies = [dirichlet_energy(g, x)]
    for _ in range(4):
        x = s(x, backend="reference")
        energies.append(dirichlet_energy(g, x))
    assert all(b < a for a, b in zip(energies, energies[1:]))  # the karate club is connected


def test_bad_input_is_refused_by_name():
    g = cycle(4)
    with pytest.raises(ValueError, match="`x` must have one row per node, N = 4"):
        dirichlet_energy(g, torch.zeros(3, 2))
    with pytest.raises(TypeError, match="`x` must be a floating-point tensor"):
        dirichlet_energy(g, torch.zeros(4, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="`x` must be a 2-D tensor"):
        dirichlet_energy(g, torch.zeros(4))
    with pytest.raises(ValueError, match="`x` must be finite everywhere"):
        dirichlet_energy(g, torch.full((4, 1), float("nan")))
    with pytest.raises(TypeError, match="`graph` must be a Graph"):
        dirichlet_energy(g.edge_index, torch.zeros(4, 1))


def sbm(homophily: float) -> Graph:
    return csbm(36, 2, homophily=homophily, degree=4.0, features=8, signal=1.0, seed=0)


def connected(graph: Graph) -> bool:
    a = graph.to_dense() > 0
    reach = (a | a.T | torch.eye(graph.num_nodes, dtype=torch.bool)).float()
    for _ in range(graph.num_nodes.bit_length()):  # paths of up to 2^k edges
        reach = ((reach @ reach) > 0).float()
    return bool(reach.bool().all())


@pytest.mark.parametrize("model", MODELS)
def test_a_shallow_model_is_the_start_of_the_deep_one(model):
    g = sbm(0.8)
    shallow, deep = propagate_states(g, model, 3), propagate_states(g, model, 8)
    for a, b in zip(shallow.states, deep.states):
        torch.testing.assert_close(a, b)
    assert len(deep.weights) == deep.depth == 8


def test_gcn_and_sgc_lose_energy_every_round_on_connected_graphs():
    checked = 0
    for homophily in (0.0, 0.3, 0.5, 0.8):
        g = sbm(homophily)
        if not connected(g):
            continue
        checked += 1
        curves = energy_curves(g, 8)
        assert all(c[0] == pytest.approx(1.0) for c in curves.values())
        for model in ("GCN", "SGC"):  # Cai and Wang's bounds: S shrinks it, Q and LeakyReLU do not raise it
            assert all(b < a for a, b in zip(curves[model], curves[model][1:])), (homophily, model)
        assert curves["SGC"][-1] < 0.05
    assert checked >= 3


def test_the_rounds_refuse_bad_arguments_by_name():
    g = sbm(0.8)
    with pytest.raises(ValueError, match="`model` must be one of"):
        propagate_states(g, "GIN", 2)
    with pytest.raises(TypeError, match="`graph` must be a Graph with node features"):
        propagate_states(g.with_(x=None), "GCN", 2)
    with pytest.raises(ValueError, match=r"propagate_states: `depth` must be an int in \[0, inf\]; got -1"):
        propagate_states(g, "GCN", -1)
