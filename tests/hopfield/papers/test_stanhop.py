"""STanHop's generalized sparse Hopfield retrieval: alpha-entmax against the `entmax` package and its
limits (softmax, sparsemax), the GSH energy never increasing, exact retrieval of a separated window."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

from course.hopfield import modern, sparse
from course.hopfield.papers import stanhop as H
from course.streaming import sparsemax


def generator(seed):
    return torch.Generator().manual_seed(seed)


@settings(max_examples=10, deadline=None)
@given(M=st.integers(1, 30), scale=st.floats(0.1, 20.0), seed=st.integers(0, 999))
def test_alpha_entmax_is_the_entmax_package_and_a_point_of_the_simplex(M, scale, seed):
    entmax = pytest.importorskip("entmax")
    z = scale * torch.randn(3, M, dtype=torch.float64, generator=generator(seed))
    p = H.alpha_entmax(z, 1.5, dim=1)
    assert (p >= 0).all()
    torch.testing.assert_close(p.sum(1), torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(p, entmax.entmax15(z, dim=1))
    expected = entmax.entmax_bisect(z, 1.25, dim=1, n_iter=80)
    torch.testing.assert_close(H.alpha_entmax(z, 1.25, dim=1), expected)


def test_alpha_one_is_softmax_and_alpha_two_is_sparsemax():
    z = 3 * torch.randn(4, 9, dtype=torch.float64, generator=generator(0))
    torch.testing.assert_close(H.alpha_entmax(z, 1, dim=1), z.softmax(1))
    torch.testing.assert_close(H.alpha_entmax(z, 2, dim=1), sparsemax(z, dim=1))
    torch.testing.assert_close(H.alpha_entmax(z.T, 2, dim=0), sparsemax(z, dim=1).T)  # along another dim
    # the support shrinks as alpha grows from 1 (everything) to 2
    sizes = [(H.alpha_entmax(z, a, dim=1) > 0).sum().item() for a in (1.0, 1.5, 2.0)]
    assert sizes[0] == z.numel() and sizes[0] >= sizes[1] >= sizes[2]


def test_gsh_retrieval_and_energy_match_the_library_at_alpha_one_and_two():
    g = generator(1)
    X, x = torch.randn(12, 5, dtype=torch.float64, generator=g), torch.randn(4, 5, dtype=torch.float64,
                                                                           generator=g)
    torch.testing.assert_close(H.gsh_retrieve(x, X, 2.0, 1.0, steps=2), modern.retrieve(x, X, 2.0, steps=2))
    torch.testing.assert_close(H.gsh_retrieve(x, X, 2.0, 2.0, steps=2),
                               sparse.sparse_retrieve(x, X, 2.0, steps=2))
    torch.testing.assert_close(H.gsh_energy(x, X, 2.0, 2.0), sparse.sparse_energy(x, X, 2.0))
    constant = torch.log(torch.tensor(12.0, dtype=torch.float64)) / 2 + 0.5 * (X * X).sum(1).max()
    torch.testing.assert_close(H.gsh_energy(x, X, 2.0, 1.0) + constant, modern.energy(x, X, 2.0))


@settings(max_examples=10, deadline=None)
@given(alpha=st.sampled_from([1.0, 1.25, 1.5, 2.0]), beta=st.floats(0.5, 64.0), seed=st.integers(0, 999))
def test_the_gsh_energy_never_increases_on_time_series_windows(alpha, beta, seed):
    g = generator(seed)
    X, _ = H.series_windows(24, 16, 3, 0.1, g)
    X = X.double()
    xi = X[:4] + 0.3 * torch.randn(4, 16, dtype=torch.float64, generator=g)
    energies = [H.gsh_energy(xi, X, beta, alpha)]
    for _ in range(3):
        xi = H.gsh_retrieve(xi, X, beta, alpha)
        energies.append(H.gsh_energy(xi, X, beta, alpha))
    for before, after in zip(energies, energies[1:]):
        assert (after <= before + 1e-9 * (1 + before.abs())).all()


def test_a_separated_window_is_retrieved_exactly_by_sparse_retrieval_only():
    windows, _ = H.series_windows(64, 32, 4, 0.1, generator(2))
    kept = []
    for w in windows.double():  # store only windows with no near copy among them
        if all(w @ k < 0.9 for k in kept):
            kept.append(w)
    X = torch.stack(kept)
    assert len(X) > 7
    target = X[7]
    query = H.unit_rows((target + 0.02 * torch.randn(32, dtype=torch.float64, generator=generator(3)))[None])
    torch.testing.assert_close(H.gsh_retrieve(query, X, 200.0, 2.0)[0], target, rtol=1e-12, atol=1e-12)
    assert (H.gsh_retrieve(query, X, 200.0, 1.0)[0] - target).abs().max() > 0  # softmax leaks a little


def test_the_windows_are_centred_unit_rows_from_the_given_series():
    X, which = H.series_windows(50, 20, 3, 0.1, generator(4))
    assert X.shape == (50, 20) and which.shape == (50,) and set(which.tolist()) <= {0, 1, 2}
    torch.testing.assert_close(X.norm(dim=1), torch.ones(50))
    torch.testing.assert_close(X.mean(1), torch.zeros(50), atol=1e-6, rtol=0)
    same, _ = H.series_windows(50, 20, 3, 0.1, generator(4))
    assert torch.equal(X, same)


def test_bad_input_is_refused_by_name():
    x, X = torch.randn(3, 4), torch.randn(5, 4)
    for alpha in (0.5, 2.5, True, "2"):
        with pytest.raises(ValueError, match="alpha"):
            H.gsh_retrieve(x, X, 1.0, alpha)
    with pytest.raises(ValueError, match="beta"):
        H.gsh_retrieve(x, X, 0.0, 1.5)
    with pytest.raises(ValueError, match="beta"):
        H.gsh_energy(x, X, -1.0, 1.5)
    with pytest.raises(ValueError, match="share D"):
        H.gsh_retrieve(x, torch.randn(5, 3), 1.0, 1.5)
    with pytest.raises(ValueError, match="at least one stored pattern"):
        H.gsh_retrieve(x, torch.randn(0, 4), 1.0, 1.5)
    with pytest.raises(TypeError, match="z"):
        H.alpha_entmax([1.0, 2.0], 1.5)
    with pytest.raises(ValueError, match="series"):
        H.series_windows(4, 8, 0, 0.1, generator(0))
