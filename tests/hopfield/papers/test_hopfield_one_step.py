"""Ramsauer et al. 2020 (one-step retrieval): masking, errors, the glyph memory, one update."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course import data
from course.hopfield import classical, modern
from course.hopfield.papers import hopfield_one_step as one


@settings(max_examples=20, deadline=None)
@given(M=st.integers(1, 4), D=st.integers(1, 40), fraction=st.floats(0, 1), seed=st.integers(0, 999))
def test_mask_zeroes_exactly_round_fraction_d_units_and_keeps_the_rest(M, D, fraction, seed):
    g = torch.Generator().manual_seed(seed)
    s = classical.random_patterns(M, D, g)
    masked = one.mask(s, fraction, g)
    assert ((masked == 0).sum(1) == round(fraction * D)).all()
    assert torch.equal(masked[masked != 0], s[masked != 0])


def test_errors_and_distances():
    s = torch.tensor([[1.0, -1.0, 1.0, -1.0]])
    assert one.bit_error(torch.tensor([[0.3, -2.0, -0.1, 0.0]]), s) == 0.5  # sgn(0) = +1 is wrong for -1
    assert one.relative_distance(s, s) == 0
    assert one.relative_distance(torch.zeros(1, 4), s) == 1


def test_one_update_retrieves_half_masked_and_flipped_patterns_exactly():
    g = torch.Generator().manual_seed(0)
    patterns = classical.random_patterns(100, 100, g)
    for kind in ("flip", "mask"):
        state = modern.retrieve(one.corrupt(patterns, kind, g), patterns, one.BETA, steps=1)
        assert one.bit_error(state, patterns) == 0
        assert one.relative_distance(state, patterns) < 1e-4


def test_the_classical_network_corrects_corruption_inside_its_capacity_only():
    g = torch.Generator().manual_seed(1)
    few = classical.random_patterns(3, 100, g)
    assert one.classical_error(few, one.corrupt(few, "flip", g), g) == 0
    many = classical.random_patterns(100, 100, g)
    assert one.classical_error(many, one.corrupt(many, "flip", g), g) > 0.05


def test_glyph_memory_holds_every_glyph_at_every_place_and_clean_queries_match_it():
    memory = one.glyph_memory()
    assert memory.shape == (16, 64) and len(set(map(tuple, memory.tolist()))) == 16
    assert ((memory == 1) | (memory == -1)).all()
    assert torch.equal((memory == 1).sum(1), data.GLYPHS.sum((1, 2)).long().repeat_interleave(4))
    queries, index = one.glyph_queries(12, 0.0, seed=0)
    assert torch.equal(queries, memory[index])


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="`fraction` must be in \\[0, 1\\]"):
        one.mask(torch.ones(2, 3), -0.1, torch.Generator())
    with pytest.raises(ValueError, match="`kind` must be 'flip' or 'mask'"):
        one.corrupt(torch.ones(2, 3), "erase", torch.Generator())
    with pytest.raises(ValueError, match="`seed`"):
        one.one_step_experiment(-2)
