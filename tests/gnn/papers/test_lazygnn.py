"""Xue et al. 2023 (LazyGNN): the clique chains, and lazy propagation against APPNP."""
import pytest
import torch
import torch.nn.functional as F

from course.gnn.papers import lazygnn


def hops(graph, source):
    """BFS distances from one node (inf where unreachable)."""
    dist = torch.full((graph.num_nodes,), torch.inf)
    dist[source], frontier, d = 0, {source}, 0
    while frontier:
        d += 1
        nxt = {int(j) for i in frontier for j in graph.destination[graph.source == i]} - \
              {i for i in range(graph.num_nodes) if torch.isfinite(dist[i])}
        for j in nxt:
            dist[j] = d
        frontier = nxt
    return dist


def test_clique_chains_put_each_class_on_one_marker_and_count_hops_to_it():
    graph, distance = lazygnn.clique_chains(num_chains=2, cliques=3, clique_size=3, num_classes=2, seed=0)
    assert graph.num_nodes == 18 and graph.x.sum().item() == 2
    for chain in range(2):
        nodes = torch.arange(9) + 9 * chain
        assert graph.x[nodes[0]].argmax() == graph.y[nodes[0]] and (graph.y[nodes] == graph.y[nodes[0]]).all()
        torch.testing.assert_close(hops(graph, int(nodes[0]))[nodes], distance[nodes].float())
    assert distance.max().item() == 5


def small_problem(seed=0):
    graph, _ = lazygnn.clique_chains(num_chains=3, cliques=2, clique_size=3, num_classes=3, seed=seed)
    return graph, lazygnn.propagation_matrix(graph)


def twins(graph, s, steps, **lazy):
    """An APPNP and a LazyGNN with the same predictor weights."""
    f, c = graph.x.shape[1], 3
    torch.manual_seed(0)
    appnp = lazygnn.APPNP(s, f, c, steps)
    lazy_model = lazygnn.LazyGNN(s, f, c, steps, **lazy)
    lazy_model.predictor.load_state_dict(appnp.predictor.state_dict())
    return appnp, lazy_model


def test_lazy_propagation_with_momenta_1_is_the_shallow_model_forward_and_backward():
    graph, s = small_problem()
    x = graph.x + 0.3 * torch.rand(graph.x.shape)
    appnp, lazy = twins(graph, s, steps=2, beta=1.0, gamma=1.0)
    for model in (appnp, lazy):
        F.cross_entropy(model(x), graph.y).backward()
    torch.testing.assert_close(lazy(x), appnp(x))
    for a, b in zip(appnp.predictor.parameters(), lazy.predictor.parameters()):
        torch.testing.assert_close(a.grad, b.grad)


def test_without_momentum_the_memories_converge_to_the_fixed_point_of_the_deep_model():
    graph, s = small_problem()
    x = graph.x + 0.3 * torch.rand(graph.x.shape)
    deep, lazy = twins(graph, s, steps=1, beta=0.0, gamma=0.0)
    for _ in range(400):  # the features are fixed, so iterations only add propagation steps
        out = lazy(x)
        out.backward(torch.ones_like(out))
    torch.testing.assert_close(lazy.memory, lazygnn.appnp_steps(s, deep.predictor(x), deep.predictor(x), 400),
                               atol=1e-4, rtol=1e-4)
    g = torch.ones_like(out)  # and the gradient memory to the fixed point's gradient
    torch.testing.assert_close(lazy.grad_memory, lazygnn.appnp_steps(s, g, g, 400), atol=1e-4, rtol=1e-4)


def test_predict_reads_without_changing_the_memory_and_costs_are_counted():
    graph, _ = small_problem()
    models = lazygnn.make_models(graph, seed=0)
    lazy = models["lazy"]
    lazy(graph.x)
    memory = lazy.memory.clone()
    lazy.predict(graph.x)
    assert torch.equal(lazy.memory, memory)
    counts = {name: m.propagations_per_step for name, m in models.items()}
    k, deep = lazygnn.SHALLOW_STEPS, lazygnn.DEEP_STEPS
    assert counts == {"deep": 2 * deep, "shallow": 2 * k, "lazy": 2 * k}


def test_bad_input_is_refused():
    _, s = small_problem()
    with pytest.raises(ValueError, match="beta"):
        lazygnn.LazyGNN(s, 3, 3, beta=1.5)
    with pytest.raises(ValueError, match="alpha"):
        lazygnn.LazyGNN(s, 3, 3, alpha=0.0)
    with pytest.raises(ValueError, match="clique_size"):
        lazygnn.clique_chains(clique_size=1)
