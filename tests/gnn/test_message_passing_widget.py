"""The message-passing widget's logic, without a browser: receptive fields against a BFS, the messages
of each round, attention widths, energies, the layout, controls, timing and bad input."""
import base64
import time
from collections import deque

import pytest
import torch

from course.gnn import GATConv, Graph
from course.gnn.smoothing import MODELS, energy_curves, propagate_states, seeded_gat_layers
from course.widgets import message_passing as mp

PATH = Graph(torch.tensor([[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]]), 4, x=torch.eye(4))  # 0 - 1 - 2 - 3


def bfs_hops(graph: Graph, node: int) -> dict:
    """Hops from every node that reaches `node` along the edges (j -> i: j is one hop from i)."""
    into = {i: [] for i in range(graph.num_nodes)}
    for j, i in graph.edge_index.t().tolist():
        into[i].append(j)
    hops, queue = {node: 0}, deque([node])
    while queue:
        i = queue.popleft()
        for j in into[i]:
            if j not in hops:
                hops[j] = hops[i] + 1
                queue.append(j)
    return hops


def connected(graph: Graph) -> bool:
    return bool(mp.receptive_field(graph, 0, graph.num_nodes).all())


def test_the_receptive_field_of_depth_k_is_the_k_hop_neighbourhood_of_a_bfs():
    assert mp.hops_from(PATH, 0, 2).tolist() == [0, 1, 2, -1]
    for homophily in (0.2, 0.6, 1.0):  # 1.0: the classes are two components, and a node is isolated
        g = mp.graph_for(homophily)
        for node in (0, 7, mp.NUM_NODES - 1):
            hops = bfs_hops(g, node)
            for k in range(mp.MAX_DEPTH + 1):
                expected = [v in hops and hops[v] <= k for v in range(g.num_nodes)]
                assert mp.receptive_field(g, node, k).tolist() == expected, (homophily, node, k)
    one_way = Graph(torch.tensor([[0, 1], [1, 2]]), 3)  # 0 -> 1 -> 2: only messages along the edges
    assert mp.receptive_field(one_way, 2, 2).tolist() == [True, True, True]
    assert mp.receptive_field(one_way, 0, 2).tolist() == [True, False, False]


@pytest.mark.parametrize("model", MODELS)
def test_only_the_receptive_field_reaches_the_chosen_node(model):
    g, node, depth = mp.graph_for(0.5), 3, 2
    hops = mp.hops_from(g, node, mp.NUM_NODES)
    base = propagate_states(g, model, depth).states[-1][node]
    for v, changes in ((int((hops > depth).nonzero()[0]), False), (int((hops == depth).nonzero()[0]), True)):
        x = g.x.clone()
        x[v] += 3.0
        out = propagate_states(g.with_(x=x), model, depth).states[-1][node]
        assert (not torch.allclose(out, base)) == changes, (model, v, int(hops[v]))


def test_the_messages_of_each_round_are_the_chosen_nodes_computation_tree():
    g, depth = mp.graph_for(0.8), 3
    p = propagate_states(g, "GCN", depth)
    hops = mp.hops_from(g, 0, depth)
    assert not mp.message_edges(p, hops, 0).any()
    last = mp.message_edges(p, hops, depth)  # the last round: only the messages into node 0
    assert set(p.looped.destination[last].tolist()) == {0}
    assert int(last.sum()) == int((p.looped.destination == 0).sum())
    for r in range(1, depth + 1):
        edges = mp.message_edges(p, hops, r)
        into = set(p.looped.destination[edges].tolist())
        assert into == set(((hops >= 0) & (hops <= depth - r)).nonzero().flatten().tolist())
        assert (hops[p.looped.source[edges]] >= 0).all()
        assert (hops[p.looped.source[edges]] <= depth - r + 1).all()
    sources = set(p.looped.source[mp.message_edges(p, hops, 1)].tolist())
    assert sources == set(mp.receptive_field(g, 0, depth).nonzero().flatten().tolist())


def test_gat_widths_sum_to_one_per_receiving_node_and_gcn_widths_are_s():
    g = mp.graph_for(0.5)
    p = propagate_states(g, "GAT", 2)
    for w in p.weights:
        sums = torch.zeros(g.num_nodes).index_add_(0, p.looped.destination, w)
        torch.testing.assert_close(sums, torch.ones(g.num_nodes))
        assert w.std() > 0.01  # the seeded attention is not uniform
    s = mp.dense_propagation(g)
    gcn = propagate_states(g, "GCN", 1)
    torch.testing.assert_close(gcn.weights[0].double(), s[gcn.looped.destination, gcn.looped.source])


def test_a_callers_gat_layers_replace_the_seeded_ones_and_are_checked():
    g = mp.graph_for(0.8)
    own = seeded_gat_layers(mp.MAX_DEPTH, mp.FEATURES, seed=5)
    mine = propagate_states(g, "GAT", 2, layers=own)
    seeded = propagate_states(g, "GAT", 2)
    assert not torch.allclose(mine.states[-1], seeded.states[-1])
    view = mp.MessagePassingWidget(model="GAT", layers=own)
    assert torch.allclose(view.state()[2].states[-1], propagate_states(g, "GAT", 3, layers=own).states[-1])
    with pytest.raises(ValueError, match=r"`layers\[0\]` must be a GATConv from 8 features to 8"):
        propagate_states(g, "GAT", 1, layers=[torch.nn.Linear(8, 8)])
    with pytest.raises(ValueError, match=r"`layers\[0\]` must be a GATConv from 8 features to 8.*from 8 to 4"):
        propagate_states(g, "GAT", 1, layers=[GATConv(8, 4)])
    with pytest.raises(ValueError, match="`layers` must be a list of at least 8 GATConv layers"):
        mp.MessagePassingWidget(layers=own[:3])


