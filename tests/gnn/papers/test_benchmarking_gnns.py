"""Dwivedi et al. 2023 (Benchmarking GNNs): the budget harness, GIN, LapPE and the PATTERN-like graphs."""
import pytest
import torch
from torch import nn

from course.gnn.graph import Graph, undirected
from course.gnn.papers import benchmarking_gnns as bench
from course.metrics import parameter_count


@pytest.mark.parametrize("kind", bench.MODELS)
@pytest.mark.parametrize("budget", [1000, 3000])
def test_the_budget_harness_lands_within_3_percent(kind, budget):
    for in_features in (3, 7):  # without and with the positional encoding
        count = parameter_count(bench.budget_model(kind, in_features, budget))
        assert abs(count - budget) <= 0.03 * budget, (kind, in_features, count)


def test_width_for_budget_is_the_closest_width_and_leaves_the_rng_alone():
    build = lambda w: nn.Linear(w, w)  # w^2 + w parameters
    state = torch.random.get_rng_state()
    for budget in (1, 50, 111, 1000, 70000):
        best = bench.width_for_budget(build, budget, range(1, 200))
        assert best == min(range(1, 200), key=lambda w: (abs(w * w + w - budget), w))
    assert torch.equal(torch.random.get_rng_state(), state)


def test_pattern_graphs_are_simple_undirected_with_one_pattern_per_graph():
    graphs = bench.pattern_graphs(3, seed=1)
    n = bench.COMMUNITIES * bench.COMMUNITY_SIZE + bench.PATTERN_SIZE
    assert graphs.num_nodes == 3 * n and graphs.y.sum() == 3 * bench.PATTERN_SIZE
    assert not graphs.self_loops().any() and not graphs.duplicate_edges().any()
    a = graphs.to_dense()
    assert torch.equal(a, a.T) and (graphs.x.sum(1) == 1).all()


def test_laplacian_pe_are_nontrivial_orthonormal_eigenvectors_of_each_graph():
    graphs = bench.pattern_graphs(2, seed=0)
    pe = bench.laplacian_pe(graphs, 3)
    n = graphs.num_nodes // 2
    for g in range(2):
        nodes = torch.arange(g * n, (g + 1) * n)
        a = graphs.to_dense()[nodes][:, nodes].double()
        d = torch.where(a.sum(1) > 0, a.sum(1).clamp(min=1).rsqrt(), torch.zeros(()))  # isolated: 0
        lap = torch.eye(n, dtype=torch.float64) - d[:, None] * a * d[None, :]
        v = pe[nodes].double()
        torch.testing.assert_close(v.T @ v, torch.eye(3, dtype=torch.float64), atol=1e-5, rtol=0)
        lam = (v * (lap @ v)).sum(0)
        torch.testing.assert_close(lap @ v, v * lam, atol=1e-5, rtol=0)  # eigenvectors
        assert (lam > 1e-6).all()  # non-trivial
        trivial = a.sum(1).sqrt()  # D^1/2 1
        torch.testing.assert_close(v.T @ trivial, torch.zeros(3, dtype=torch.float64), atol=1e-5, rtol=0)


def test_sign_flips_flip_whole_eigenvectors_of_a_graph():
    graphs = bench.pattern_graphs(4, seed=0)
    pe = bench.laplacian_pe(graphs, 2)
    flipped = bench.random_sign_flips(pe, graphs, torch.Generator().manual_seed(0))
    ratio = flipped / pe
    for g in range(4):
        r = ratio[graphs.node_graph == g]
        assert ((r == 1) | (r == -1)).all() and (r == r[0]).all()


def test_gin_is_mlp_of_one_plus_eps_self_plus_neighbour_sum():
    graph = Graph(undirected([(0, 1), (1, 2), (2, 3), (3, 0), (0, 2)], 4), 4)
    torch.manual_seed(0)
    conv = bench.GINConv(3, 5)
    with torch.no_grad():
        conv.eps.fill_(0.3)
    x = torch.randn(4, 3)
    torch.testing.assert_close(conv(graph, x), conv.mlp(1.3 * x + graph.to_dense() @ x))


@pytest.mark.parametrize("kind", bench.MODELS)
def test_models_classify_every_node_and_batch_graphs_independently(kind):
    graphs = bench.pattern_graphs(2, seed=2)
    torch.manual_seed(0)
    model = bench.NodeClassifier(kind, bench.VOCABULARY, 8)
    out = model(graphs, graphs.x)
    n = graphs.num_nodes // 2
    first = bench.pattern_graphs(1, seed=2)  # the same first graph, alone
    assert out.shape == (graphs.num_nodes, 2)
    torch.testing.assert_close(model(first, first.x), out[:n], atol=1e-5, rtol=1e-5)


def test_weighted_accuracy_is_the_mean_recall():
    labels = torch.tensor([0, 0, 0, 1])
    constant = torch.tensor([[1.0, 0.0]] * 4)
    assert bench.weighted_accuracy(constant, labels) == 0.5


def test_bad_input_is_refused_with_the_argument_named():
    with pytest.raises(ValueError, match="`kind`"):
        bench.NodeClassifier("sage", 3, 8)
    with pytest.raises(ValueError, match="`width`"):
        bench.NodeClassifier("gat", 3, 7)
    with pytest.raises(ValueError, match="`budget`"):
        bench.width_for_budget(lambda w: nn.Linear(w, w), 0)
    with pytest.raises(ValueError, match="`k`"):
        bench.laplacian_pe(bench.pattern_graphs(1), 0)
    with pytest.raises(ValueError, match="`num_graphs`"):
        bench.pattern_graphs(0)
