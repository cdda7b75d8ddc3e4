"""GAT's toy: the distractor graph, the uniform baseline, and the attention it learns."""
import torch

from course.gnn.graph import add_self_loops
from course.gnn.papers import gat
from course.gnn.segment import segment


def test_the_distractor_graph_adds_flagged_lookalikes_to_every_real_node():
    plain, mixed = gat.plain_graph(0), gat.distractor_graph(0)
    n = plain.num_nodes
    assert torch.equal(mixed.x[:n], plain.x) and (mixed.x[n:, -1] == 1).all() and (plain.x[:, -1] == 0).all()
    assert (mixed.y[n:] == -1).all() and torch.equal(mixed.y[:n], plain.y)
    from_distractors = (mixed.source >= n) & (mixed.destination < n)
    assert torch.bincount(mixed.destination[from_distractors], minlength=n).min() >= 1
    assert not mixed.duplicate_edges().any()


def test_the_uniform_baseline_weighs_every_neighbour_equally_with_the_same_parameters():
    g = gat.plain_graph(1)
    torch.manual_seed(0)
    learned, uniform = gat.TwoLayerGAT(g.x.shape[1], 2), gat.TwoLayerGAT(g.x.shape[1], 2, uniform=True)
    assert sum(p.numel() for p in learned.parameters()) == sum(p.numel() for p in uniform.parameters())
    uniform(g, g.x, keep_attention=True)
    adj = add_self_loops(g).csr
    alpha = uniform.conv1.last_attention  # [E', heads]
    expected = (1 / adj.degree.float()).repeat_interleave(adj.degree)[:, None].expand_as(alpha)
    torch.testing.assert_close(alpha, expected)
    torch.testing.assert_close(segment(alpha, adj.ptr, "sum"), torch.ones(g.num_nodes, alpha.shape[1]))
