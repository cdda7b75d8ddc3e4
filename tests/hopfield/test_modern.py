"""The modern Hopfield network: the energy never increases, large beta retrieves the nearest pattern, one
update is attention, and bad input is named."""
import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from course.hopfield import modern as H


def memory(M, D, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(M, D, generator=g, dtype=torch.float64), g


@settings(max_examples=30, deadline=None)
@given(M=st.integers(1, 40), D=st.integers(1, 12), beta=st.floats(0.01, 20.0), seed=st.integers(0, 999))
def test_the_energy_never_increases_under_the_update(M, D, beta, seed):
    """Theorem 1 of Ramsauer et al.: the update is the concave-convex procedure on eq. 2's energy."""
    X, g = memory(M, D, seed)
    xi = torch.randn(3, D, generator=g, dtype=torch.float64) * 2
    for _ in range(5):
        new = H.update(xi, X, beta)
        assert (H.energy(new, X, beta) <= H.energy(xi, X, beta) + 1e-10).all()
        xi = new


@settings(max_examples=20, deadline=None)
@given(M=st.integers(2, 30), D=st.integers(2, 10), seed=st.integers(0, 999))
def test_large_beta_retrieves_the_nearest_stored_pattern(M, D, seed):
    """As beta -> infinity the softmax becomes an argmax of xi . x_j: for patterns of one norm, the one
    nearest to the query."""
    X, g = memory(M, D, seed)
    X = X / X.norm(dim=1, keepdim=True)  # one norm: the largest dot product is the nearest pattern
    xi = torch.randn(4, D, generator=g, dtype=torch.float64)
    nearest = torch.cdist(xi, X).argmin(1)
    gaps = (xi @ X.T).sort(1, descending=True).values
    if (gaps[:, 0] - gaps[:, 1]).min() < 1e-3:
        return  # a near tie: no finite beta separates it
    torch.testing.assert_close(H.retrieve(xi, X, 1e6), X[nearest])


def test_one_update_is_attention_with_queries_xi_and_keys_and_values_x():
    X, g = memory(50, 16, seed=1)
    xi = torch.randn(7, 16, generator=g, dtype=torch.float64)
    attention = torch.nn.functional.scaled_dot_product_attention(xi[None], X[None], X[None], scale=0.3)[0]
    torch.testing.assert_close(H.retrieve(xi, X, 0.3), attention)
    torch.testing.assert_close(H.retrieve_sdpa(xi, X, 0.3), attention)
    torch.testing.assert_close(H.retrieve_online(xi, X, 0.3, steps=3), H.retrieve(xi, X, 0.3, steps=3))


def test_the_energy_is_eq_2_and_small_beta_averages_the_patterns():
    X, _ = memory(6, 3, seed=2)
    xi = torch.randn(3, dtype=torch.float64)
    beta = 0.7
    lse = math.log(sum(math.exp(beta * v) for v in (X @ xi).tolist())) / beta
    expected = -lse + 0.5 * xi @ xi + math.log(6) / beta + 0.5 * (X * X).sum(1).max()
    torch.testing.assert_close(H.energy(xi, X, beta), expected)
    # beta -> 0: every weight 1/M, the update is the mean of the patterns (the global fixed point)
    torch.testing.assert_close(H.retrieve(xi[None], X, 1e-9)[0], X.mean(0))


def test_a_well_separated_pattern_is_retrieved_in_one_step():
    """Theorem 4: with separation above the bound, one update lands within a tiny error of the pattern."""
    D = 64
    X, g = memory(20, D, seed=3)
    beta = 1.0
    assert (H.separation(X) > H.one_step_threshold(X, beta)).all()
    xi = X + 0.3 * torch.randn(20, D, generator=g, dtype=torch.float64)
    assert (H.retrieve(xi, X, beta) - X).norm(dim=1).max() < 1e-6


def test_trajectory_starts_at_the_query_and_its_energies_fall():
    X, g = memory(10, 4, seed=4)
    path, energies = H.trajectory(torch.randn(4, generator=g, dtype=torch.float64), X, 2.0, steps=4)
    assert path.shape == (5, 4) and energies.shape == (5,)
    assert (energies.diff() <= 1e-12).all()


def test_bad_input_names_the_argument():
    X, _ = memory(10, 4, seed=0)
    xi = torch.randn(3, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="must share D"):
        H.retrieve(torch.randn(3, 5, dtype=torch.float64), X, 1.0)
    for beta in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="`beta` must be positive and finite"):
            H.retrieve(xi, X, beta)
    with pytest.raises(TypeError, match="`beta` must be a positive number"):
        H.retrieve(xi, X, "1")
    with pytest.raises(ValueError, match="at least one stored pattern"):
        H.retrieve(xi, X[:0], 1.0)
    with pytest.raises(TypeError, match="`patterns` must have the queries' dtype"):
        H.retrieve(xi, X.float(), 1.0)
    with pytest.raises(ValueError, match="`steps` must be an int"):
        H.retrieve(xi, X, 1.0, steps=0)
    with pytest.raises(ValueError, match="`queries` must be a 2-D tensor"):
        H.retrieve(xi[0], X, 1.0)
    with pytest.raises(ValueError, match="`beta` must be positive"):
        H.energy(xi, X, 0.0)
