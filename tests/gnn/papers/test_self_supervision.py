"""You et al. 2020 (self-supervision for GCNs): k-means pseudo-labels and the multi-task loss."""
import pytest
import torch
import torch.nn.functional as F

from course.gnn.datasets import csbm, split_nodes
from course.gnn.layers import gcn_norm
from course.gnn.papers import self_supervision as ss
from course.metrics import normalized_mutual_information


def blobs(seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    labels = torch.arange(60) % 3
    return centres[labels] + 0.3 * torch.randn(60, 2, generator=g), labels


def test_kmeans_recovers_separated_blobs():
    x, labels = blobs()
    assignment, centres = ss.kmeans(x, 3, seed=0)
    assert normalized_mutual_information(assignment, labels) == pytest.approx(1.0)
    assert centres.shape == (3, 2)


def test_kmeans_ends_at_a_fixed_point_of_lloyds_step():
    x = torch.randn(80, 3, generator=torch.Generator().manual_seed(1))
    assignment, centres = ss.kmeans(x, 5, iterations=100, seed=2)
    assert torch.equal(assignment, torch.cdist(x, centres).argmin(1))  # every point at its nearest centre
    for c in assignment.unique():
        torch.testing.assert_close(centres[c], x[assignment == c].mean(0))  # every centre its points' mean


def small():
    graph = csbm(60, 3, 0.8, 4.0, 8, 0.5, seed=0)
    train, _ = split_nodes(graph.y, 2, seed=0)
    pseudo, _ = ss.kmeans(graph.x, 4, seed=0)
    torch.manual_seed(0)
    return graph, train, pseudo, ss.MultiTaskGCN(8, 3, 4, hidden=8).eval()


def test_the_loss_is_eq_4_and_alpha_2_zero_leaves_the_pseudo_label_head_untouched():
    graph, train, pseudo, model = small()
    s = gcn_norm(graph)
    logits, cluster_logits = model(graph, graph.x, s)
    assert logits.shape == (60, 3) and cluster_logits.shape == (60, 4)
    expected = F.cross_entropy(logits[train], graph.y[train]) + 0.5 * F.cross_entropy(cluster_logits, pseudo)
    torch.testing.assert_close(ss.multitask_loss(model, graph, s, train, pseudo, 0.5), expected)
    ss.multitask_loss(model, graph, s, train, pseudo, 0.0).backward()
    assert all(p.grad is None for p in model.self_supervised.parameters())
    assert all(p.grad is not None for p in model.shared.parameters())


def test_bad_input_is_refused_with_the_argument_named():
    with pytest.raises(ValueError, match="`k`"):
        ss.kmeans(torch.randn(3, 2), 4)
    with pytest.raises(TypeError, match="`x`"):
        ss.kmeans(torch.ones(5, 2, dtype=torch.long), 2)
    graph, train, pseudo, _ = small()
    with pytest.raises(ValueError, match="`ss_weight`"):
        ss.train(graph, train, pseudo, -1.0, seed=0)
