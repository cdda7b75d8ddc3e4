"""The triangular learning-rate policy and the range test (Smith 2017, sections 3.1 and 3.3)."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course.landscape import schedules
from course.train import fit


def test_the_triangle_hits_base_and_max_at_the_right_iterations():
    lr = lambda it: schedules.triangular_lr(it, 10, 0.1, 1.0)  # noqa: E731
    for it in (0, 20, 40, 60):
        assert lr(it) == pytest.approx(0.1)
    for it in (10, 30, 50):
        assert lr(it) == pytest.approx(1.0)
    assert lr(5) == pytest.approx(0.55) and lr(25) == pytest.approx(0.55)


@settings(max_examples=50, deadline=None)
@given(it=st.integers(0, 10_000), step=st.integers(1, 200), base=st.floats(1e-4, 1.0),
       span=st.floats(0.0, 5.0))
def test_the_triangle_stays_in_its_bounds_and_repeats_every_two_step_sizes(it, step, base, span):
    top = base + span
    lr = schedules.triangular_lr(it, step, base, top)
    assert base - 1e-12 <= lr <= top + 1e-12
    assert schedules.triangular_lr(it + 2 * step, step, base, top) == pytest.approx(lr)


def test_the_triangle_rejects_bad_input_by_name():
    with pytest.raises(ValueError, match="`step_size`"):
        schedules.triangular_lr(0, 0, 0.1, 1.0)
    with pytest.raises(ValueError, match="`max_lr`"):
        schedules.triangular_lr(0, 5, 0.1, 0.01)
    with pytest.raises(ValueError, match="`base_lr`"):
        schedules.triangular_lr(0, 5, -0.1, 1.0)
    with pytest.raises(TypeError, match="`iteration`"):
        schedules.triangular_lr(1.5, 5, 0.1, 1.0)


def test_range_test_learning_rates_are_linear_or_geometric():
    linear = schedules.range_test_lrs(0.1, 1.0, 10)
    assert linear[0] == pytest.approx(0.1) and linear[-1] == pytest.approx(1.0)
    assert max(abs(b - a - 0.1) for a, b in zip(linear, linear[1:])) < 1e-12
    geometric = schedules.range_test_lrs(1e-3, 10.0, 5, spacing="exponential")
    assert [b / a for a, b in zip(geometric, geometric[1:])] == pytest.approx([10.0] * 4)
    with pytest.raises(ValueError, match="`spacing`"):
        schedules.range_test_lrs(0.1, 1.0, 10, spacing="cosine")


def test_the_bounds_are_where_the_loss_starts_to_fall_and_where_it_turns_up():
    lrs = [0.01 * i for i in range(1, 101)]
    # flat until lr 0.2, falling to its lowest at lr 0.7, then rising and finally diverging
    losses = [2.0 if lr <= 0.2 else 2.0 - 2.0 * (lr - 0.2) if lr <= 0.7 else 1.0 + 5 * (lr - 0.7)
              for lr in lrs]
    losses[-3:] = [math.inf, math.nan, math.nan]
    base, top = schedules.range_test_bounds(lrs, losses, beta=0.0)
    assert 0.2 < base < 0.3 and top == pytest.approx(0.7)


def test_the_bounds_refuse_a_loss_that_never_falls():
    with pytest.raises(ValueError, match="never falls"):
        schedules.range_test_bounds([0.1, 0.2, 0.3], [1.0, 1.5, 2.0])
    with pytest.raises(ValueError, match="`lrs` and `losses`"):
        schedules.range_test_bounds([0.1, 0.2], [1.0])


def test_scheduled_sgd_steps_with_the_schedule_and_the_range_test_returns_one_loss_per_rate():
    x = torch.ones(1, requires_grad=True)
    seen = []
    fit([x], lambda: (x * x).sum(), 4, 0.5, optimizer=schedules.ScheduledSGD,
        schedule=lambda k: seen.append(k) or 0.5 / (k + 1), progress=False)
    assert seen == [0, 1, 2, 3]  # one schedule call a step, from iteration 0
    lrs = schedules.range_test_lrs(0.01, 0.4, 6)
    y = torch.full((1,), 3.0, requires_grad=True)
    losses = schedules.lr_range_test([y], lambda: (y * y).sum(), lrs)
    expected, value = [], 3.0
    for lr in lrs:  # SGD on y^2: y <- y (1 - 2 lr)
        expected.append(value ** 2)
        value *= 1 - 2 * lr
    assert losses == pytest.approx(expected)
