"""course.hopfield.sparse: sparsemax retrieval (Hu et al. 2023; STanHop): its weights are a point of the
simplex equal to the `entmax` package's, its energy never increases under the update, a well-separated
pattern comes back exactly in one step, and bad input is refused by name."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

from course.hopfield import sparse as S
from course.streaming import sparsemax


def generator(seed):
    return torch.Generator().manual_seed(seed)


@settings(max_examples=20, deadline=None)
@given(N=st.integers(1, 6), M=st.integers(1, 40), scale=st.floats(0.01, 50.0), seed=st.integers(0, 999))
def test_sparsemax_is_a_point_of_the_simplex_equal_to_the_entmax_package(N, M, scale, seed):
    entmax = pytest.importorskip("entmax")
    z = scale * torch.randn(N, M, dtype=torch.float64, generator=generator(seed))
    p = sparsemax(z, dim=1)
    assert (p >= 0).all()
    torch.testing.assert_close(p.sum(1), torch.ones(N, dtype=torch.float64))
    torch.testing.assert_close(p, entmax.sparsemax(z, dim=1))
    # the support is the patterns above the threshold: every zero weight has a lower score than every
    # nonzero one
    for row, w in zip(z, p):
        if (w == 0).any():
            assert row[w == 0].max() <= row[w > 0].min()


def test_the_three_retrievals_agree():
    g = generator(1)
    x, X = torch.randn(7, 5, dtype=torch.float64, generator=g), torch.randn(30, 5, dtype=torch.float64,
                                                                           generator=g)
    expected = S.sparse_retrieve(x, X, 2.0, steps=2)
    torch.testing.assert_close(S.sparse_retrieve_online(x, X, 2.0, steps=2), expected)
    pytest.importorskip("entmax")
    torch.testing.assert_close(S.sparse_retrieve_entmax(x, X, 2.0, steps=2), expected)


@settings(max_examples=25, deadline=None)
@given(M=st.integers(1, 12), D=st.integers(1, 6), beta=st.floats(0.05, 20.0), seed=st.integers(0, 999))
def test_the_sparse_energy_never_increases_under_the_update(M, D, beta, seed):
    g = generator(seed)
    X = torch.randn(M, D, dtype=torch.float64, generator=g)
    xi = 2 * torch.randn(4, D, dtype=torch.float64, generator=g)
    energies = [S.sparse_energy(xi, X, beta)]
    for _ in range(4):
        xi = S.sparse_retrieve(xi, X, beta)
        energies.append(S.sparse_energy(xi, X, beta))
    for before, after in zip(energies, energies[1:]):
        assert (after <= before + 1e-9 * (1 + before.abs())).all()


def test_the_energy_is_the_gini_conjugate_form():
    g = generator(2)
    X, xi = torch.randn(9, 4, dtype=torch.float64, generator=g), torch.randn(3, 4, dtype=torch.float64,
                                                                            generator=g)
    z = 1.5 * xi @ X.T
    p = sparsemax(z, dim=1)
    conjugate = (p * z).sum(1) - 0.5 * (p * p).sum(1) + 0.5
    torch.testing.assert_close(S.sparse_energy(xi, X, 1.5), -conjugate / 1.5 + 0.5 * (xi * xi).sum(1))
    # Psi* is the largest <p, z> - Psi(p) over the simplex: no vertex does better than p*
    at_vertices = z  # <e_j, z> - Psi(e_j), with Psi(e_j) = 1/2 |e_j|^2 - 1/2 = 0
    assert (S.gini_conjugate(z)[:, None] >= at_vertices - 1e-12).all()


def test_a_well_separated_pattern_is_retrieved_exactly_in_one_step():
    g = generator(3)
    X = torch.nn.functional.normalize(torch.randn(20, 16, dtype=torch.float64, generator=g), dim=1)
    query = X[5] + 0.05 * torch.randn(16, dtype=torch.float64, generator=g)
    assert S.support_size(query[None], X, 100.0).item() == 1  # only the own pattern has weight
    torch.testing.assert_close(S.sparse_retrieve(query[None], X, 100.0)[0], X[5], rtol=1e-12, atol=1e-12)
    # at small beta the support holds many patterns: the retrieval is an average, not the pattern
    assert S.support_size(query[None], X, 0.5).item() > 1


@pytest.mark.parametrize("fn", [S.sparse_retrieve, S.sparse_retrieve_online])
def test_bad_input_is_refused_by_name(fn):
    x, X = torch.randn(3, 4), torch.randn(5, 4)
    for beta in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="beta"):
            fn(x, X, beta)
    with pytest.raises(ValueError, match="share D"):
        fn(x, torch.randn(5, 3), 1.0)
    with pytest.raises(ValueError, match="at least one stored pattern"):
        fn(x, torch.randn(0, 4), 1.0)
    with pytest.raises(ValueError, match="steps"):
        fn(x, X, 1.0, steps=0)
    with pytest.raises(TypeError, match="queries"):
        fn(x.numpy(), X, 1.0)


def test_the_energy_and_support_refuse_a_bad_beta():
    x, X = torch.randn(3, 4), torch.randn(5, 4)
    with pytest.raises(ValueError, match="beta"):
        S.sparse_energy(x, X, 0.0)
    with pytest.raises(ValueError, match="beta"):
        S.support_size(x, X, -2.0)
