"""Keleş and Tekalp 2024 (Paon): the Padé neuron's formula, its linear special case, a denominator that
never vanishes, the parameter counts the claim matches, and bad input."""
import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

from course.metrics import parameter_count
from course.neurons.papers import paon


def loop_pade(x, A, b, C):
    """The Paon written out one output and one input at a time."""
    N, I = x.shape
    out = torch.empty(N, A.shape[2], dtype=x.dtype)
    for o in range(A.shape[2]):
        p = b[o] + sum(A[k, i, o] * x[:, i] ** (k + 1) for k in range(A.shape[0]) for i in range(I))
        s = sum((C[k, i, o] * x[:, i] ** (k + 1) for k in range(C.shape[0]) for i in range(I)),
                torch.zeros(N, dtype=x.dtype))
        out[:, o] = p / (1 + s.abs())
    return out


@settings(max_examples=12, deadline=None)
@given(m=st.integers(1, 3), n=st.integers(0, 3), d_in=st.integers(1, 4), d_out=st.integers(1, 3),
       seed=st.integers(0, 99))
def test_the_layer_computes_the_pade_neuron_of_each_output(m, n, d_in, d_out, seed):
    g = torch.Generator().manual_seed(seed)
    layer = paon.PadeLinear(d_in, d_out, (m, n), generator=g).double()
    x = torch.randn(6, d_in, generator=g, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), loop_pade(x, layer.numerator, layer.bias, layer.denominator))


@settings(max_examples=20, deadline=None)
@given(d_in=st.integers(1, 6), d_out=st.integers(1, 6), seed=st.integers(0, 99))
def test_with_the_right_coefficients_a_paon_is_a_linear_neuron(d_in, d_out, seed):
    g = torch.Generator().manual_seed(seed)
    linear = nn.Linear(d_in, d_out)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(d_out, d_in, generator=g))
        linear.bias.copy_(torch.randn(d_out, generator=g))
    x = 3 * torch.randn(9, d_in, generator=g)
    with torch.no_grad():
        torch.testing.assert_close(paon.PadeLinear.from_linear(linear)(x), linear(x))
        # the [1/0] approximant: no denominator, one power
        torch.testing.assert_close(paon.pade_neuron(x, linear.weight.T[None], linear.bias,
                                                    torch.zeros(0, d_in, d_out)), linear(x))


@settings(max_examples=15, deadline=None)
@given(scale=st.floats(1e-3, 1e3), seed=st.integers(0, 99))
def test_the_denominator_never_vanishes(scale, seed):
    """1 + |S| >= 1 for any weights: the output is finite and never larger in size than the numerator."""
    g = torch.Generator().manual_seed(seed)
    A, C = scale * torch.randn(3, 4, 2, generator=g), scale * torch.randn(2, 4, 2, generator=g)
    b = scale * torch.randn(2, generator=g)
    x = 5 * torch.randn(50, 4, generator=g)
    y = paon.pade_neuron(x, A, b, C)
    p = paon.pade_neuron(x, A, b, torch.zeros(0, 4, 2))
    assert torch.isfinite(y).all() and (y.abs() <= p.abs() * (1 + 1e-6)).all()


def test_the_gradients_reach_every_coefficient():
    layer = paon.PadeLinear(3, 2, generator=torch.Generator().manual_seed(0))
    layer(torch.randn(8, 3, generator=torch.Generator().manual_seed(1))).sum().backward()
    for p in layer.parameters():
        assert p.grad is not None and (p.grad != 0).any()


def test_parameter_counts_match_as_claimed():
    for d_in, d_out, degrees in ((1, 8, (3, 2)), (2, 8, (3, 2)), (5, 3, (1, 0)), (4, 4, (2, 4))):
        layer = paon.PadeLinear(d_in, d_out, degrees)
        assert parameter_count(layer) == paon.pade_parameters(d_in, d_out, degrees)
    for d_in in (1, 2):
        target = parameter_count(paon.paon_net(d_in))
        width = paon.matched_width(d_in, target)
        assert parameter_count(paon.relu_net(d_in, width)) == paon.relu_parameters(d_in, width) >= target
        assert paon.relu_parameters(d_in, width - 1) < target  # the smallest such width


def test_the_tasks_are_seeded_and_shaped():
    a, b = paon.approximation_tasks(3), paon.approximation_tasks(3)
    assert all(torch.equal(u, v) for k in a for u, v in zip(a[k], b[k]))
    assert a["1d"][0].shape == (paon.TRAIN_POINTS, 1) and a["2d"][2].shape == (1024, 2)
    assert a["2d"][3].shape == (1024, 1) and not torch.equal(a["1d"][0], paon.approximation_tasks(4)["1d"][0])
    x2 = a["2d"][0]
    torch.testing.assert_close(a["2d"][1], torch.sin(torch.pi * x2[:, :1]) * torch.cos(torch.pi * x2[:, 1:]))


def test_training_lowers_the_test_error():
    task = paon.approximation_tasks(0, points=64)["1d"]
    net = paon.paon_net(1, hidden=4)
    before = paon.train_and_test(net, task, seed=0, steps=1, lr=1e-9)
    after = paon.train_and_test(net, task, seed=0, steps=60)
    assert after < before


def test_bad_input_names_the_argument():
    x, A, b, C = torch.randn(4, 3), torch.randn(2, 3, 5), torch.randn(5), torch.randn(1, 3, 5)
    with pytest.raises(ValueError, match="`x`"):
        paon.pade_neuron(x[0], A, b, C)
    with pytest.raises(ValueError, match="`numerator`"):
        paon.pade_neuron(x, torch.randn(2, 4, 5), b, C)
    with pytest.raises(ValueError, match="`numerator`"):
        paon.pade_neuron(x, torch.randn(0, 3, 5), b, C)
    with pytest.raises(ValueError, match="`bias`"):
        paon.pade_neuron(x, A, torch.randn(4), C)
    with pytest.raises(ValueError, match="`denominator`"):
        paon.pade_neuron(x, A, b, torch.randn(1, 3, 4))
    with pytest.raises(TypeError, match="`x`"):
        paon.pade_neuron(x.long(), A, b, C)
    with pytest.raises(ValueError, match="`m`"):
        paon.PadeLinear(3, 2, degrees=(0, 1))
    with pytest.raises(ValueError, match="`parameters`"):
        paon.matched_width(2, 0)
