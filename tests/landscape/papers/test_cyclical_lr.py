"""Smith 2017: the toy's range test, schedule and measure of iterations."""
import math

from course.landscape import schedules
from course.landscape.papers import cyclical_lr as clr


def test_iterations_to_a_target_count_evaluations_every_few_iterations():
    assert clr.iterations_to([0.2, 0.5, 0.9, 0.95], 0.9) == 2 * clr.EVERY
    assert clr.iterations_to([0.2, 0.5], 0.9) == math.inf
    assert clr.final([0.0] * 10 + [1.0] * 5) == 1.0


def test_the_range_test_on_the_toy_gives_ordered_bounds_inside_its_range():
    base, top = clr.range_test(0)
    assert clr.RANGE_MIN <= base < top <= clr.RANGE_MAX


def test_a_constant_schedule_and_a_degenerate_triangle_train_alike():
    # a triangle with base_lr = max_lr is the constant rate: the same accuracies
    constant = clr.train(0, lambda it: 0.3, iterations=20)
    triangle = clr.train(0, lambda it: schedules.triangular_lr(it, 5, 0.3, 0.3), iterations=20)
    assert constant == triangle and len(constant) == 20 // clr.EVERY
