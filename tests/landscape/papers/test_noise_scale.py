"""McCandlish et al. 2018: per-example gradients, the simple noise scale and the critical-batch fit."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course.landscape import models
from course.landscape.papers import noise_scale as ns


def test_per_example_gradients_average_to_the_full_batch_gradient():
    t, w = ns.task(0), ns.widths(0)
    x, y = t.x_train[:40], t.y_train[:40]
    theta = models.flatten(models.mlp(w, seed=0)).requires_grad_(True)
    (full,) = torch.autograd.grad(models.mlp_loss(theta, x, y, w), theta)
    g = ns.per_example_gradients(theta, x, y, w)
    assert g.shape == (40, len(theta))
    torch.testing.assert_close(g.mean(0), full)
    (first,) = torch.autograd.grad(models.mlp_loss(theta, x[:1], y[:1], w), theta)
    torch.testing.assert_close(g[0], first)


def test_the_simple_noise_scale_of_known_gradients():
    # g_i = G + e_i, e_i = +-s along coordinate 0: tr(Sigma) = s^2 N / (N - 1) (unbiased)
    G, s, N = torch.tensor([3.0, 4.0]), 2.0, 10
    e = torch.zeros(N, 2)
    e[:, 0] = s * torch.tensor([1.0, -1.0] * (N // 2))
    out = ns.simple_noise_scale(G + e)
    trace = s ** 2 * N / (N - 1)
    assert out["trace_sigma"] == pytest.approx(trace)
    assert out["gradient_squared"] == pytest.approx(25.0 - trace / N)
    assert out["b_simple"] == pytest.approx(trace / (25.0 - trace / N))


@settings(max_examples=20, deadline=None)
@given(scale=st.floats(1e-3, 1e3), seed=st.integers(0, 1000))
def test_the_simple_noise_scale_is_invariant_to_the_gradients_scale(scale, seed):
    g = torch.randn(30, 5, generator=torch.Generator().manual_seed(seed)) + 1.0
    assert ns.simple_noise_scale(scale * g)["b_simple"] == pytest.approx(ns.simple_noise_scale(g)["b_simple"],
                                                                           rel=1e-6)


def test_the_fit_recovers_s_min_and_b_crit_from_the_papers_curve():
    batches = (4, 16, 64, 256)
    steps = [50 * (1 + 30 / b) for b in batches]  # S = S_min (1 + B_crit / B), eq. 2.11
    fitted = ns.critical_batch_fit(batches, steps)
    assert fitted["s_min"] == pytest.approx(50) and fitted["b_crit"] == pytest.approx(30)
    assert fitted["e_min"] == pytest.approx(1500) and fitted["r2"] == pytest.approx(1)
    # (S / S_min - 1)(E / E_min - 1) = 1 on the curve (eq. 2.11)
    for b, s in zip(batches, steps):
        assert (s / 50 - 1) * (b * s / 1500 - 1) == pytest.approx(1)


def test_bad_input_is_refused_by_name():
    with pytest.raises(ValueError, match="`g`"):
        ns.simple_noise_scale(torch.ones(1, 3))
    with pytest.raises(ValueError, match="`g`.*finite"):
        ns.simple_noise_scale(torch.tensor([[1.0, math.nan], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="`steps`"):
        ns.critical_batch_fit((4, 16), [10.0, math.inf])
    with pytest.raises(ValueError, match="`labels`"):
        ns.per_example_gradients(torch.zeros(10), torch.zeros(3, 2), torch.zeros(2, dtype=torch.long), (2, 2))


def test_a_run_ends_at_the_target_or_when_it_diverges():
    steps, path = ns.steps_to_target(0, 256, 3.0, ns.MAX_STEPS)
    t, w = ns.task(0), ns.widths(0)
    assert math.isfinite(steps) and len(path) == steps + 1
    assert float(models.mlp_loss(path[-1], t.x_train, t.y_train, w)) <= ns.TARGET_LOSS
    assert float(models.mlp_loss(path[-2], t.x_train, t.y_train, w)) > ns.TARGET_LOSS
    steps, path = ns.steps_to_target(0, 4, 1e3, ns.MAX_STEPS)  # far too large: diverges at once
    assert steps == math.inf and len(path) < 10
