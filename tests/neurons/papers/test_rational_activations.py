"""Delfosse et al. 2024 (rational activations, plasticity): fresh leaky-ReLU rationals, the parameter
matching, the switching targets and their training loop, the shape measures, and bad input."""
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from torch import nn

from course.metrics import parameter_count
from course.neurons.layers import leaky_relu
from course.neurons.papers import rational_activations as ra


def test_each_rational_activation_is_a_fresh_copy_of_the_leaky_relu_fit():
    a, b = ra.rational_activation(), ra.rational_activation()
    assert a.numerator is not b.numerator
    with torch.no_grad():
        a.numerator.add_(1.0)
    x = torch.linspace(-3, 3, 301)
    with torch.no_grad():
        assert (b(x) - leaky_relu(x)).abs().max() < 0.05 and (a(x) - b(x)).abs().min() > 0


@settings(max_examples=10, deadline=None)
@given(width=st.integers(1, 12), depth=st.integers(1, 3))
def test_parameter_counts_and_the_matched_width(width, depth):
    assert parameter_count(ra.mlp(width, nn.ReLU, depth)) == ra.mlp_parameters(width, depth)
    target = ra.mlp_parameters(width, depth, per_activation=10)
    matched = ra.matched_relu_width(target, depth)
    assert ra.mlp_parameters(matched, depth) >= target
    assert matched == 1 or ra.mlp_parameters(matched - 1, depth) < target  # the smallest such width


def test_the_rational_net_counts_its_coefficients():
    net = ra.mlp(5, ra.rational_activation, depth=2)
    assert parameter_count(net) == ra.mlp_parameters(5, 2, per_activation=10)


def test_the_switching_targets_are_seeded_sines_that_change_every_phase():
    x, targets = ra.switching_targets(0, phases=3, points=50)
    x2, targets2 = ra.switching_targets(0, phases=3, points=50)
    assert x.shape == (50, 1) and targets.shape == (3, 50, 1) and torch.equal(targets, targets2)
    assert targets.abs().max() <= 1 and not torch.allclose(targets[0], targets[1])
    assert not torch.equal(targets, ra.switching_targets(1, phases=3, points=50)[1])


def test_the_training_loop_follows_the_targets_in_turn():
    """A net frozen at zero output (a rate too small to move it) scores mean(y_k^2) / var(y_k) in phase k."""
    x, targets = ra.switching_targets(2, phases=3, points=40)
    net = nn.Linear(1, 1)
    with torch.no_grad():
        net.weight.zero_()
        net.bias.zero_()
    losses = ra.train_switching(net, x, targets, seed=0, phase_steps=4, lr=1e-12)
    assert losses.shape == (3, 4)
    expected = targets.pow(2).mean((1, 2)) / targets.var(dim=(1, 2), correction=0)
    torch.testing.assert_close(losses, expected[:, None].expand(3, 4), rtol=1e-5, atol=1e-6)


def test_the_distances_from_leaky_relu():
    assert ra.leaky_relu_distance(leaky_relu) == 0
    assert ra.leaky_relu_distance(lambda x: 2 * leaky_relu(x)) == pytest.approx(1.0, rel=1e-5)
    # the shape change ignores what the neighbouring layers absorb: scale, offset, the negative slope
    for same_shape in (leaky_relu, lambda x: 3 * leaky_relu(x) - 1, F.relu, lambda x: F.leaky_relu(x, 0.3)):
        assert ra.shape_change(same_shape) < 1e-6
    assert ra.shape_change(torch.sin) > 0.5 and ra.shape_change(lambda x: torch.zeros_like(x)) == 0
    assert ra.shape_change(ra.rational_activation()) < 0.05  # the start is a kinked line to 5%


def test_steps_to_reach_a_level():
    losses = torch.tensor([[1.0, 0.5, 0.01, 0.2], [1.0, 0.9, 0.8, 0.7]])
    assert ra.steps_to_reach(losses, 0.05).tolist() == [2.0, 4.0]


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="`width`"):
        ra.mlp(0, nn.ReLU)
    with pytest.raises(ValueError, match="`phases`"):
        ra.switching_targets(0, phases=0)
    with pytest.raises(ValueError, match="`targets`"):
        ra.train_switching(nn.Linear(1, 1), torch.zeros(4, 1), torch.zeros(4, 1), seed=0)
    with pytest.raises(ValueError, match="`seed`"):
        ra.plasticity_experiment(-1)
