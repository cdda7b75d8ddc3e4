"""Ong and Velickovic 2022 (LCM): the permutation measure, and the experiment on a tiny study."""
import torch

from course.gnn.papers import aggregator_toy, commutative_monoids


def tiny_study(monkeypatch):
    small = aggregator_toy.trained_study(0, num_train=16, per_size=2, steps=2)
    for module in (aggregator_toy, commutative_monoids):
        monkeypatch.setattr(module, "trained_study", lambda seed: small)


def test_permutation_sensitivity_is_zero_for_max_and_positive_for_an_lstm():
    data = aggregator_toy.stars([5, 9, 12], seed=0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        top, lstm = aggregator_toy.StarModel("max"), aggregator_toy.StarModel("lstm")
    assert commutative_monoids.permutation_sensitivity(top, data) < 1e-6
    assert commutative_monoids.permutation_sensitivity(lstm, data) > 1e-3


def test_the_experiment_measures_every_threshold_and_the_depths(monkeypatch):
    tiny_study(monkeypatch)
    measured = commutative_monoids.commutative_monoids_experiment(0)
    assert all(t.name in measured for t in commutative_monoids.CLAIM.thresholds)
    assert measured["lcm_depth_at_64"] == 6 and measured["lstm_depth_at_64"] == 64
    assert measured["lstm_over_lcm"] == measured["lstm_error"] / measured["lcm_error"]
    assert "LCM" in commutative_monoids.CLAIM.summary(measured)
