"""The message-passing widget's logic, without a browser: receptive fields, messages, energies, timing."""
import time

import pytest
import torch

from course.gnn import Graph
from course.gnn.smoothing import dirichlet_energy
from course.widgets import message_passing as mp


def test_the_receptive_field_is_the_k_hop_neighbourhood():
    path = Graph(torch.tensor([[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]]), 4)  # 0 - 1 - 2 - 3
    assert mp.hops_from(path, 0, 2).tolist() == [0, 1, 2, -1]
    assert mp.hops_from(path, 2, 5).tolist() == [2, 1, 0, 1]
    with pytest.raises(ValueError, match="`node` must be an int in"):
        mp.hops_from(path, 4, 1)


def test_messages_of_each_round_lead_into_the_chosen_nodes_field():
    g = mp.graph_for(0.8)
    p = mp.propagate_states(g, "GCN", 3)
    hops = mp.hops_from(g, 0, 3)
    assert not mp.message_edges(p, hops, 3, 0).any()
    last = mp.message_edges(p, hops, 3, 3)  # the last round: only messages into node 0
    assert set(p.looped.destination[last].tolist()) == {0}
    assert int(last.sum()) == int((p.looped.destination == 0).sum())
    first = mp.message_edges(p, hops, 3, 1)
    assert (hops[p.looped.destination[first]] <= 2).all() and (hops[p.looped.source[first]] >= 0).all()


def test_gat_widths_are_a_distribution_over_each_receiving_node():
    g = mp.graph_for(0.5)
    p = mp.propagate_states(g, "GAT", 2)
    for w in p.weights:
        sums = torch.zeros(g.num_nodes).index_add_(0, p.looped.destination, w)
        torch.testing.assert_close(sums, torch.ones(g.num_nodes))
    assert p.weights[0].std() > 0.01  # the seeded attention is not uniform


def test_dirichlet_energy_vanishes_on_the_kept_component_and_gcn_smooths_towards_it():
    g = mp.graph_for(0.8)
    kept = (g.in_degree().double() + 1).sqrt()[:, None]  # eigenvector of S with eigenvalue 1
    assert abs(dirichlet_energy(g, kept)) < 1e-5 * dirichlet_energy(g, torch.randn(g.num_nodes, 1).double())
    curves = mp.energy_curves(g)
    sgc = curves["SGC"]  # S's eigenvalues lie in (-1, 1]: each application lowers the energy
    assert sgc[0] == 1 and all(b < a for a, b in zip(sgc, sgc[1:]))
    assert curves["GCN"][-1] < 0.05  # with weights and tanh between, GCN smooths as much
    with pytest.raises(ValueError, match="one row per node"):
        dirichlet_energy(g, torch.zeros(3, 2))


def test_every_control_answers_within_two_seconds_and_changes_the_summary():
    view = mp.gallery()
    for control, value in ((view.round, 2), (view.model, "SGC"), (view.depth, 6), (view.node, 5),
                           (view.homophily, 0.2), (view.model, "GAT")):
        before = view.summary.value
        start = time.perf_counter()
        control.value = value
        assert time.perf_counter() - start < 2.0, control.description
        assert view.summary.value != before, control.description
    assert view.round.max == 6
    import matplotlib.pyplot as plt

    plt.close(view.snapshot())


def test_bad_controls_are_refused_by_name():
    with pytest.raises(ValueError, match="`model` must be one of"):
        mp.MessagePassingWidget(model="GIN")
    with pytest.raises(ValueError, match="`depth` must be an int in"):
        mp.MessagePassingWidget(depth=9)
    with pytest.raises(ValueError, match=r"`homophily` must be a number in \[0, 1\]"):
        mp.MessagePassingWidget(homophily=1.5)
    with pytest.raises(ValueError, match="`layers` must hold 8 GAT layers"):
        mp.MessagePassingWidget(layers=[])
