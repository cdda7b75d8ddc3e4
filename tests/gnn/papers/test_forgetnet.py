"""Bohde et al. 2024 (ForgetNet): Bellman-Ford's steps, the hints, and what each reasoner sees of
its history."""
import pytest
import torch

from course.gnn.datasets import bellman_ford
from course.gnn.papers import forgetnet


def test_bellman_ford_states_end_at_the_shortest_distances_and_never_increase():
    graph, states = forgetnet.bellman_ford_task(3, 5, 9, seed=4)
    assert states.shape[1] == graph.num_nodes and torch.isfinite(states[-1]).all()
    assert (states[1:] <= states[:-1]).all()
    for source in (graph.x[:, 0] > 0).nonzero().flatten().tolist():  # each graph from its source
        dist, _ = bellman_ford(graph.edge_index, graph.edge_attr[:, 0], graph.num_nodes, source)
        reachable = torch.isfinite(dist)
        torch.testing.assert_close(states[-1][reachable], dist[reachable].float())


def test_hints_are_reached_flags_and_finite_distances():
    h = forgetnet.hints(torch.tensor([0.0, torch.inf, 1.5]))
    assert h.tolist() == [[1.0, 0.0], [0.0, 0.0], [1.0, 1.5]]


def reasoners(hidden=8):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return {mode: forgetnet.Reasoner(mode, hidden=hidden) for mode in forgetnet.MODES}


def test_forgetnet_ignores_its_history_and_the_closed_gate_is_forgetnet():
    graph, states = forgetnet.bellman_ford_task(2, 5, 7, seed=1)
    first = forgetnet.hints(states[0])
    models = reasoners()
    forget, gated = models["forget"], models["gated"]
    out = forget(graph, 3, first)
    # each step depends only on the hint it is given: step 2 from step 1's decoded hint alone
    hint = torch.stack([torch.sigmoid(out[0, :, 0]), out[0, :, 1]], dim=-1)
    torch.testing.assert_close(forget(graph, 1, hint.detach())[0], out[1].detach())
    gated.load_state_dict({**forget.state_dict(), **{k: v for k, v in gated.state_dict().items()
                                                     if k.startswith("gate")}})
    torch.testing.assert_close(gated(graph, 3, first, closed=True), out)
    assert not torch.allclose(gated(graph, 3, first), out)  # open, the gate lets history in


def test_the_loss_falls_and_g_forgetnet_adds_its_closed_path():
    graph, states = forgetnet.bellman_ford_task(4, 5, 7, seed=0)
    models = reasoners()
    gated = models["gated"]
    steps, first = states.shape[0] - 1, forgetnet.hints(states[0])
    expected = (forgetnet.step_loss(gated(graph, steps, first), states)
                + forgetnet.step_loss(gated(graph, steps, first, closed=True), states))
    torch.testing.assert_close(forgetnet.reasoner_loss(gated, graph, states), expected)
    before = forgetnet.distance_error(models["forget"], graph, states)
    trained = forgetnet.train_reasoner("forget", graph, states, steps=40, hidden=8)
    assert forgetnet.distance_error(trained, graph, states) < before


def test_bad_input_is_refused():
    graph, states = forgetnet.bellman_ford_task(1, 5, 5, seed=0)
    with pytest.raises(ValueError, match="mode"):
        forgetnet.Reasoner("remember")
    with pytest.raises(ValueError, match="first_hint"):
        reasoners()["carry"](graph, 2, torch.zeros(graph.num_nodes))
    with pytest.raises(ValueError, match="steps"):
        reasoners()["carry"](graph, 0, forgetnet.hints(states[0]))
