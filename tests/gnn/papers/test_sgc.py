import torch

from course.gnn import Graph
from course.gnn.papers import sgc


def test_the_counted_costs_are_the_shapes_products():
    """A path 0 - 1 - 2 with its self-loops: nnz(S) = 4 directed edges + 3 loops = 7."""
    edges = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
    graph = Graph(edges, 3, x=torch.randn(3, 5), y=torch.tensor([0, 1, 1]))  # F = 5, C = 2
    train = torch.tensor([True, False, True])
    assert sgc.sgc_multiply_adds(graph, train, k=2, steps=10) == 2 * 7 * 5 + 10 * 3 * (2 * 5 * 2)
    forward = 3 * 5 * 16 + 7 * 16 + 3 * 16 * 2 + 7 * 2
    assert sgc.gcn_multiply_adds(graph, steps=10, hidden=16) == 10 * 3 * forward
