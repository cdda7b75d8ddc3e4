"""The family's modules: the rational activation starts at leaky ReLU and learns both polynomials; the
quadratic neuron starts as a linear one (ReLinear) and computes its formula once moved off that start."""
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from course.neurons import rational as R
from course.neurons.layers import QuadraticLinear, RationalActivation, leaky_relu


@pytest.fixture(scope="module")
def activation():
    return RationalActivation()  # fitted once: about 0.4 s


def test_the_rational_starts_within_0_05_of_leaky_relu_on_minus_3_to_3(activation):
    x = torch.linspace(-3, 3, 1201)
    with torch.no_grad():
        assert (activation(x) - leaky_relu(x)).abs().max() < 0.05
    m, n = R.DEGREES
    assert activation.numerator.shape == (m + 1,) and activation.denominator.shape == (n,)


def test_the_rational_keeps_the_shape_and_dtype_of_its_input(activation):
    x = torch.randn(2, 3, 5)
    y = activation(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    torch.testing.assert_close(y, R.rational(x, activation.numerator, activation.denominator))


def test_gradients_reach_both_coefficient_vectors_and_match_the_powers_form(activation):
    x = torch.linspace(-3, 3, 257)
    activation.zero_grad()
    (activation(x) * torch.cos(x)).sum().backward()
    a = activation.numerator.detach().clone().requires_grad_()
    b = activation.denominator.detach().clone().requires_grad_()
    (R.rational_powers(x, a, b) * torch.cos(x)).sum().backward()
    for got, expected in ((activation.numerator.grad, a.grad), (activation.denominator.grad, b.grad)):
        assert got is not None and torch.isfinite(got).all() and (got != 0).all()
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    activation.zero_grad()


def test_the_rational_fits_another_activation_it_is_initialised_to():
    tanh = RationalActivation(torch.tanh, degrees=(3, 2))
    x = torch.linspace(-3, 3, 601)
    with torch.no_grad():
        assert (tanh(x) - torch.tanh(x)).abs().max() < 0.05


@settings(max_examples=20, deadline=None)
@given(d_in=st.integers(1, 6), d_out=st.integers(1, 6), seed=st.integers(0, 99))
def test_the_relinear_start_is_a_linear_neuron_exactly(d_in, d_out, seed):
    g = torch.Generator().manual_seed(seed)
    layer = QuadraticLinear(d_in, d_out, generator=g)
    x = 3 * torch.randn(7, d_in, generator=g)
    with torch.no_grad():
        assert torch.equal(layer(x), F.linear(x, layer.r.weight, layer.r.bias))


def test_off_the_start_the_quadratic_neuron_computes_its_formula():
    g = torch.Generator().manual_seed(0)
    layer = QuadraticLinear(4, 3, generator=g)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    x = torch.randn(5, 4, generator=g)
    W_r, b_r = layer.r.weight.T, layer.r.bias
    W_g, b_g = layer.g.weight.T, layer.g.bias
    W_b, c = layer.b.weight.T, layer.b.bias
    expected = (x @ W_r + b_r) * (x @ W_g + b_g) + (x * x) @ W_b + c
    torch.testing.assert_close(layer(x), expected)


def test_the_quadratic_and_linear_parameters_split_the_layer():
    layer = QuadraticLinear(3, 2)
    quadratic, linear = layer.quadratic_parameters(), layer.linear_parameters()
    ids = [id(p) for p in quadratic + linear]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in layer.parameters()}
    assert {id(p) for p in linear} == {id(layer.r.weight), id(layer.r.bias)}


def test_bad_input_names_the_argument(activation):
    with pytest.raises(TypeError, match="int64"):  # the registry refuses the dtype before the op's checks
        activation(torch.arange(3))
    with pytest.raises(ValueError, match="`m`"):
        RationalActivation(degrees=(-1, 2))
