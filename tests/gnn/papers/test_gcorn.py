"""Abbahaddou et al. 2024 (GCORN): Bjorck orthonormalisation, the 1-Lipschitz GCN, the attacks."""
import pytest
import torch

from course.gnn.datasets import csbm
from course.gnn.papers import gcorn


@pytest.mark.parametrize("shape", [(16, 3), (16, 16), (7, 5)])
def test_bjorck_gives_orthonormal_columns(shape):
    w = gcorn.bjorck_orthonormalize(torch.randn(*shape, generator=torch.Generator().manual_seed(0)), 30)
    torch.testing.assert_close(w.T @ w, torch.eye(shape[1]), atol=1e-4, rtol=0)


def test_bjorck_gives_orthonormal_rows_to_a_wide_matrix_and_keeps_an_orthonormal_one():
    w = gcorn.bjorck_orthonormalize(torch.randn(3, 10, generator=torch.Generator().manual_seed(1)), 30)
    torch.testing.assert_close(w @ w.T, torch.eye(3), atol=1e-4, rtol=0)
    q = torch.linalg.qr(torch.randn(8, 4, generator=torch.Generator().manual_seed(2))).Q
    torch.testing.assert_close(gcorn.bjorck_orthonormalize(q, 5), q, atol=1e-5, rtol=0)


def test_gradients_flow_through_the_iterations():
    v = torch.randn(6, 4, requires_grad=True)
    (gcorn.bjorck_orthonormalize(v) * torch.randn(6, 4)).sum().backward()
    assert v.grad is not None and torch.isfinite(v.grad).all() and v.grad.abs().sum() > 0


def test_gcorn_is_1_lipschitz_in_the_features_and_the_gcn_need_not_be():
    graph = csbm(60, 3, 0.8, 4.0, 8, 1.0, seed=0)
    torch.manual_seed(0)
    model = gcorn.TwoLayerGCN(8, 3, orthonormal=True, hidden=8)
    plain = gcorn.TwoLayerGCN(8, 3, orthonormal=False, hidden=8)
    with torch.no_grad():
        for layer in (plain.conv1, plain.conv2):
            layer.linear.weight.mul_(5)
    delta = gcorn.random_feature_attacks(graph.x, 0.5, 4, seed=1)
    for d in delta:  # ||f(X + d) - f(X)||_F <= ||d||_F: ||S||_2 <= 1, ReLU and orthonormal W are 1-Lipschitz
        change = (model(graph, graph.x + d) - model(graph, graph.x)).norm()
        assert change <= d.norm() * (1 + 1e-4)
    change = (plain(graph, graph.x + delta[0]) - plain(graph, graph.x)).norm()
    assert change > delta[0].norm()


def test_attacks_have_norm_epsilon_per_node_and_zero_attacks_change_nothing():
    x = torch.randn(10, 4)
    delta = gcorn.random_feature_attacks(x, 0.3, 5)
    assert delta.shape == (5, 10, 4)
    torch.testing.assert_close(delta.norm(dim=-1), torch.full((5, 10), 0.3))
    graph = csbm(30, 2, 0.8, 4.0, 4, 1.0, seed=0)
    model = gcorn.TwoLayerGCN(4, 2, orthonormal=True, hidden=4)
    robustness = gcorn.expected_robustness(model, graph, torch.zeros(2, 30, 4))
    assert robustness["output_change"] == 0
    assert robustness["attacked_accuracy"] == robustness["clean_accuracy"]


def test_bad_input_is_refused_with_the_argument_named():
    with pytest.raises(ValueError, match="`w`"):
        gcorn.bjorck_orthonormalize(torch.randn(4))
    with pytest.raises(ValueError, match="`w`"):
        gcorn.bjorck_orthonormalize(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="`w`"):
        gcorn.bjorck_orthonormalize(torch.full((3, 3), float("nan")))
    with pytest.raises(ValueError, match="`iterations`"):
        gcorn.bjorck_orthonormalize(torch.randn(3, 3), -1)
    with pytest.raises(ValueError, match="`epsilon`"):
        gcorn.random_feature_attacks(torch.randn(3, 2), -1.0, 2)
    with pytest.raises(ValueError, match="`samples`"):
        gcorn.random_feature_attacks(torch.randn(3, 2), 1.0, 0)
