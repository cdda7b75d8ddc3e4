"""Delfosse et al. 2024 (the learned activation's shape): the two regressions, the control's teacher, and
one short training that moves the rational."""
import pytest
import torch

from course.neurons.papers import rational_shape as rs
from course.neurons.papers.rational_activations import leaky_relu_distance


def test_the_oscillation_task():
    x, y = rs.oscillation_task(33)
    assert x.shape == y.shape == (33, 1) and x.min() == -2 and x.max() == 2
    torch.testing.assert_close(y, torch.sin(torch.pi * x))


def test_the_teacher_is_a_seeded_leaky_relu_net_a_kinked_line_between_its_kinks():
    x, y = rs.teacher_task(0, points=401)
    assert torch.equal(y, rs.teacher_task(0, points=401)[1])
    assert not torch.equal(y, rs.teacher_task(1, points=401)[1])
    # piecewise linear: second differences vanish except near at most SHAPE_WIDTH kinks
    second = (y[2:] - 2 * y[1:-1] + y[:-2]).abs().flatten()
    assert int((second > 1e-5).sum()) <= 2 * rs.SHAPE_WIDTH


def test_training_on_the_oscillation_lowers_the_error_and_moves_the_rational():
    from course.neurons.papers.rational_activations import mlp, rational_activation
    x, y = rs.oscillation_task(32)
    net = mlp(4, rational_activation)
    start = leaky_relu_distance(net[1])
    error = rs.train_regression(net, x, y, seed=0, steps=40, lr=0.02)
    assert error < 1 and start < 0.05 < leaky_relu_distance(net[1])


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="`points`"):
        rs.oscillation_task(1)
    with pytest.raises(TypeError, match="`seed`"):
        rs.shape_experiment(0.5)
