"""Kesgin and Amasyali 2022: the cyclical data-size schedule, the easy-first subsets and the label noise."""
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from course.landscape.papers import cyclical_curriculum as ccl


@settings(max_examples=25, deadline=None)
@given(start=st.floats(0.05, 1.0), period=st.integers(2, 12), epochs=st.integers(1, 40))
def test_the_fraction_cycles_from_start_up_to_everything_and_back(start, period, epochs):
    p = ccl.cyclical_fractions(epochs, start, period)
    assert len(p) == epochs and p[0] == pytest.approx(start)
    assert all(start - 1e-12 <= v <= 1 + 1e-12 for v in p)
    assert all(p[e] == pytest.approx(p[e + period]) for e in range(epochs - period))
    if period % 2 == 0 and epochs > period // 2:
        assert p[period // 2] == pytest.approx(1.0)  # the full data at the middle of each cycle


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 60), batch=st.integers(1, 9), seed=st.integers(0, 99))
def test_each_epoch_trains_once_on_exactly_the_easiest_examples(n, batch, seed):
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    fractions = [0.25, 0.5, 1.0]
    batches = ccl.epoch_batches(order, fractions, batch, torch.Generator().manual_seed(seed))
    at = 0
    for p in fractions:
        size = max(1, int(round(p * n)))
        count = -(-size // batch)
        seen = torch.cat(batches[at:at + count])
        assert sorted(seen.tolist()) == sorted(order[:size].tolist())
        assert all(len(b) <= batch for b in batches[at:at + count])
        at += count
    assert at == len(batches)


def test_label_noise_flips_about_the_rate_to_another_class():
    labels = torch.randint(3, (20_000,), generator=torch.Generator().manual_seed(0))
    noisy, flipped = ccl.noisy_labels(labels, 3, 0.3, torch.Generator().manual_seed(1))
    assert abs(float(flipped.float().mean()) - 0.3) < 0.02
    assert bool((noisy[flipped] != labels[flipped]).all())
    assert bool((noisy[~flipped] == labels[~flipped]).all())
    assert int(noisy.min()) >= 0 and int(noisy.max()) <= 2


def test_difficulty_is_the_probe_s_per_example_loss():
    model = torch.nn.Linear(2, 3)
    x, y = torch.randn(10, 2), torch.randint(3, (10,))
    scores = ccl.difficulty_scores(model, x, y)
    torch.testing.assert_close(scores.mean(), F.cross_entropy(model(x), y).detach())
    assert not scores.requires_grad


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="`start` must be in"):
        ccl.cyclical_fractions(10, start=0.0)
    with pytest.raises(ValueError, match="`period` must be an int in"):
        ccl.cyclical_fractions(10, period=1)
    with pytest.raises(ValueError, match="`rate` must be in"):
        ccl.noisy_labels(torch.zeros(3, dtype=torch.int64), 3, 1.5, torch.Generator())
    with pytest.raises(TypeError, match="`labels` must be an integer tensor"):
        ccl.noisy_labels(torch.zeros(3), 3, 0.1, torch.Generator())
