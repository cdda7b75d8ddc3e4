"""Ramsauer et al. 2020 (capacity): the retrieval tests of both networks, the capacity scans, the slope."""
import math

import pytest
import torch

from course.hopfield import classical
from course.hopfield.papers import hopfield_capacity as cap


def test_both_networks_retrieve_a_few_patterns_from_lightly_flipped_copies():
    g = torch.Generator().manual_seed(0)
    patterns = classical.random_patterns(4, 100, g)
    assert cap.classical_retrieved(patterns, 0.05, g).all()
    assert cap.modern_retrieved(patterns, 0.05, g).all()
    assert cap.modern_retrieved(patterns, 0.05, g, exact=True).all()


def test_the_modern_network_retrieves_far_beyond_the_classical_load_in_one_update():
    g = torch.Generator().manual_seed(1)
    patterns = classical.random_patterns(200, 50, g)  # M = 4 D
    assert cap.modern_retrieved(patterns, 0.05, g).float().mean() == 1
    assert cap.classical_retrieved(patterns, 0.05, g).float().mean() < 0.5


def test_classical_capacity_stops_at_the_first_load_that_fails():
    g = torch.Generator().manual_seed(2)
    # 0.5 D is far past the capacity; the load after it is not looked at even though it is small
    assert cap.classical_capacity(100, g, loads=(0.02, 0.5, 0.03)) == 0.02
    assert cap.classical_capacity(100, g, loads=(0.6,)) == 0.0


def test_largest_retrievable_is_a_power_of_two_and_larger_for_the_modern_network():
    g = torch.Generator().manual_seed(3)
    modern = cap.largest_retrievable(12, "modern", g, max_log2=8)
    classic = cap.largest_retrievable(12, "classical", g, max_log2=8)
    assert modern > classic >= 1
    assert math.log2(modern).is_integer() and math.log2(classic).is_integer()


def test_bits_per_unit_is_the_slope_of_log2_count_against_d():
    assert cap.bits_per_unit((8, 12, 16), (2, 32, 512)) == pytest.approx(1.0)
    assert cap.bits_per_unit((8, 16), (4, 8)) == pytest.approx(1 / 8)
    assert cap.bits_per_unit((8, 16), (0, 1)) == pytest.approx(0.0)  # 0 is counted as 1


def test_bad_input_names_the_argument():
    g = torch.Generator()
    with pytest.raises(ValueError, match="`network` must be 'classical' or 'modern'"):
        cap.largest_retrievable(8, "dense", g)
    with pytest.raises(ValueError, match="`D`"):
        cap.classical_capacity(0, g)
    with pytest.raises(ValueError, match="`seed`"):
        cap.capacity_experiment(-1)
    with pytest.raises(ValueError, match="`patterns` must hold"):
        cap.classical_retrieved(torch.zeros(2, 4), 0.1, g)