def test_the_layout_is_fixed_spread_and_keeps_neighbours_close():
    for homophily in (0.2, 1.0):
        g = mp.graph_for(homophily)
        pos = mp.layout_of(g)
        assert mp.layout_of(g) is pos  # computed once per graph
        assert torch.equal(mp.layout(g), pos)  # deterministic
        assert pos.shape == (g.num_nodes, 2) and torch.isfinite(pos).all() and pos.abs().max() <= 1 + 1e-6
        dist = torch.cdist(pos, pos)
        assert dist[~torch.eye(g.num_nodes, dtype=torch.bool)].min() > 0.02  # no node hides another
        edge_length = dist[g.source, g.destination].mean()
        assert edge_length < 0.6 * dist.mean(), homophily  # a spring layout, not a scatter


def test_the_panels_draw_every_message_in_width_order_and_outline_the_field():
    g, depth, node = mp.graph_for(0.8), 3, 0
    p = propagate_states(g, "GAT", depth)
    hops = mp.hops_from(g, node, depth)
    curves = energy_curves(g, mp.MAX_DEPTH)
    traces = mp.panel_traces(g, mp.layout_of(g), p, hops, curves, "GAT", 2, node)
    assert len(traces) == 1 + mp.WIDTH_BINS + 1 + len(MODELS) + 1
    active = mp.message_edges(p, hops, 2) & ~p.looped.self_loops()
    drawn = sum(traces[1 + b]["x"].count(None) for b in range(mp.WIDTH_BINS))
    assert drawn == int(active.sum()) > 0  # one segment per message
    level = mp.width_levels(p.weights[1], active)
    w = p.weights[1]
    assert all(w[active & (level == b)].max() <= w[active & (level == b + 1)].min()
               for b in range(mp.WIDTH_BINS - 1) if (level == b).any() and (level == b + 1).any())
    nodes = traces[1 + mp.WIDTH_BINS]["marker"]
    assert nodes["cmin"] == -nodes["cmax"] and nodes["symbol"].count("star") == 1
    assert nodes["line"]["color"].count(mp.FIELD) == int((hops >= 0).sum()) - 1  # the star is black
    assert traces[-1] == dict(x=[2], y=[curves["GAT"][2]])


def test_colours_of_different_meanings_differ():
    used = [*mp.MODEL_COLORS.values(), mp.FIELD, mp.CHOSEN, mp.EDGE]
    assert len(set(used)) == len(used)


def test_every_control_answers_within_two_seconds_and_changes_the_summary():
    view = mp.gallery()
    for control, value in ((view.round, 2), (view.model, "SGC"), (view.depth, 6), (view.node, 5),
                           (view.homophily, 0.2), (view.model, "GCN"), (view.model, "GAT"), (view.depth, 1)):
        before = view.summary.value
        start = time.process_time()
        control.value = value
        assert time.process_time() - start < 2.0, control.description
        assert view.summary.value != before, control.description
    assert view.round.max == 1 and view.round.value == 1  # the round follows a shallower depth
    assert "round 1 of 1" in view.summary.value and "GAT" in view.summary.value


def test_the_committed_notebook_shows_a_snapshot_of_the_widget():
    bundle = mp.gallery()._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert base64.b64decode(bundle["image/png"]).startswith(b"\x89PNG")
    assert "run the cell to interact" in bundle["text/plain"] and "VBox(" not in bundle["text/plain"]


def test_bad_controls_and_arguments_are_refused_by_name():
    with pytest.raises(ValueError, match="`model` must be one of"):
        mp.MessagePassingWidget(model="GIN")
    with pytest.raises(ValueError, match=r"`depth` must be an int in \[1, 8\]; got 9"):
        mp.MessagePassingWidget(depth=9)
    with pytest.raises(ValueError, match=r"`node` must be an int in \[0, 35\]; got 36"):
        mp.MessagePassingWidget(node=36)
    with pytest.raises(ValueError, match=r"`homophily` must be a number in \[0, 1\]; got 1.5"):
        mp.MessagePassingWidget(homophily=1.5)
    with pytest.raises(ValueError, match=r"`homophily` must be a number in \[0, 1\]; got True"):
        mp.graph_for(True)
    with pytest.raises(TypeError, match="`graph` must be a course.gnn.Graph"):
        mp.hops_from(PATH.edge_index, 0, 1)
    with pytest.raises(ValueError, match=r"`node` must be an int in \[0, 3\]; got 4"):
        mp.hops_from(PATH, 4, 1)
    with pytest.raises(ValueError, match=r"`round_` must be an int in \[0, 1\]; got 2"):
        mp.message_edges(propagate_states(PATH, "SGC", 1), mp.hops_from(PATH, 0, 1), 2)
