"""Willshaw memory under insertions and erasures (the recurrent-Hebbian-under-noise paper's check)."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course.hopfield.papers import hebbian_noise as hn


@settings(max_examples=20, deadline=None)
@given(M=st.integers(1, 5), c=st.integers(1, 8), erased=st.integers(0, 8), inserted=st.integers(0, 8),
       seed=st.integers(0, 999))
def test_noise_erases_and_inserts_exactly_the_counts_asked(M, c, erased, inserted, seed):
    g = torch.Generator().manual_seed(seed)
    patterns = hn.sparse_binary_patterns(M, 32, c, g)
    assert (patterns.sum(1) == c).all()
    erased = min(erased, c)
    out = hn.noisy(patterns, erased, inserted, g)
    assert ((out * patterns).sum(1) == c - erased).all()
    assert ((out * (1 - patterns)).sum(1) == inserted).all()


def test_willshaw_weights_hold_every_stored_clique_and_nothing_else():
    patterns = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 1.0, 1.0, 0.0]])
    W = hn.willshaw_weights(patterns)
    expected = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]).float()
    assert torch.equal(W, expected)


def test_retrieval_completes_an_erased_cue_and_drops_inserted_units():
    g = torch.Generator().manual_seed(0)
    patterns = hn.sparse_binary_patterns(20, 128, 6, g)
    W = hn.willshaw_weights(patterns)
    assert torch.equal(hn.willshaw_retrieve(patterns, W, 6), patterns)
    assert hn.retrieval_accuracy(patterns, W, 2, 0, g) >= 0.9
    assert hn.retrieval_accuracy(patterns, W, 0, 2, g) >= 0.9


def test_consolidation_without_noise_is_the_willshaw_memory_and_erasures_only_remove_couplings():
    g = torch.Generator().manual_seed(1)
    patterns = hn.sparse_binary_patterns(30, 64, 5, g)
    W = hn.willshaw_weights(patterns)
    assert torch.equal(hn.consolidated_weights(patterns, 3, 3, 0, 0, g), W)
    erased_only = hn.consolidated_weights(patterns, 4, 2, 1, 0, g)
    assert (erased_only <= W).all()
    missing, spurious = hn.agreement(erased_only, W)
    assert spurious == 0 and 0 <= missing < 1


def test_noise_check_gives_rates_that_fall_with_the_noise():
    out = hn.noise_check(0)
    erased = [out[f"erased_{e}"] for e in hn.ERASED_LEVELS]
    assert erased[0] == 1 and erased[-1] < erased[0]
    assert out["consolidated_missing"] < out["single_missing"]
    assert out["consolidated_spurious"] < out["single_spurious"]


def test_bad_input_names_the_argument():
    g = torch.Generator()
    with pytest.raises(ValueError, match="`c`"):
        hn.sparse_binary_patterns(2, 4, 5, g)
    with pytest.raises(ValueError, match="`patterns` must hold 0 and 1"):
        hn.willshaw_weights(torch.tensor([[1.0, -1.0]]))
    with pytest.raises(ValueError, match="`erased`"):
        hn.noisy(torch.tensor([[1.0, 0.0, 0.0]]), 2, 0, g)
    with pytest.raises(ValueError, match="`W` must be \\[D, D\\]"):
        hn.willshaw_retrieve(torch.zeros(1, 4), torch.zeros(3, 3), 1)
    with pytest.raises(ValueError, match="`keep`"):
        hn.consolidated_weights(torch.zeros(1, 4), 2, 3, 0, 0, g)
