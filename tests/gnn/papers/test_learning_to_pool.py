"""Ko et al. 2022 (GNP): the experiment's numbers on a tiny study, and the target GNP expresses."""
import torch

from course.gnn.aggregators import generalized_norm_pool
from course.gnn.papers import aggregator_toy, learning_to_pool


def tiny_study(monkeypatch):
    small = aggregator_toy.trained_study(0, num_train=16, per_size=2, steps=2)
    for module in (aggregator_toy, learning_to_pool):
        monkeypatch.setattr(module, "trained_study", lambda seed: small)


def test_the_norm_target_is_gnp_with_p_2_and_q_0():
    graph, centres, y = aggregator_toy.stars([3, 6], seed=2)
    ptr = aggregator_toy.centre_segments(graph, centres)
    values = graph.x[graph.csr.index, 1:]  # [E, 1]
    gnp = generalized_norm_pool(values, ptr, torch.tensor([2.0]), torch.tensor([0.0]), eps=1e-12)
    torch.testing.assert_close(gnp[:, 0], y[:, 0])


def test_the_experiment_measures_every_threshold_and_the_summary_reads(monkeypatch):
    tiny_study(monkeypatch)
    measured = learning_to_pool.learning_to_pool_experiment(0)
    claim = learning_to_pool.CLAIM
    assert all(t.name in measured for t in claim.thresholds)
    assert measured["fixed_over_gnp"] == measured["best_fixed_error"] / measured["gnp_error"]
    assert measured["best_fixed_error"] == min(measured[f"{a}_error"] for a in learning_to_pool.FIXED)
    assert "GNP" in claim.summary(measured) and claim.id == "gnn.learning_to_pool"
