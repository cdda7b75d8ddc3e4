"""Dense associative memory (the replica-symmetry-breaking paper's check): energy, dynamics, capacity."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course.hopfield import classical
from course.hopfield.papers import dense_associative as dense


@settings(max_examples=10, deadline=None)
@given(M=st.integers(1, 6), D=st.sampled_from([2, 4, 8, 16]), seed=st.integers(0, 999))
def test_order_two_is_the_classical_network(M, D, seed):
    # D a power of two: the classical couplings +-k / D and their fields are exact, so ties agree
    g = torch.Generator().manual_seed(seed)
    patterns = classical.random_patterns(M, D, g)
    states = classical.random_patterns(3, D, g)
    W = classical.hebbian_weights(patterns)
    expected = classical.update_asynchronous(states, W, torch.Generator().manual_seed(seed))
    got = dense.dense_update_asynchronous(states, patterns, 2, torch.Generator().manual_seed(seed))
    assert torch.equal(got, expected)
    # E_2(s) = -(1/D) sum_mu (xi_mu . s)^2 = 2 E_classical(s) - M
    difference = dense.dense_energy(states, patterns, 2) - (2 * classical.energy(states, W).double() - M)
    assert difference.abs().max() < 1e-5


@settings(max_examples=10, deadline=None)
@given(M=st.integers(1, 30), D=st.integers(2, 16), n=st.sampled_from([2, 3, 4]), seed=st.integers(0, 999))
def test_zero_temperature_sweeps_never_increase_the_dense_energy(M, D, n, seed):
    g = torch.Generator().manual_seed(seed)
    patterns = classical.random_patterns(M, D, g)
    state = classical.random_patterns(4, D, g)
    for _ in range(3):
        new = dense.dense_update_asynchronous(state, patterns, n, g)
        assert (dense.dense_energy(new, patterns, n) <= dense.dense_energy(state, patterns, n) + 1e-9).all()
        state = new


def test_order_four_stores_patterns_far_beyond_the_pairwise_capacity():
    g = torch.Generator().manual_seed(0)
    patterns = classical.random_patterns(64, 32, g)  # M = 2 D: the pairwise network holds ~0.14 D
    assert dense.retrieved_fraction(patterns, 4, g) >= 0.9
    assert dense.retrieved_fraction(patterns, 2, g) <= 0.2
    assert torch.equal(dense.dense_recall(patterns[:8], patterns, 4, 3, g), patterns[:8])


def test_a_batch_of_memories_runs_as_separate_ones_with_the_same_order():
    g = torch.Generator().manual_seed(1)
    memories = classical.random_patterns(3 * 5, 12, g).reshape(3, 5, 12)
    states = classical.random_patterns(3 * 2, 12, g).reshape(3, 2, 12)
    together = dense.dense_update_asynchronous(states, memories, 4, torch.Generator().manual_seed(7))
    for t in range(3):
        alone = dense.dense_update_asynchronous(states[t], memories[t], 4, torch.Generator().manual_seed(7))
        assert torch.equal(together[t], alone)


def test_glauber_dynamics_at_a_high_temperature_is_a_coin_flip():
    g = torch.Generator().manual_seed(2)
    patterns = classical.random_patterns(4, 200, g)
    hot = dense.dense_update_asynchronous(patterns.clone(), patterns, 4, g, temperature=1e9)
    assert 0.4 < float((hot != patterns).float().mean()) < 0.6
    cold = dense.dense_update_asynchronous(patterns.clone(), patterns, 4, g, temperature=1e-9)
    assert torch.equal(cold, patterns)


def test_growth_exponent_reads_a_power_law():
    dims = (16, 32, 48)
    assert dense.growth_exponent(dims, [d ** 3 for d in dims]) == pytest.approx(3.0)
    assert dense.growth_exponent(dims, [math.ceil(0.14 * d) for d in dims]) < 1.5


def test_bad_input_names_the_argument():
    x = torch.ones(2, 4)
    with pytest.raises(ValueError, match="`n`"):
        dense.dense_energy(x, x, 1)
    with pytest.raises(ValueError, match="must share T and D"):
        dense.dense_energy(torch.ones(2, 5), x, 4)
    with pytest.raises(ValueError, match="`patterns` must hold \\+1 and -1"):
        dense.dense_energy(x, torch.zeros(2, 4), 4)
    with pytest.raises(ValueError, match="`temperature`"):
        dense.dense_update_asynchronous(x, x, 4, temperature=-1.0)
    with pytest.raises(ValueError, match="`sweeps`"):
        dense.dense_recall(x, x, 4, -1)
