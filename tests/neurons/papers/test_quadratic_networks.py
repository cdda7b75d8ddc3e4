"""Quadratic networks: the ReLinear start is a linear neuron, ReLinear's learning rates and penalty touch
only the quadratic terms, the toys are what they say, and bad input is named."""
import pytest
import torch
from torch import nn

from course.neurons.layers import QuadraticLinear
from course.neurons.papers import quadratic_networks as Q


def test_the_relinear_start_is_a_linear_neuron():
    layer = QuadraticLinear(5, 3, generator=torch.Generator().manual_seed(0))
    x = torch.randn(16, 5)
    torch.testing.assert_close(layer(x), x @ layer.r.weight.T + layer.r.bias)
    assert Q.relinear_penalty(nn.Sequential(layer), 1.0).item() == 0.0


def test_relinear_shrinks_only_the_quadratic_learning_rates():
    model = Q.quadratic_network(4, depth=2)
    quadratic, others = Q.split_parameters(model)
    assert len(quadratic) == 8 and len(quadratic) + len(others) == len(list(model.parameters()))
    opt = Q.relinear_optimizer(model, 0.01)(model.parameters(), lr=0.5, total=10)
    rates = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert all(rates[id(p)] == pytest.approx(0.005) for p in quadratic)
    assert all(rates[id(p)] == 0.5 for p in others)


def test_the_toys_hold_their_labels_and_margins():
    x, y = Q.concentric_circles(500, 0)
    r = x.norm(dim=1)
    assert (r[y == 1] <= 1 + 1e-6).all() and (r[y == 0] >= 1.4 - 1e-6).all() and 0.4 < y.float().mean() < 0.6
    x, y = Q.xor_quadrants(500, 0)
    assert (x.abs() >= Q.MARGIN - 1e-6).all() and torch.equal(y, (x[:, 0] * x[:, 1] > 0).long())


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="`gamma` must be in"):
        Q.relinear_optimizer(Q.quadratic_network(2), 0.0)
    with pytest.raises(ValueError, match="`alpha` must be >= 0"):
        Q.relinear_penalty(Q.quadratic_network(2), -1.0)
    with pytest.raises(ValueError, match="`width`"):
        Q.quadratic_network(0)
