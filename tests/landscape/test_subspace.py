"""The fast Walsh-Hadamard transform and the random-subspace projections (Li et al. 2018, section 2)."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course.landscape import subspace


@settings(max_examples=25, deadline=None)
@given(log_l=st.integers(0, 8), rows=st.integers(1, 3), seed=st.integers(0, 10_000))
def test_fwht_equals_the_dense_hadamard_product_and_is_orthogonal_up_to_scale(log_l, rows, seed):
    L = 2 ** log_l
    x = torch.randn(rows, L, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    y = subspace.fwht(x)
    torch.testing.assert_close(y, x @ subspace.hadamard_matrix(L, torch.float64).T)
    torch.testing.assert_close(subspace.fwht(y), L * x)  # H H = L I
    torch.testing.assert_close(y.norm(dim=1), math.sqrt(L) * x.norm(dim=1))


def test_the_hadamard_matrix_has_orthogonal_rows_of_plus_minus_one():
    H = subspace.hadamard_matrix(16, torch.float64)
    assert set(H.unique().tolist()) == {-1.0, 1.0}
    torch.testing.assert_close(H @ H.T, 16 * torch.eye(16, dtype=torch.float64))


def test_fwht_gradient_is_the_transform_of_the_upstream_gradient():
    x = torch.randn(2, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(subspace.fwht, (x,))


def test_fwht_rejects_lengths_that_are_not_powers_of_two_and_integer_input():
    with pytest.raises(ValueError, match="`x`.*power of two"):
        subspace.fwht(torch.zeros(6))
    with pytest.raises(TypeError, match="`x`"):
        subspace.fwht(torch.zeros(8, dtype=torch.int64))
    with pytest.raises(ValueError, match="`L`"):
        subspace.hadamard_matrix(12)


def test_next_power_of_two():
    assert [subspace.next_power_of_two(n) for n in (1, 2, 3, 983, 1024, 1025)] == [1, 2, 4, 1024, 1024, 2048]


def test_the_dense_projection_has_unit_columns():
    P = subspace.dense_projection(300, 7, seed=3)
    assert P.shape == (300, 7)
    torch.testing.assert_close(P.norm(dim=0), torch.ones(7))
    with pytest.raises(ValueError, match="`d`"):
        subspace.dense_projection(5, 6)


def test_fastfood_is_the_linear_map_of_its_matrix_with_unit_columns_when_unpadded():
    ff = subspace.FastfoodProjection(64, 10, seed=1, dtype=torch.float64)  # D = L: no truncation
    P = ff.matrix()
    assert P.shape == (64, 10)
    torch.testing.assert_close(P.norm(dim=0), torch.ones(10, dtype=torch.float64))
    z = torch.randn(3, 10, dtype=torch.float64)
    torch.testing.assert_close(ff(z), z @ P.T)
    padded = subspace.FastfoodProjection(983, 32, seed=2, dtype=torch.float64)
    assert padded.L == 1024
    assert abs(float((padded.matrix() ** 2).sum(0).mean()) - 1) < 0.1  # unit columns on average


def test_subspace_theta_starts_at_theta0_and_checks_shapes():
    theta0 = torch.randn(20)
    for projection in (subspace.dense_projection(20, 4), subspace.FastfoodProjection(20, 4)):
        torch.testing.assert_close(subspace.subspace_theta(theta0, projection, torch.zeros(4)), theta0)
    with pytest.raises(ValueError, match="`projection`"):
        subspace.subspace_theta(theta0, torch.zeros(19, 4), torch.zeros(4))
    with pytest.raises(ValueError, match="`z`"):
        subspace.subspace_theta(theta0, subspace.FastfoodProjection(20, 4), torch.zeros(5))
    with pytest.raises(ValueError, match="`z`.*finite"):
        subspace.subspace_theta(theta0, subspace.dense_projection(20, 4), torch.full((4,), math.nan))
