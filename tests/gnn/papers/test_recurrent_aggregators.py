"""Xu and Velickovic 2024 (RNAR): the shuffled reading, and the experiment on a tiny study."""
import pytest

from course.gnn.papers import aggregator_toy, recurrent_aggregators


def tiny_study(monkeypatch):
    small = aggregator_toy.trained_study(0, num_train=16, per_size=2, steps=2)
    for module in (aggregator_toy, recurrent_aggregators):
        monkeypatch.setattr(module, "trained_study", lambda seed: small)


def test_reading_in_a_shuffled_order_changes_nothing_for_an_invariant_aggregator():
    data = aggregator_toy.stars([4, 7, 10], seed=3)
    model = aggregator_toy.StarModel("mean", outputs=1)
    in_order = aggregator_toy.error(model, data, recurrent_aggregators.TASK)
    assert recurrent_aggregators.shuffled_error(model, data) == pytest.approx(in_order, rel=1e-5)


def test_the_experiment_measures_every_threshold(monkeypatch):
    tiny_study(monkeypatch)
    measured = recurrent_aggregators.recurrent_aggregators_experiment(0)
    assert all(t.name in measured for t in recurrent_aggregators.CLAIM.thresholds)
    assert measured["best_invariant_error"] == min(measured[f"{a}_error"]
                                                   for a in recurrent_aggregators.INVARIANT)
    assert "LSTM" in recurrent_aggregators.CLAIM.summary(measured)
