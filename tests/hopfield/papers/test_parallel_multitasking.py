"""Agliari et al. 2023 (multitasking Hebbian network): dilution, couplings, the dynamics, magnetisations."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course.hopfield import classical
from course.hopfield.papers import parallel_multitasking as pm


@pytest.mark.parametrize("d", [0.0, 0.3, 0.8])
def test_dilution_sets_the_fraction_of_zeros_and_balanced_signs(d):
    xi = pm.diluted_patterns(4, 20_000, d, torch.Generator().manual_seed(0))
    assert set(xi.unique().tolist()) <= {-1.0, 0.0, 1.0}
    assert abs(float((xi == 0).float().mean()) - d) < 0.01
    assert abs(float(xi.mean())) < 0.01


def test_couplings_are_hebbs_with_zero_diagonal_and_match_the_classical_ones_undiluted():
    g = torch.Generator().manual_seed(1)
    xi = pm.diluted_patterns(3, 10, 0.0, g)
    assert torch.equal(pm.multitasking_weights(xi), classical.hebbian_weights(xi))
    J = pm.multitasking_weights(pm.diluted_patterns(3, 10, 0.5, g))
    assert torch.equal(J, J.T) and (J.diagonal() == 0).all()


@settings(max_examples=12, deadline=None)
@given(K=st.integers(1, 4), N=st.sampled_from([16, 32, 64]), d=st.floats(0, 0.9), seed=st.integers(0, 999))
def test_the_sweep_is_the_classical_asynchronous_sweep_and_never_raises_the_energy(K, N, d, seed):
    g = torch.Generator().manual_seed(seed)
    xi = pm.diluted_patterns(K, N, d, g)
    J = pm.multitasking_weights(xi)  # N a power of two: J's entries and the fields are exact
    states = classical.random_patterns(3, N, g)
    got = pm.update_asynchronous(states, xi, torch.Generator().manual_seed(seed))
    assert torch.equal(got, classical.update_asynchronous(states, J, torch.Generator().manual_seed(seed)))
    assert (classical.energy(got, J) <= classical.energy(states, J) + 1e-6).all()


def test_an_undiluted_cue_is_a_fixed_point_with_one_magnetisation():
    g = torch.Generator().manual_seed(2)
    xi = pm.diluted_patterns(3, 2000, 0.0, g)
    final = pm.relax(pm.cue(xi, g), xi, g)
    assert torch.equal(final, xi)
    m = pm.mattis_magnetisations(final, xi)
    assert torch.equal(m.diagonal(), torch.ones(3)) and (m - torch.eye(3)).abs().max() < 0.1


def test_two_diluted_patterns_are_retrieved_at_once_with_the_predicted_amplitudes():
    g = torch.Generator().manual_seed(3)
    m = pm.retrieve_all_cues(0.5, g, K=2, N=2000)
    assert (m - pm.hierarchical_amplitudes(0.5, 2)).abs().max() < 0.05  # 0.5 and 0.25


def test_cue_fills_the_blanks_with_signs_and_keeps_the_rest():
    xi = pm.diluted_patterns(2, 100, 0.5, torch.Generator().manual_seed(4))
    c = pm.cue(xi, torch.Generator().manual_seed(5))
    assert ((c == 1) | (c == -1)).all() and torch.equal(c[xi != 0], xi[xi != 0])


def test_bad_input_names_the_argument():
    g = torch.Generator()
    with pytest.raises(ValueError, match="`d` must be a dilution in \\[0, 1\\)"):
        pm.diluted_patterns(2, 10, 1.0, g)
    with pytest.raises(ValueError, match="`patterns` must hold -1, 0 and \\+1"):
        pm.multitasking_weights(torch.full((2, 3), 0.5))
    with pytest.raises(ValueError, match="`states` must be \\[S, N\\]"):
        pm.update_asynchronous(torch.ones(1, 4), torch.ones(2, 5), g)
    with pytest.raises(ValueError, match="`states` must hold \\+1 and -1"):
        pm.update_asynchronous(torch.zeros(1, 5), torch.ones(2, 5), g)
    with pytest.raises(ValueError, match="`K`"):
        pm.hierarchical_amplitudes(0.3, 0)
