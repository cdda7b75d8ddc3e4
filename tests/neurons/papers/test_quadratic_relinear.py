"""ReLinear against plain training: the plain start redraws only the quadratic branch, a collapse is what
the module says, and bad input is named."""
import math

import pytest
import torch

from course.neurons.papers import quadratic_networks as Q
from course.neurons.papers import quadratic_relinear as R


def test_the_plain_start_redraws_the_quadratic_branch_only():
    a, b = (Q.quadratic_network(8, depth=2) for _ in "ab")
    b.load_state_dict(a.state_dict())
    R.plain_start(b, 1)
    for la, lb in zip(Q.quadratic_layers(a), Q.quadratic_layers(b)):
        assert torch.equal(la.r.weight, lb.r.weight) and torch.equal(la.r.bias, lb.r.bias)
        assert not torch.equal(la.g.weight, lb.g.weight) and lb.b.weight.abs().max() > 0
    assert Q.relinear_penalty(b, 1.0) > 0


def test_a_collapse_is_a_non_finite_or_chance_loss():
    assert R.collapsed([0.7, math.nan, 0.1]) and R.collapsed([0.7, 0.69])
    assert not R.collapsed([0.7, 0.01])


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="`method` must be"):
        R.train_run("adam", 0)
