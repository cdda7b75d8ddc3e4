"""Tyurin 2024: logistic GD, the batch perceptron it tends to, and the data."""
import math

import pytest
import torch

from course.landscape.papers import large_step_logistic as lsl


def test_the_data_are_separable_through_the_origin_but_not_by_the_class_mean():
    a, y = lsl.separable_data(seed=3)
    assert a.shape == (lsl.N, 2) and set(y.tolist()) == {-1.0, 1.0} and (y == -1).sum() == lsl.N // 10
    assert float(a.norm(dim=1).min()) >= 1.0  # x1 in [1, 3] before the rotation
    mean = (y[:, None] * a).mean(0)
    assert not bool((y * (a @ mean) > 0).all())  # one perceptron step does not separate them
    assert lsl.steps_to_separate(lsl.batch_perceptron(a, y, steps=500), a, y) < 500


def test_the_logistic_gradient_is_autograds():
    a, y = lsl.separable_data(seed=0)
    w = torch.tensor([0.3, -1.2], dtype=torch.float64, requires_grad=True)
    loss = torch.nn.functional.softplus(-y * (a @ w)).mean()
    (expected,) = torch.autograd.grad(loss, w)
    torch.testing.assert_close(lsl.logistic_gradient(w.detach(), a, y), expected)
    assert lsl.logistic_loss(w.detach(), a, y) == pytest.approx(float(loss.detach()))


def test_huge_steps_follow_the_batch_perceptron():
    a, y = lsl.separable_data(seed=0)
    gamma = 1e8
    w = lsl.gradient_descent(a, y, gamma, steps=10) / gamma
    v = lsl.batch_perceptron(a, y, steps=10)
    torch.testing.assert_close(w, v, atol=1e-6, rtol=0)
    # the first step from 0 is half the mean of y a (sigma(0) = h(0) = 1/2)
    torch.testing.assert_close(v[1], 0.5 * (y[:, None] * a).mean(0))


def test_small_steps_decrease_the_loss_and_normalized_steps_have_length_gamma():
    a, y = lsl.separable_data(seed=1)
    losses = lsl.losses(lsl.gradient_descent(a, y, 0.1, steps=50), a, y)
    assert bool((losses.diff() < 0).all())
    w = lsl.normalized_gradient_descent(a, y, 0.5, steps=5)
    torch.testing.assert_close(w.diff(dim=0).norm(dim=1), torch.full((5,), 0.5, dtype=torch.float64))


def test_steps_to_separate_reads_the_first_separating_iterate():
    a = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([1.0, -1.0], dtype=torch.float64)
    iterates = torch.tensor([[0.0, 0.0], [-1.0, 0.0], [2.0, 1.0]], dtype=torch.float64)
    assert lsl.steps_to_separate(iterates, a, y) == 2
    assert lsl.steps_to_separate(iterates[:2], a, y) == math.inf


def test_bad_input_is_refused_by_name():
    a, y = lsl.separable_data(seed=0)
    with pytest.raises(ValueError, match="`y`"):
        lsl.gradient_descent(a, torch.zeros_like(y), 1.0)
    with pytest.raises(ValueError, match="`gamma`"):
        lsl.gradient_descent(a, y, -1.0)
    with pytest.raises(ValueError, match="`a`.*finite"):
        lsl.batch_perceptron(torch.full_like(a, math.nan), y)
    with pytest.raises(ValueError, match="`margin`"):
        lsl.separable_data(margin=0.0)
