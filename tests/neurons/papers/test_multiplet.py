"""The weighted Lehmer mean: a mean (between the least and the largest input), the arithmetic mean at
p = 1, harmonic times arithmetic is the product of two numbers, min and max at extreme p, and bad input
is named."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

from course.neurons.papers import multiplet as M


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 6), p=st.floats(-30, 30), seed=st.integers(0, 999))
def test_the_lehmer_mean_lies_between_the_least_and_the_largest_input(n, p, seed):
    g = torch.Generator().manual_seed(seed)
    x = 0.1 + 5 * torch.rand(7, n, generator=g, dtype=torch.float64)
    w = torch.rand(n, 3, generator=g, dtype=torch.float64) + 1e-3
    out = M.lehmer_mean(x, w, torch.full((1, 3), p, dtype=torch.float64))  # [7, 1, 3]
    low, high = x.min(1).values[:, None, None], x.max(1).values[:, None, None]
    assert (out >= low * (1 - 1e-9)).all() and (out <= high * (1 + 1e-9)).all()


def test_p_one_is_the_weighted_arithmetic_mean_and_extremes_are_min_and_max():
    x = torch.tensor([[1.0, 2.0, 4.0], [3.0, 3.0, 0.5]], dtype=torch.float64)
    w = torch.tensor([[1.0], [2.0], [5.0]], dtype=torch.float64)
    p = torch.tensor([[1.0], [200.0], [-200.0]], dtype=torch.float64)
    out = M.lehmer_mean(x, w, p)[:, :, 0]
    torch.testing.assert_close(out[:, 0], (x @ w)[:, 0] / w.sum())
    torch.testing.assert_close(out[:, 1], x.max(1).values, rtol=1e-2, atol=0)
    torch.testing.assert_close(out[:, 2], x.min(1).values, rtol=1e-2, atol=0)


def test_a_multiplet_multiplies_two_positive_numbers():
    a = torch.tensor([0.5, 2.0, 7.0], dtype=torch.float64)
    b = torch.tensor([3.0, 2.0, 0.1], dtype=torch.float64)
    torch.testing.assert_close(M.product_of_two(a, b), a * b)
    half = M.lehmer_mean(torch.stack([a, b], 1), torch.ones(2, 1, dtype=torch.float64),
                         torch.full((1, 1), 0.5, dtype=torch.float64))[:, 0, 0]
    torch.testing.assert_close(half ** 2, a * b)  # the geometric mean


def test_the_multiplet_shares_its_weights_and_xor_data_are_positive():
    layer = M.Multiplet(2, 3, p_init=(-1.0, 0.0, 2.0))
    assert layer.log_w.shape == (2, 3) and layer.p.shape == (3, 3)
    assert layer(torch.rand(5, 2) + 1).shape == (5, 9)
    x, y = M.xor_data(64, 0)
    assert (x >= 1).all() and (x <= 2).all() and set(y.tolist()) <= {0, 1}


def test_bad_input_is_named():
    w, p = torch.ones(2, 1), torch.ones(1, 1)
    with pytest.raises(ValueError, match="`x` must be > 0"):
        M.lehmer_mean(torch.tensor([[1.0, -1.0]]), w, p)
    with pytest.raises(ValueError, match="`w` must be >= 0"):
        M.lehmer_mean(torch.ones(1, 2), -w, p)
    with pytest.raises(ValueError, match="expected x \\[N, I\\]"):
        M.lehmer_mean(torch.ones(1, 3), w, p)
    with pytest.raises(ValueError, match="`p` must be finite"):
        M.lehmer_mean(torch.ones(1, 2), w, torch.full((1, 1), float("nan")))
    with pytest.raises(TypeError, match="`x` must be a floating-point tensor"):
        M.lehmer_mean(torch.ones(1, 2, dtype=torch.long), w, p)
    with pytest.raises(ValueError, match="`x \\+ shift` must be > 0"):
        M.make_positive(torch.tensor([-2.0]))
