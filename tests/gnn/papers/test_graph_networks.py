"""The Graph Network block of Battaglia et al. 2018: shapes, equivariance, batching, the baseline."""
import torch

from course.gnn.datasets import shortest_path_graphs
from course.gnn.graph import Graph, batch
from course.gnn.papers import graph_networks as gn


def test_the_block_is_permutation_equivariant_and_batches_like_its_graphs():
    graph, _ = shortest_path_graphs(3, 6, 9, seed=0)
    torch.manual_seed(0)
    model = gn.EncodeProcessDecode()
    nodes, edges = model(graph, steps=3)
    assert nodes.shape == (graph.num_nodes,) and edges.shape == (graph.num_edges,)
    perm = torch.randperm(graph.num_nodes)
    inverse = torch.argsort(perm)
    relabelled = Graph(inverse[graph.edge_index], graph.num_nodes, x=graph.x[perm],
                       edge_attr=graph.edge_attr, batch=graph.batch[perm], num_graphs=graph.num_graphs)
    nodes_p, edges_p = model(relabelled, steps=3)
    torch.testing.assert_close(nodes_p, nodes[perm], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(edges_p, edges, atol=1e-5, rtol=1e-5)
    singles = [shortest_path_graphs(1, 6, 9, seed=s)[0] for s in range(3)]
    together = model(batch(singles), steps=3)[0]
    torch.testing.assert_close(together, torch.cat([model(g, steps=3)[0] for g in singles]), atol=1e-5, rtol=1e-5)


def test_the_baseline_sees_no_edges_and_balanced_accuracy_ignores_class_sizes():
    graph, _ = shortest_path_graphs(2, 6, 9, seed=1)
    torch.manual_seed(0)
    mlp = gn.EncodeProcessDecode(message_passing=False)
    rewired = graph.with_(edge_index=graph.edge_index.flip(0))
    torch.testing.assert_close(mlp(graph)[0], mlp(rewired)[0])
    labels = torch.tensor([1, 0, 0, 0])
    assert gn.balanced_accuracy(torch.tensor([-1.0, -1, -1, -1]), labels) == 0.5
    assert gn.balanced_accuracy(torch.tensor([1.0, -1, -1, -1]), labels) == 1.0
