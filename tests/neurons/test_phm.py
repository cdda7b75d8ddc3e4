"""The PHM layer: its weight is the sum of its Kronecker products, the block form never forms it and agrees,
it has about 1/n of the weights, and bad input is named."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

from course.neurons import phm as P


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 5), a=st.integers(1, 4), c=st.integers(1, 4), seed=st.integers(0, 99))
def test_the_weight_is_the_sum_of_its_kronecker_products(n, a, c, seed):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(n, n, n, dtype=torch.float64, generator=g)
    F = torch.randn(n, a, c, dtype=torch.float64, generator=g)
    W = P.phm_weight(A, F)
    assert W.shape == (n * a, n * c)
    for r in range(n):  # block (r, p) of W is sum_i A_i[r, p] F_i
        for p in range(n):
            block = W[r * a:(r + 1) * a, p * c:(p + 1) * c]
            torch.testing.assert_close(block, sum(A[i, r, p] * F[i] for i in range(n)))
    x = torch.randn(7, n * a, dtype=torch.float64, generator=g)
    torch.testing.assert_close(P.phm_linear_blocks(x, A, F), x @ W)
    torch.testing.assert_close(P.phm_linear(x, A, F), x @ W)


def test_n_equal_one_is_a_dense_layer_and_the_count_is_a_fraction_n():
    F = torch.randn(1, 5, 3, dtype=torch.float64)
    x = torch.randn(4, 5, dtype=torch.float64)
    torch.testing.assert_close(P.phm_linear(x, torch.full((1, 1, 1), 2.0, dtype=torch.float64), F), 2 * x @ F[0])
    phm, dense = P.parameter_counts(512, 512, 4)
    assert phm == 64 + 512 * 512 // 4 and dense / phm > 3.99


def test_bad_input_names_the_argument():
    x, A, F = torch.randn(3, 8), torch.randn(4, 4, 4), torch.randn(4, 2, 3)
    with pytest.raises(ValueError, match="`A` must be \\[n, n, n\\]"):
        P.phm_linear(x, torch.randn(4, 4, 3), F)
    with pytest.raises(ValueError, match="`F` must be \\[n, I / n, O / n\\]"):
        P.phm_linear(x, A, torch.randn(3, 2, 3))
    with pytest.raises(ValueError, match="`x` must be \\[B, I\\]"):
        P.phm_linear(torch.randn(3, 9), A, F)
    with pytest.raises(TypeError, match="`F` must have x's dtype"):
        P.phm_linear(x, A, F.double())
