"""The rational activation: Horner equals the powers, the denominator never vanishes, the fit to ReLU and
leaky ReLU is within a stated error, the derivatives of the module's docstring, and bad input."""
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from course.neurons import rational as R

floats = st.floats(-50, 50, allow_nan=False)


@settings(max_examples=40, deadline=None)
@given(a=st.lists(floats, min_size=1, max_size=7), b=st.lists(floats, min_size=0, max_size=6),
       seed=st.integers(0, 99))
def test_the_denominator_is_at_least_one_for_any_coefficients(a, b, seed):
    """Q = 1 + |S| >= 1 by construction: no pole, whatever the coefficients and the input."""
    x = 10 * torch.randn(200, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    b = torch.tensor(b, dtype=torch.float64)
    assert (R.safe_denominator(x, b) >= 1).all()
    out = R.rational(x, torch.tensor(a, dtype=torch.float64), b)
    assert torch.isfinite(out).all()


@settings(max_examples=30, deadline=None)
@given(m=st.integers(0, 6), n=st.integers(0, 5), seed=st.integers(0, 99))
def test_horner_equals_the_powers(m, n, seed):
    g = torch.Generator().manual_seed(seed)
    x = 2 * torch.randn(100, dtype=torch.float64, generator=g)
    a, b = torch.randn(m + 1, dtype=torch.float64, generator=g), torch.randn(n, dtype=torch.float64, generator=g)
    torch.testing.assert_close(R.rational(x, a, b), R.rational_powers(x, a, b))
    expected = sum(a[k] * x ** k for k in range(m + 1)) / (1 + sum((b[j - 1] * x ** j for j in range(1, n + 1)),
                                                                   torch.zeros_like(x)).abs())
    torch.testing.assert_close(R.rational(x, a, b), expected)


def test_the_derivatives_of_the_docstring_match_autograd():
    g = torch.Generator().manual_seed(0)
    x = (2 * torch.randn(50, dtype=torch.float64, generator=g)).requires_grad_()
    a = torch.randn(6, dtype=torch.float64, generator=g).requires_grad_()
    b = torch.randn(4, dtype=torch.float64, generator=g).requires_grad_()
    R.rational(x, a, b).sum().backward()
    with torch.no_grad():
        P, S = R.horner(a, x), x * R.horner(b, x)
        Q, s = 1 + S.abs(), torch.sign(S)
        dP = R.horner(a[1:] * torch.arange(1, 6), x)
        dS = R.horner(b * torch.arange(1, 5), x)
        torch.testing.assert_close(x.grad, (dP * Q - P * s * dS) / Q ** 2)
        torch.testing.assert_close(a.grad, torch.stack([(x ** k / Q).sum() for k in range(6)]))
        torch.testing.assert_close(b.grad, torch.stack([(-P * s * x ** j / Q ** 2).sum() for j in range(1, 5)]))


@pytest.mark.parametrize("name,fn,bound", [("relu", F.relu, 0.05),
                                           ("leaky_relu", lambda t: F.leaky_relu(t, 0.01), 0.05)])
def test_the_fit_approximates_relu_and_leaky_relu_within_a_stated_error(name, fn, bound):
    """On [-3, 3] the (5, 4) rational is within 0.05 of the kink-shaped target everywhere (the error sits
    at the kink), and within 0.01 on average."""
    a, b = R.fit_rational(fn)
    x = torch.linspace(-3, 3, 2001, dtype=torch.float64)
    error = (R.rational(x, a, b) - fn(x)).abs()
    assert error.max() < bound and error.mean() < 0.01, (name, error.max().item(), error.mean().item())


def test_half_inputs_are_computed_in_float32():
    x = torch.linspace(-3, 3, 101)
    a, b = (t.float() for t in R.fit_rational(F.relu))
    exact = R.rational(x, a, b)
    half = R.rational(x.bfloat16(), a.bfloat16(), b.bfloat16())
    assert half.dtype == torch.bfloat16 and (half.float() - exact).abs().max() < 0.05


def test_bad_input_names_the_argument():
    x = torch.randn(5)
    with pytest.raises(ValueError, match="at least one coefficient"):
        R.rational(x, torch.zeros(0), torch.zeros(2))
    with pytest.raises(TypeError, match="`denominator` must have x's dtype"):
        R.rational(x, torch.zeros(3), torch.zeros(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="`numerator` must be a 1-D tensor"):
        R.rational(x, torch.zeros(3, 1), torch.zeros(2))
    with pytest.raises(ValueError, match="`m` must be an int"):
        R.fit_rational(F.relu, (-1, 2))
    with pytest.raises(ValueError, match="`n` must be an int"):
        R.fit_rational(F.relu, (3, -2))
