"""The offline graphs: the vendored karate club, CSBMs, power-law graphs and the algorithmic tasks."""
import math

import pytest
import torch

from course.gnn import datasets as D
from course.gnn.graph import node_offsets


def test_karate_club_is_zacharys_graph():
    g = D.karate_club()
    assert (g.num_nodes, g.num_edges) == (34, 156)  # 78 friendships, both directions
    assert not g.self_loops().any() and not g.duplicate_edges().any()
    degree = g.in_degree()
    assert degree[D.PRESIDENT] == 17 and degree[D.INSTRUCTOR] == 16  # the two leaders are the hubs
    assert int(g.y.sum()) == 17 and g.y[D.INSTRUCTOR] == 0 and g.y[D.PRESIDENT] == 1
    assert D.edge_homophily(g) > 0.85  # the split follows the friendships


@pytest.mark.parametrize("homophily", [0.1, 0.5, 0.9])
def test_csbm_has_the_homophily_and_classes_it_was_asked_for(homophily):
    g = D.csbm(600, num_classes=3, homophily=homophily, degree=8, seed=1)
    assert abs(D.edge_homophily(g) - homophily) < 0.05
    assert torch.bincount(g.y).tolist() == [200, 200, 200]
    assert not g.self_loops().any() and not g.duplicate_edges().any()
    assert abs(g.num_edges / g.num_nodes - 8) < 1
    means = torch.stack([g.x[g.y == c].mean(0) for c in range(3)])
    assert (means.norm(dim=1) > 0.8).all()  # signal 1 around unit class means
    with pytest.raises(ValueError, match=r"`homophily` must be in \[0, 1\]; got 1.5"):
        D.csbm(10, homophily=1.5)


def test_power_law_graphs_have_capped_hubs_and_a_heavy_tail():
    g = D.power_law(20_000, 200_000, gamma=2.1, max_degree=5_000, seed=0)
    degree = g.in_degree()
    assert g.num_edges == 200_000 and 4_000 < int(degree.max()) <= 5_600
    assert degree.median() <= 4 and (degree == 0).any()  # most nodes receive a handful, some none
    top = degree.sort(descending=True).values
    assert top[:200].sum() > 0.3 * g.num_edges  # 1% of the nodes receive over 30% of the edges
    with pytest.raises(ValueError, match="`gamma` must be > 1"):
        D.power_law(10, 10, gamma=1.0)


def test_bellman_ford_matches_a_dense_floyd_warshall():
    g = torch.Generator().manual_seed(3)
    e = D.random_connected(12, 3.0, g)
    w = torch.rand(e.shape[1], generator=g) + 0.1
    dist = torch.full((12, 12), math.inf, dtype=torch.float64)
    dist[e[0], e[1]] = w.double()
    dist.fill_diagonal_(0)
    for k in range(12):
        dist = torch.minimum(dist, dist[:, k:k + 1] + dist[k:k + 1, :])
    d, pred = D.bellman_ford(e, w, 12, source=4)
    torch.testing.assert_close(d, dist[4])
    for v in range(12):  # the predecessor lies on a shortest path
        if v != 4:
            u = int(pred[v])
            edge = ((e[0] == u) & (e[1] == v)).nonzero()[0, 0]
            assert abs(float(d[u] + w[edge]) - float(d[v])) < 1e-6


def test_shortest_path_task_labels_one_connected_path_per_graph():
    graph, edge_on = D.shortest_path_graphs(6, 8, 12, seed=2)
    offsets = node_offsets(graph)
    for k in range(6):
        lo, hi = int(offsets[k]), int(offsets[k + 1])
        on = graph.y[lo:hi].bool()
        start, end = graph.x[lo:hi, 0].argmax(), graph.x[lo:hi, 1].argmax()
        assert on[start] and on[end]
        inside = (graph.source >= lo) & (graph.source < hi) & edge_on.bool()
        assert int(inside.sum()) == 2 * (int(on.sum()) - 1)  # a path: one edge fewer than its nodes
        assert graph.y[graph.source[inside]].all() and graph.y[graph.destination[inside]].all()


def test_bfs_states_grow_by_one_hop_until_every_node_is_reached():
    graph, states = D.bfs_graphs(3, 6, 10, seed=0)
    assert torch.equal(states[0], graph.x[:, 0]) and states[-1].all()
    assert (states[1:] >= states[:-1]).all()  # reached stays reached
    for t in range(1, len(states)):
        new = (states[t] - states[t - 1]).bool()
        reached_before = states[t - 1].bool()
        has_reached_neighbour = torch.zeros(graph.num_nodes, dtype=torch.bool)
        has_reached_neighbour[graph.destination[reached_before[graph.source]]] = True
        assert has_reached_neighbour[new].all()


def test_sorting_targets_point_to_the_predecessor_in_sorted_order():
    graph = D.sorting_graphs(4, 3, 6, seed=5)
    keys = graph.x[:, 0]
    pred = graph.y
    for v in range(graph.num_nodes):
        p = int(pred[v])
        if p == v:  # the smallest key of its graph
            assert graph.batch[p] == graph.batch[v]
        else:
            assert keys[p] < keys[v] and graph.batch[p] == graph.batch[v]
    assert int((pred == torch.arange(graph.num_nodes)).sum()) == 4  # one minimum per graph
