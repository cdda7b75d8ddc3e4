"""Triebe et al. 2019 (AR-Net): lag windows, least squares, the sparsity regulariser, AR-Net = Classic-AR."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course.ssm.papers import ar_net


@settings(max_examples=15, deadline=None)
@given(order=st.integers(1, 10), seed=st.integers(0, 99))
def test_drawn_coefficients_are_sparse_stationary_and_end_at_the_order(order, seed):
    nonzero = min(3, order)
    a = ar_net.sparse_ar_coefficients(order, nonzero, seed)
    assert (a != 0).sum() == nonzero and a[order - 1] != 0
    companion = torch.diag(torch.ones(order - 1, dtype=torch.float64), -1)
    companion[0] = a
    assert torch.linalg.eigvals(companion).abs().max() < 0.95


def test_lag_windows_hold_the_previous_values_newest_first():
    y = torch.arange(10.0)
    X, target = ar_net.lagged(y, 3)
    assert torch.equal(X[0], torch.tensor([2.0, 1.0, 0.0])) and target[0] == 3 and X.shape == (7, 3)


def test_least_squares_recovers_the_process_it_regresses():
    a = torch.tensor([0.5, 0.0, -0.3], dtype=torch.float64)
    y = ar_net.ar_process(a, 3000, noise=1.0, seed=0)
    X, target = ar_net.lagged(y, 3)
    residual = target - X @ a  # the noise itself: regressing it out leaves it
    assert abs(float(residual.std()) - 1.0) < 0.05
    torch.testing.assert_close(ar_net.least_squares_ar(y, 3), a, atol=0.06, rtol=0)


def test_ar_net_without_the_regulariser_learns_the_least_squares_coefficients():
    a = ar_net.sparse_ar_coefficients(4, 2, seed=1)
    y = ar_net.ar_process(a, 300, seed=1)
    torch.testing.assert_close(ar_net.ar_net(y, 4, steps=200), ar_net.least_squares_ar(y, 4),
                               atol=5e-3, rtol=0)


def test_the_regulariser_is_zero_at_zero_increasing_and_saturating():
    t = torch.tensor([0.0, 0.01, 0.1, 1.0, 100.0])
    values = [float(ar_net.sparsity_regulariser(v[None])) for v in t]
    assert values[0] == 0 and values == sorted(values) and values[-1] <= 1
    # steep near zero: the first hundredth costs more than the whole step from 1 to 100
    assert values[1] - values[0] > values[4] - values[3]


def test_estimated_order_and_relative_error():
    assert ar_net.estimated_order(torch.tensor([0.3, 0.01, 0.2, 0.04])) == 3
    assert ar_net.estimated_order(torch.zeros(4)) == 0
    truth = torch.tensor([3.0, 4.0], dtype=torch.float64)
    assert ar_net.relative_error(torch.tensor([3.0, 4.0, 5.0], dtype=torch.float64), truth) == 1.0


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="`nonzero`"):
        ar_net.sparse_ar_coefficients(3, 4, 0)
    with pytest.raises(ValueError, match="`p`"):
        ar_net.lagged(torch.zeros(5), 5)
    with pytest.raises(ValueError, match="`lam` must be >= 0"):
        ar_net.ar_net(torch.zeros(20), 2, lam=-1.0)
    with pytest.raises(ValueError, match="`series` must be finite"):
        ar_net.ar_net(torch.tensor([1.0, float("nan"), 2.0, 3.0]), 1)
