"""Jia et al. 2024 (PGN): the HIE layer in three forms, causal, with an O(1) path; the gate; the data."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course.ssm.papers import pgn


@settings(max_examples=20, deadline=None)
@given(B=st.integers(1, 3), T=st.integers(1, 12), D=st.integers(1, 3), K=st.integers(1, 16),
       seed=st.integers(0, 99))
def test_the_three_forms_of_hie_agree(B, T, D, K, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, D, generator=g, dtype=torch.float64)
    kernel = torch.randn(K, D, generator=g, dtype=torch.float64)
    expected = pgn.hie_loop(x, kernel)
    torch.testing.assert_close(pgn.hie_toeplitz(x, kernel), expected)
    torch.testing.assert_close(pgn.hie_fft(x, kernel), expected)


def test_hie_is_strictly_causal_and_its_path_is_one_weight():
    x = torch.randn(1, 20, 2, dtype=torch.float64, requires_grad=True)
    kernel = torch.randn(20, 2, dtype=torch.float64)
    for form, exact in ((pgn.hie_toeplitz, True), (pgn.hie_fft, False)):
        x.grad = None
        form(x, kernel)[0, 15].sum().backward()
        future = x.grad[0, 15:].abs().max()  # the present and the future do not enter h_15
        assert future == 0 if exact else future < 1e-12
        # d h_15 / d x_{15-j} is the lag-j weight itself: one multiplication, however far back
        torch.testing.assert_close(x.grad[0, :15].flip(0), kernel[:15])


def test_the_gate_fuses_history_and_input_and_the_models_forecast_the_horizon():
    layer = pgn.PGNLayer(4, 6)
    x = torch.randn(2, 9, 4)
    o = layer(x)
    assert o.shape == x.shape and torch.isfinite(o).all()
    assert pgn.PGNForecaster(8, 10, 3)(torch.randn(5, 10)).shape == (5, 3)
    assert pgn.GRUForecaster(8, 3)(torch.randn(5, 10)).shape == (5, 3)


def test_the_series_repeat_their_period_and_the_targets_continue_it():
    x, y = pgn.periodic_series(8, period=5, window=12, horizon=4, noise=0.0, seed=1)
    torch.testing.assert_close(x[:, 5:], x[:, :-5])
    torch.testing.assert_close(y, x[:, 12 - 5:12 - 5 + 4])


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match=r"`kernel` must be of shape \[K, D\]"):
        pgn.hie_fft(torch.zeros(1, 4, 3), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="`x` must be a 3-D"):
        pgn.hie_toeplitz(torch.zeros(4, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="`window`"):
        pgn.periodic_series(2, period=10, window=5)
