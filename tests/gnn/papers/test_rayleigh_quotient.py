"""Dong et al. 2024 (RQGNN): the Rayleigh quotient, the Chebyshev basis, the anomalous graphs, the AUC."""
import pytest
import torch

from course.gnn.graph import Graph, batch, undirected
from course.gnn.papers import rayleigh_quotient as rq


def dense_laplacian(graph):
    """L = I - D^-1/2 A D^-1/2, dense, float64."""
    a = graph.to_dense().double()
    d = a.sum(1)
    inv = torch.where(d > 0, d.clamp(min=1).rsqrt(), torch.zeros(()))
    return torch.eye(graph.num_nodes, dtype=torch.float64) - inv[:, None] * a * inv[None, :]


def small_batch():
    path = Graph(undirected([(0, 1), (1, 2), (2, 3)], 4), 4, x=torch.randn(4, 3))
    triangle = Graph(undirected([(0, 1), (1, 2), (0, 2)], 3), 3, x=torch.randn(3, 3))
    return batch([path, triangle]), [path, triangle]


def test_rayleigh_quotient_is_xLx_over_xx_per_graph_and_channel_and_lies_in_0_2():
    torch.manual_seed(0)
    graph, parts = small_batch()
    got = rq.rayleigh_quotient(graph, graph.x)
    assert got.shape == (2, 3)
    for g, part in enumerate(parts):
        x, lap = part.x.double(), dense_laplacian(part)
        expected = (x * (lap @ x)).sum(0) / (x * x).sum(0)
        torch.testing.assert_close(got[g].double(), expected, atol=1e-5, rtol=1e-5)
    assert (got >= -1e-6).all() and (got <= 2 + 1e-6).all()
    torch.testing.assert_close(rq.rayleigh_quotient(graph, 5 * graph.x), got)  # scale-free


def test_the_smoothest_signal_d_to_the_half_has_quotient_zero_and_zero_channels_give_zero():
    graph, _ = small_batch()
    smooth = graph.in_degree().float().sqrt()[:, None]  # D^1/2 1, the eigenvector of eigenvalue 0
    x = torch.cat([smooth, torch.zeros(graph.num_nodes, 1)], 1)
    torch.testing.assert_close(rq.rayleigh_quotient(graph, x), torch.zeros(2, 2), atol=1e-6, rtol=0)


def test_chebyshev_basis_is_t_k_of_the_shifted_laplacian():
    torch.manual_seed(1)
    graph, _ = small_batch()
    lam, u = torch.linalg.eigh(dense_laplacian(graph))
    x = torch.randn(graph.num_nodes, 2)
    basis = rq.chebyshev_basis(rq.normalized_adjacency(graph), x, 4)
    assert basis.shape == (5, graph.num_nodes, 2)
    theta = torch.arccos((lam - 1).clamp(-1, 1))
    for k in range(5):  # T_k(cos t) = cos(k t) on the spectrum of L~ = L - I
        expected = u @ torch.diag(torch.cos(k * theta)) @ u.T @ x.double()
        torch.testing.assert_close(basis[k].double(), expected, atol=1e-5, rtol=1e-5)


def test_anomaly_graphs_are_balanced_unit_rms_and_anomalies_are_rougher():
    graphs = rq.anomaly_graphs(40, seed=3)
    assert graphs.num_graphs == 40 and graphs.y.sum() == 20
    ptr = rq.node_offsets(graphs)
    rms = rq.segment_mean(graphs.x ** 2, ptr).sqrt()
    torch.testing.assert_close(rms, torch.ones_like(rms))
    quotient = rq.rayleigh_quotient(graphs, graphs.x).mean(1)
    assert quotient[graphs.y == 1].mean() > quotient[graphs.y == 0].mean()


def test_rewire_keeps_the_count_and_makes_no_self_pairs():
    pairs = torch.tensor([[0, 1], [1, 2], [2, 3], [3, 4]])
    moved = rq.rewire(pairs, 5, 1.0, torch.Generator().manual_seed(0))
    assert moved.shape == pairs.shape and (moved[:, 0] != moved[:, 1]).all()
    assert torch.equal(rq.rewire(pairs, 5, 0.0, torch.Generator().manual_seed(0)), pairs)


def test_auc_counts_ordered_pairs_with_ties_as_halves():
    labels = torch.tensor([0, 0, 1, 1])
    assert rq.auc(torch.tensor([0.1, 0.2, 0.3, 0.4]), labels) == 1.0
    assert rq.auc(torch.tensor([0.4, 0.3, 0.2, 0.1]), labels) == 0.0
    assert rq.auc(torch.ones(4), labels) == 0.5
    assert rq.auc(torch.tensor([0.1, 0.3, 0.2, 0.4]), labels) == 0.75


@pytest.mark.parametrize("use_rq", [True, False])
def test_a_batched_graph_is_classified_as_it_is_alone(use_rq):
    graphs = rq.anomaly_graphs(4, seed=0)
    torch.manual_seed(0)
    model = rq.GraphClassifier(graphs.x.shape[1], use_rq)
    together = model(graphs)
    ptr = rq.node_offsets(graphs)
    for g in range(4):
        nodes = torch.arange(int(ptr[g]), int(ptr[g + 1]))
        keep = (graphs.node_graph[graphs.source] == g)
        alone = Graph(graphs.edge_index[:, keep] - int(ptr[g]), len(nodes), x=graphs.x[nodes])
        torch.testing.assert_close(model(alone)[0], together[g], atol=1e-5, rtol=1e-5)


def test_bad_input_is_refused_with_the_argument_named():
    graph, _ = small_batch()
    with pytest.raises(ValueError, match="`x`"):
        rq.rayleigh_quotient(graph, torch.randn(3, 2))
    with pytest.raises(TypeError, match="`x`"):
        rq.rayleigh_quotient(graph, torch.ones(graph.num_nodes, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="`order`"):
        rq.chebyshev_basis(rq.normalized_adjacency(graph), graph.x, -1)
    with pytest.raises(ValueError, match="`rewired`"):
        rq.anomaly_graphs(4, rewired=1.5)
    with pytest.raises(ValueError, match="both classes"):
        rq.auc(torch.rand(3), torch.zeros(3, dtype=torch.long))
