"""Aggregation: segment reductions, the message-passing base, the two ops' backends and the layers.

Properties (hypothesis): aggregation equals the dense A @ X; permuting the node order permutes the
output; a batch of graphs equals the graphs run one by one. And clear errors on bad input.
"""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course import registry
from course.gnn import GATConv, GCNConv, Graph, MessagePassing, batch, coalesce, gcn_norm, sgc_features
from course.gnn.attention import attention_weights, gat_aggregate
from course.gnn.segment import segment, segment_softmax
from course.gnn.spmm import spmm
from graph_strategies import graphs

SPMM = registry.get("gnn.spmm")
GAT = registry.get("gnn.gat_aggregate")


def torch_backends(op):
    """The op's plain-PyTorch backends that run here (the kernels are in the one harness)."""
    return [i for i in op.impls if i.kind == "torch" and i.availability("cpu")[0]]


def weighted(g: Graph, seed: int = 0):
    """A random weight per edge, in the graph's edge order and in its CSR order."""
    w = torch.rand(g.num_edges, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return w, w[g.csr.perm]


@settings(max_examples=30, deadline=None)
@given(g=graphs())
def test_every_torch_backend_of_spmm_is_the_dense_product(g):
    g = coalesce(g)  # torch.sparse needs distinct entries
    w, w_csr = weighted(g)
    x = g.x.double()
    dense = g.to_dense(w) @ x
    for impl in torch_backends(SPMM):
        out = impl.load()(g.csr.ptr, g.csr.index, x, w_csr)
        torch.testing.assert_close(out, dense, msg=impl.backend)


@settings(max_examples=25, deadline=None)
@given(g=graphs(), seed=st.integers(0, 100))
def test_permuting_the_nodes_permutes_every_aggregation(g, seed):
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(g.num_nodes, generator=gen)  # new id of node v: inverse[v]
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(g.num_nodes)
    relabelled = Graph(inverse[g.edge_index], g.num_nodes, x=g.x[perm])
    w, _ = weighted(g, seed)
    out = spmm(g.csr.ptr, g.csr.index, g.x, w[g.csr.perm].float())
    out_p = spmm(relabelled.csr.ptr, relabelled.csr.index, relabelled.x, w[relabelled.csr.perm].float())
    torch.testing.assert_close(out_p, out[perm])
    h = torch.randn(g.num_nodes, 2, 3, generator=gen)
    a_src, a_dst = torch.randn(g.num_nodes, 2, generator=gen), torch.randn(g.num_nodes, 2, generator=gen)
    att = gat_aggregate(g.csr.ptr, g.csr.index, h, a_src, a_dst)
    att_p = gat_aggregate(relabelled.csr.ptr, relabelled.csr.index, h[perm], a_src[perm], a_dst[perm])
    torch.testing.assert_close(att_p, att[perm])
    torch.manual_seed(seed)
    gcn = GCNConv(3, 4)
    torch.testing.assert_close(gcn(relabelled, relabelled.x), gcn(g, g.x)[perm])


@settings(max_examples=20, deadline=None)
@given(parts=st.lists(graphs(max_nodes=7, max_edges=14), min_size=1, max_size=4))
def test_a_batch_of_graphs_equals_the_graphs_one_by_one(parts):
    parts = [coalesce(p) for p in parts]
    torch.manual_seed(0)
    gcn, gat = GCNConv(3, 4), GATConv(3, 2, heads=2)
    b = batch(parts)
    for layer in (gcn, gat):
        together = layer(b, b.x)
        alone = torch.cat([layer(p, p.x) for p in parts])
        torch.testing.assert_close(together, alone)


def test_segment_reductions_against_python():
    src = torch.tensor([[1.0], [5.0], [-2.0], [3.0], [4.0]])
    ptr = torch.tensor([0, 2, 2, 5])  # segments [1, 5], [], [-2, 3, 4]
    assert segment(src, ptr, "sum").flatten().tolist() == [6.0, 0.0, 5.0]
    torch.testing.assert_close(segment(src, ptr, "mean").flatten(), torch.tensor([3.0, 0.0, 5.0 / 3]))
    assert segment(src, ptr, "max").flatten().tolist() == [5.0, 0.0, 4.0]  # empty -> 0, not -inf
    alpha = segment_softmax(torch.tensor([1000.0, 1001.0, 0.0, 0.0, 0.0]), ptr)
    torch.testing.assert_close(alpha[:2].sum(), torch.tensor(1.0))  # stable for large scores
    torch.testing.assert_close(alpha[2:], torch.full((3,), 1 / 3))
    with pytest.raises(ValueError, match="`reduce` must be one of"):
        segment(src, ptr, "min")
    with pytest.raises(ValueError, match="non-decreasing offsets from 0 to src.shape"):
        segment(src, torch.tensor([0, 3, 2, 5]), "sum")


def test_the_message_passing_hooks_compose_into_a_layer():
    class MeanOfNeighbours(MessagePassing):
        aggregation = "mean"

        def forward(self, graph, x):
            return self.propagate(graph, x)

        def update(self, aggregated, x, **extra):
            return torch.cat([x, aggregated], dim=1)

    g = Graph(torch.tensor([[1, 2, 0], [0, 0, 1]]), 3, x=torch.tensor([[1.0], [2.0], [4.0]]))
    out = MeanOfNeighbours()(g, g.x)
    assert out.tolist() == [[1.0, 3.0], [2.0, 1.0], [4.0, 0.0]]  # node 2 has no incoming edge
    with pytest.raises(TypeError, match="`graph` must be a Graph"):
        MeanOfNeighbours()(g.edge_index, g.x)


def test_gcn_norm_and_sgc_are_the_papers_dense_formulas():
    g = Graph(torch.tensor([[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]]), 4, x=torch.randn(4, 3))
    a = g.to_dense() + torch.eye(4)
    d = a.sum(1).rsqrt()
    s_dense = d[:, None] * a * d[None, :]
    s = gcn_norm(g)
    torch.testing.assert_close(spmm(s.rowptr, s.col, torch.eye(4), s.weight), s_dense)
    torch.testing.assert_close(sgc_features(g, g.x, 3), torch.linalg.matrix_power(s_dense, 3) @ g.x)
    # an existing self-loop is replaced, not added twice; a duplicate edge counts twice
    looped = Graph(torch.cat([g.edge_index, torch.tensor([[0], [0]])], 1), 4, x=g.x)
    torch.testing.assert_close(sgc_features(looped, g.x, 2), sgc_features(g, g.x, 2))
    twice = Graph(torch.cat([g.edge_index, torch.tensor([[0], [1]])], 1), 4)
    assert gcn_norm(twice).weight.numel() == g.num_edges + 1 + 4


def test_gat_attention_is_a_distribution_over_each_neighbourhood_and_refuses_duplicates():
    torch.manual_seed(0)
    g = Graph(torch.tensor([[1, 2, 3, 0], [0, 0, 0, 1]]), 4, x=torch.randn(4, 5))
    layer = GATConv(5, 3, heads=2)
    out = layer(g, g.x, keep_attention=True)
    assert out.shape == (4, 6)
    looped_ptr = torch.tensor([0, 4, 6, 7, 8])  # with self-loops: in-degrees 4, 2, 1, 1
    sums = segment(layer.last_attention, looped_ptr, "sum")
    torch.testing.assert_close(sums, torch.ones(4, 2))
    with pytest.raises(ValueError, match="no duplicate edges"):
        layer(Graph(torch.tensor([[1, 1], [0, 0]]), 4), g.x)
    mean_layer = GATConv(5, 3, heads=2, concat=False)
    assert mean_layer(g, g.x).shape == (4, 3)


@pytest.mark.parametrize("impl", torch_backends(SPMM), ids=lambda i: i.backend)
def test_spmm_backends_refuse_bad_input_by_name(impl):
    fn = impl.load()
    ptr, col, x = torch.tensor([0, 2, 3]), torch.tensor([0, 1, 1]), torch.randn(2, 4)
    cases = [
        ((torch.tensor([0, 3, 2]), col, x, None), ValueError, "non-decreasing offsets"),
        ((torch.tensor([0, 2, 4]), col, x, None), ValueError, "from 0 to len"),
        ((ptr, torch.tensor([0, 2, 1]), x, None), ValueError, r"`col` must be in \[0, x.shape\[0\]\) = \[0, 2\)"),
        ((ptr, col.float(), x, None), TypeError, "`col` must be an integer tensor"),
        ((ptr, col, x[0], None), ValueError, "`x` must be a 2-D tensor"),
        ((ptr, col, x, torch.ones(2)), ValueError, r"`weight` must have one entry per edge, \[E\] with E = 3"),
        ((ptr, col, x, torch.ones(3, dtype=torch.float64)), TypeError, "`weight` must have the dtype of `x`"),
        ((ptr, col, x, torch.tensor([1.0, float("nan"), 1.0])), ValueError, "`weight` must be finite"),
        ((torch.tensor([], dtype=torch.long), col, x, None), ValueError, "N \\+ 1 >= 1 entries"),
    ]
    for args, error, match in cases:
        with pytest.raises(error, match=match):
            fn(*args)


@pytest.mark.parametrize("impl", torch_backends(GAT), ids=lambda i: i.backend)
def test_gat_backends_refuse_bad_input_by_name(impl):
    fn = impl.load()
    ptr, col, h = torch.tensor([0, 2, 3]), torch.tensor([0, 1, 1]), torch.randn(2, 2, 3)
    a = torch.randn(2, 2)
    cases = [
        ((ptr, col, h[:, 0], a, a), {}, ValueError, "`h` must be a 3-D tensor"),
        ((ptr, col, h, torch.randn(2, 3), a), {}, ValueError, r"`a_src` must be of shape \[S, H\] = \(2, 2\)"),
        ((ptr, col, h, a, torch.randn(3, 2)), {}, ValueError, r"`a_dst` must be of shape \[N, H\] = \(2, 2\)"),
        ((ptr, col, h, a.double(), a), {}, TypeError, "`a_src` must have the dtype of `h`"),
        ((ptr, col, h, a, a), {"negative_slope": 1.5}, ValueError, r"`negative_slope` must be a number in \[0, 1\)"),
        ((ptr, col, h, torch.full((2, 2), float("inf")), a), {}, ValueError, "`a_src` must be finite"),
    ]
    for args, kwargs, error, match in cases:
        with pytest.raises(error, match=match):
            fn(*args, **kwargs)


def test_attention_weights_of_equal_scores_are_uniform():
    ptr, col = torch.tensor([0, 3, 4]), torch.tensor([0, 1, 1, 0])
    alpha = attention_weights(ptr, col, torch.zeros(2, 1), torch.zeros(2, 1))
    torch.testing.assert_close(alpha.flatten(), torch.tensor([1 / 3, 1 / 3, 1 / 3, 1.0]))
