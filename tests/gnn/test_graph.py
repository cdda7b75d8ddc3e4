"""The graph container: CSR and CSC views, batching, self-loops and duplicates, and bad input."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course.gnn import graph as G
from course.gnn.graph import Graph
from graph_strategies import graphs


@settings(max_examples=40, deadline=None)
@given(g=graphs())
def test_csr_and_csc_hold_every_edge_once_grouped_and_sorted(g):
    for adj, key, other in ((g.csr, g.destination, g.source), (g.csc, g.source, g.destination)):
        assert adj.ptr[0] == 0 and adj.ptr[-1] == g.num_edges and (adj.degree >= 0).all()
        assert torch.equal(adj.target, key[adj.perm]) and torch.equal(adj.index, other[adj.perm])
        assert sorted(adj.perm.tolist()) == list(range(g.num_edges))
        for i in range(g.num_nodes):  # segment i: the edges whose key is i, sorted by the other end
            segment = adj.index[adj.ptr[i]:adj.ptr[i + 1]]
            assert (adj.target[adj.ptr[i]:adj.ptr[i + 1]] == i).all()
            assert torch.equal(segment, segment.sort().values)
            assert len(segment) == int((key == i).sum())


@settings(max_examples=30, deadline=None)
@given(g=graphs())
def test_csr_transpose_is_the_csc(g):
    colptr, row, perm = G.csr_transpose(g.csr.ptr, g.csr.index, g.num_nodes)
    assert torch.equal(colptr, g.csc.ptr) and torch.equal(row, g.csc.index)
    assert torch.equal(g.csr.perm[perm], g.csc.perm)  # the same original edge at each CSC position


@settings(max_examples=30, deadline=None)
@given(parts=st.lists(graphs(max_nodes=6, max_edges=12), min_size=1, max_size=4))
def test_a_batch_is_its_graphs_side_by_side(parts):
    b = G.batch(parts)
    assert b.num_nodes == sum(p.num_nodes for p in parts) and b.num_graphs == len(parts)
    offsets = G.node_offsets(b)
    dense = b.to_dense()
    for k, p in enumerate(parts):
        lo, hi = int(offsets[k]), int(offsets[k + 1])
        assert torch.equal(dense[lo:hi, lo:hi], p.to_dense())
        assert torch.equal(b.x[lo:hi], p.x) and (b.batch[lo:hi] == k).all()
    block = torch.block_diag(*[p.to_dense() for p in parts])
    assert torch.equal(dense, block)  # no edge between two graphs of the batch


def test_self_loops_and_duplicates_are_found_replaced_and_removed():
    g = Graph(torch.tensor([[0, 1, 1, 2, 1], [0, 2, 2, 2, 2]]), 3)
    assert g.self_loops().tolist() == [True, False, False, True, False]
    assert g.duplicate_edges().tolist() == [False, False, True, False, True]
    assert G.coalesce(g).num_edges == 3
    looped = G.add_self_loops(g)
    assert int(looped.self_loops().sum()) == 3 and looped.num_edges == 3 + 3  # one loop per node
    with pytest.raises(ValueError, match="no duplicate edges; got 2, e.g. edge 2: 1 -> 2"):
        G.check_simple("layer", g)
    with pytest.raises(ValueError, match="no self-loops; got 2"):
        G.check_simple("layer", G.coalesce(g), self_loops_allowed=False)


def test_isolated_nodes_and_empty_graphs_have_empty_segments():
    g = Graph(torch.tensor([[0], [1]]), 4)
    assert g.csr.degree.tolist() == [0, 1, 0, 0] and g.csc.degree.tolist() == [1, 0, 0, 0]
    empty = Graph(torch.zeros(2, 0, dtype=torch.long), 0)
    assert empty.csr.ptr.tolist() == [0] and empty.to_dense().shape == (0, 0)
    no_edges = Graph(torch.zeros(2, 0, dtype=torch.long), 5)
    assert no_edges.csr.ptr.tolist() == [0] * 6


@pytest.mark.parametrize("edge_index,num_nodes,error,match", [
    (torch.tensor([[0, 1], [1, 3]]), 3, ValueError, r"entries must be node ids in \[0, num_nodes\) = \[0, 3\); "
                                                    r"got values from 0 to 3"),
    (torch.tensor([[0, -1], [1, 2]]), 3, ValueError, "got values from -1 to 2"),
    (torch.tensor([[0.0, 1.0], [1.0, 2.0]]), 3, TypeError, "integer tensor"),
    (torch.tensor([[0, 1], [1, 2]], dtype=torch.int16), 3, TypeError, "int64 or int32; got dtype torch.int16"),
    (torch.tensor([[0, 1, 2]]), 3, ValueError, r"shape \[2, E\]"),
    (torch.tensor([0, 1]), 3, ValueError, "2-D tensor"),
    ([[0, 1], [1, 2]], 3, TypeError, "torch.Tensor"),
    (torch.tensor([[0], [1]]), -1, ValueError, "num_nodes"),
])
def test_bad_edge_indices_are_refused_by_name(edge_index, num_nodes, error, match):
    with pytest.raises(error, match=match):
        Graph(edge_index, num_nodes)


def test_features_and_batches_must_fit_the_graph():
    e = torch.tensor([[0, 1], [1, 0]])
    with pytest.raises(ValueError, match=r"`x` must have one row per node, \[N, F\] with N = 2; got shape \(3, 4\)"):
        Graph(e, 2, x=torch.zeros(3, 4))
    with pytest.raises(ValueError, match="`edge_attr` must have one row per edge"):
        Graph(e, 2, edge_attr=torch.zeros(3, 1))
    with pytest.raises(ValueError, match="`batch` must give the graph of every node"):
        Graph(e, 2, batch=torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="non-empty list of Graph"):
        G.batch([])
    with pytest.raises(ValueError, match="either every graph has `x` or none does"):
        G.batch([Graph(e, 2, x=torch.zeros(2, 1)), Graph(e, 2)])


def test_undirected_adds_both_directions():
    e = G.undirected([(0, 1), (1, 2)], 3)
    assert sorted(map(tuple, e.t().tolist())) == [(0, 1), (1, 0), (1, 2), (2, 1)]
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        G.undirected([(0, 3)], 3)
