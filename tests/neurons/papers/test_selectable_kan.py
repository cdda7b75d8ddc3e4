"""Yang et al. 2024 (S-KAN): the spaces' bases, the selection weights are a distribution per node (one-hot
once selected), a one-space B-spline layer is the library's KAN layer, least squares fits what a space can
represent, and bad input is named."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course.neurons.kan import kan_linear
from course.neurons.papers import selectable_kan as S


@settings(max_examples=10, deadline=None)
@given(d_in=st.integers(1, 5), d_out=st.integers(1, 3), seed=st.integers(0, 999))
def test_the_selection_weights_are_a_distribution_per_node(d_in, d_out, seed):
    layer = S.SelectableKANLayer(d_in, d_out, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        layer.logits.normal_(generator=torch.Generator().manual_seed(seed))
    w = layer.weights()
    assert w.shape == (d_in, 3) and (w >= 0).all()
    torch.testing.assert_close(w.sum(-1), torch.ones(d_in))
    names = layer.select()
    assert names == tuple(S.SPACES[k] for k in layer.logits.argmax(-1).tolist())
    w = layer.weights()
    assert ((w == 0) | (w == 1)).all() and (w.sum(-1) == 1).all()


def test_the_bases():
    x = torch.linspace(-1, 1, 101, dtype=torch.float64)[:, None]
    bspline = S.basis_functions(x, "bspline")
    assert bspline.shape == (101, 1, S.SIZE)
    torch.testing.assert_close(bspline.sum(-1), torch.ones(101, 1, dtype=torch.float64))  # partition of unity
    period = (-1 + torch.arange(100, dtype=torch.float64) / 50)[:, None]  # one period, evenly sampled
    fourier = S.basis_functions(period, "fourier")[:, 0]
    gram = fourier.T @ fourier / 50  # sin k pi x, cos k pi x: orthogonal, each of mean square 1/2
    torch.testing.assert_close(gram, torch.eye(S.SIZE, dtype=torch.float64), atol=1e-12, rtol=0)
    rbf = S.basis_functions(x, "rbf")[:, 0]
    assert rbf.argmax(0).tolist() == [round(100 * j / 7) for j in range(8)]  # each bump peaks at its centre


def test_a_bspline_only_layer_is_the_librarys_kan_layer_plus_a_bias():
    layer = S.SelectableKANLayer(3, 2, spaces=("bspline",), generator=torch.Generator().manual_seed(0))
    x = torch.rand(30, 3) * 2 - 1
    with torch.no_grad():
        expected = kan_linear(x, layer.base, layer.coef[0], 1.0) + layer.bias
        torch.testing.assert_close(layer(x), expected)


def test_least_squares_recovers_a_target_of_the_selected_spaces():
    x = S.uniform_inputs(200, 2, 0)
    y = torch.sin(2 * math.pi * x[:, 0]) + 0.5 * torch.cos(math.pi * x[:, 1]) + 0.3
    layer = S.SelectableKANLayer(2, 1, spaces=("rbf", "fourier"))
    with torch.no_grad():
        layer.logits.copy_(torch.tensor([[0.0, 1.0], [0.0, 1.0]]))
    assert layer.select() == ("fourier", "fourier")
    S.least_squares_coefficients(layer, x, y)
    with torch.no_grad():
        assert S.held_out_error(layer, S.uniform_inputs(500, 2, 1), torch.sin(
            2 * math.pi * S.uniform_inputs(500, 2, 1)[:, 0]) + 0.5 * torch.cos(
            math.pi * S.uniform_inputs(500, 2, 1)[:, 1]) + 0.3) < 1e-6
    assert layer.deployed_parameters() == 2 * 1 + 1 + 2 * S.SIZE * 1


def test_the_matched_mlp_has_no_more_parameters():
    for d, budget in ((1, 10), (2, 19), (3, 40)):
        net = S.mlp(d, budget)
        assert sum(p.numel() for p in net.parameters()) <= budget


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="`space`"):
        S.basis_functions(torch.zeros(3, 1), "chebyshev")
    with pytest.raises(ValueError, match="`spaces`"):
        S.SelectableKANLayer(2, 1, spaces=("bspline", "bspline"))
    with pytest.raises(ValueError, match="`d_in`"):
        S.SelectableKANLayer(0, 1)
    with pytest.raises(ValueError, match="`x` must be"):
        S.SelectableKANLayer(2, 1)(torch.zeros(4, 3))
    with pytest.raises(TypeError, match="`x`"):
        S.SelectableKANLayer(2, 1)(torch.zeros(4, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="`y` must be"):
        S.least_squares_coefficients(S.SelectableKANLayer(2, 1), torch.zeros(4, 2), torch.zeros(5))
    with pytest.raises(ValueError, match="`target`"):
        S.fit_target("spiral", 0)
