"""The B-spline KAN layer: the basis is a partition of unity inside the grid and zero past its knots, the
closed form equals Cox-de Boor, the three forms agree, and bad input is named."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

from course.neurons import kan as K


@settings(max_examples=30, deadline=None)
@given(G=st.integers(1, 12), order=st.integers(0, 4), R=st.floats(0.1, 5.0), seed=st.integers(0, 99))
def test_the_basis_functions_sum_to_one_inside_the_grid(G, order, R, seed):
    knots = K.uniform_knots(G, order, R, torch.float64)
    assert knots.shape == (G + 2 * order + 1,)
    x = (torch.rand(300, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)) * 2 - 1) * R * 0.999
    basis = K.b_spline_basis(x, knots, order)
    assert basis.shape == (300, G + order) and (basis >= 0).all()
    torch.testing.assert_close(basis.sum(-1), torch.ones(300, dtype=torch.float64))


def test_closed_form_cubics_equal_cox_de_boor_and_vanish_past_the_extended_knots():
    knots = K.uniform_knots(5, 3, 2.0, torch.float64)
    x = torch.linspace(-5, 5, 1001, dtype=torch.float64)
    torch.testing.assert_close(K.cubic_b_spline_basis(x, knots), K.b_spline_basis(x, knots, 3))
    outside = x.abs() > 2.0 + 3 * 0.8 + 1e-9  # past R + k h: only the silu base is left
    assert (K.cubic_b_spline_basis(x[outside], knots) == 0).all()


def test_the_layer_is_silu_base_alone_outside_the_grid_and_the_forms_agree():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 6, dtype=torch.float64, generator=g) * 2
    base = torch.randn(6, 3, dtype=torch.float64, generator=g)
    coef = torch.randn(6, 9, 3, dtype=torch.float64, generator=g)
    out = K.kan_linear(x, base, coef, 1.5)
    torch.testing.assert_close(K.kan_linear_input_loop(x, base, coef, 1.5), out)
    far = torch.full((2, 6), 40.0, dtype=torch.float64)
    torch.testing.assert_close(K.kan_linear(far, base, coef, 1.5), torch.nn.functional.silu(far) @ base)


def test_bad_input_names_the_argument():
    x, base, coef = torch.randn(4, 3), torch.randn(3, 2), torch.randn(3, 8, 2)
    with pytest.raises(ValueError, match="`grid_size` must be an int"):
        K.uniform_knots(0)
    with pytest.raises(ValueError, match="`order` must be an int"):
        K.uniform_knots(4, -1)
    with pytest.raises(ValueError, match="`grid_range` must be positive"):
        K.uniform_knots(4, 3, 0.0)
    with pytest.raises(ValueError, match="at least one interval"):
        K.kan_linear(x, base, torch.randn(3, 3, 2))
    with pytest.raises(ValueError, match="`coef` must be"):
        K.kan_linear(x, base, torch.randn(3, 8, 5))
    with pytest.raises(ValueError, match="`base` must be"):
        K.kan_linear(x, torch.randn(4, 2), coef)
    with pytest.raises(ValueError, match="`grid_range` must be a positive number"):
        K.kan_linear(x, base, coef, -1.0)
    with pytest.raises(TypeError, match="`coef` must have x's dtype"):
        K.kan_linear(x, base, coef.double())
