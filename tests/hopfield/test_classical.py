"""The classical binary Hopfield network: Hebb's couplings, the energy under updates, fixed points, flips."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course.hopfield import classical


def patterns_of(M, D, seed):
    return classical.random_patterns(M, D, torch.Generator().manual_seed(seed))


@settings(max_examples=25, deadline=None)
@given(M=st.integers(1, 6), D=st.integers(2, 24), seed=st.integers(0, 10_000))
def test_asynchronous_updates_never_increase_the_energy(M, D, seed):
    g = torch.Generator().manual_seed(seed)
    W = classical.hebbian_weights(classical.random_patterns(M, D, g))
    state = classical.random_patterns(3, D, g)
    energies = [classical.energy(state, W)]
    for _ in range(3):
        state = classical.update_asynchronous(state, W, g)
        energies.append(classical.energy(state, W))
    for before, after in zip(energies, energies[1:]):
        assert (after <= before + 1e-5).all()
    assert ((state == 1) | (state == -1)).all()


@settings(max_examples=20, deadline=None)
@given(D=st.integers(2, 40), seed=st.integers(0, 10_000))
def test_one_stored_pattern_and_its_negative_are_fixed_points(D, seed):
    s = patterns_of(1, D, seed)
    W = classical.hebbian_weights(s)
    both = torch.cat([s, -s])
    g = torch.Generator().manual_seed(seed)
    assert torch.equal(classical.update_synchronous(both, W), both)
    assert torch.equal(classical.update_asynchronous(both, W, g), both)
    assert torch.equal(classical.recall(both, W, 5, g), both)


@settings(max_examples=25, deadline=None)
@given(M=st.integers(1, 5), D=st.integers(1, 50), fraction=st.floats(0, 1), seed=st.integers(0, 10_000))
def test_flip_flips_exactly_round_fraction_d_units_of_each_pattern(M, D, fraction, seed):
    s = patterns_of(M, D, seed)
    flipped = classical.flip(s, fraction, torch.Generator().manual_seed(seed + 1))
    assert ((flipped != s).sum(1) == round(fraction * D)).all()
    assert torch.equal(flipped.abs(), s.abs())


def test_hebbian_weights_are_the_symmetric_outer_products_over_d_with_zero_diagonal():
    s = patterns_of(3, 7, 0)
    W = classical.hebbian_weights(s)
    expected = sum(torch.outer(p, p) for p in s) / 7
    expected.fill_diagonal_(0)
    assert torch.allclose(W, expected)
    assert torch.equal(W, W.T) and (W.diagonal() == 0).all()


def test_sign_of_zero_is_plus_one_and_overlap_counts_agreement():
    assert torch.equal(classical.sgn(torch.tensor([-0.5, 0.0, 2.0])), torch.tensor([-1.0, 1.0, 1.0]))
    s = patterns_of(2, 10, 1)
    assert torch.equal(classical.overlap(s, s), torch.ones(2))
    assert torch.equal(classical.overlap(-s, s), -torch.ones(2))


def test_synchronous_updates_can_cycle_where_asynchronous_ones_settle():
    W = torch.tensor([[0.0, -1.0], [-1.0, 0.0]])  # an antiferromagnetic pair
    s = torch.tensor([[1.0, 1.0]])
    once = classical.update_synchronous(s, W)
    assert torch.equal(once, -s) and torch.equal(classical.update_synchronous(once, W), s)
    settled = classical.recall(s, W, 5, torch.Generator().manual_seed(0))
    assert settled[0, 0] == -settled[0, 1]


def test_recall_of_a_well_inside_capacity_memory_corrects_flipped_units():
    g = torch.Generator().manual_seed(3)
    s = classical.random_patterns(3, 100, g)
    out = classical.recall(classical.flip(s, 0.1, g), classical.hebbian_weights(s), 10, g)
    assert torch.equal(out, s)
    assert torch.equal(classical.recall(s[:1] * 0 + 1, classical.hebbian_weights(s), 0, g), s[:1] * 0 + 1)


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="`patterns` must hold \\+1 and -1"):
        classical.hebbian_weights(torch.tensor([[0.0, 1.0]]))
    with pytest.raises(ValueError, match="`patterns` must be a 2-D tensor"):
        classical.hebbian_weights(torch.ones(4))
    with pytest.raises(TypeError, match="`patterns` must be a floating-point tensor"):
        classical.hebbian_weights(torch.ones(2, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="`sweeps`"):
        classical.recall(torch.ones(1, 3), torch.zeros(3, 3), -1)
    with pytest.raises(ValueError, match="`fraction` must be in \\[0, 1\\]"):
        classical.flip(torch.ones(2, 4), 1.5, torch.Generator())
    with pytest.raises(ValueError, match="`patterns` must be a 2-D tensor"):
        classical.flip(torch.ones(4), 0.5, torch.Generator())
