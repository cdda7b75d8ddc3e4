"""Shazeer et al. 2017's balancing experiment: the load measure, the widget's router training."""
import time

import pytest
import torch

from course.data import gaussian_mixture, ring_centers
from course.moe import MoELayer
from course.moe.gating import with_bias
from course.moe.papers import sparsely_gated


def test_load_cv_is_zero_for_a_uniform_load_and_counts_choices():
    assert sparsely_gated.load_cv(torch.full((4,), 0.25)) == pytest.approx(0.0)
    assert sparsely_gated.load_cv([0.5, 0.5, 0.0, 0.0]) == pytest.approx(1.0)
    layer = MoELayer(3, 4, num_experts=4, k=2)
    layer.w_gate.data = torch.randn(3, 4)
    x = torch.randn(50, 2)
    fractions = sparsely_gated.load_fractions(layer, x)
    expected = torch.bincount((with_bias(x) @ layer.w_gate).topk(2, -1).indices.flatten(), minlength=4)
    torch.testing.assert_close(fractions, expected.float() / 100)


def top1_cv(w_gate, x):
    top1 = (with_bias(x) @ w_gate).argmax(-1)
    return sparsely_gated.load_cv(torch.bincount(top1, minlength=w_gate.shape[1]).float())


def test_train_router_2d_for_the_widget():
    x, blob = gaussian_mixture(256, ring_centers(4), seed=0)
    start = time.process_time()
    w_gate, w_noise = sparsely_gated.train_router_2d(x, blob, 4, 2, 0.0)
    seconds = time.process_time() - start
    balanced, _ = sparsely_gated.train_router_2d(x, blob, 4, 2, 1.0)
    assert w_gate.shape == w_noise.shape == (3, 4) and not w_gate.requires_grad
    assert seconds < 1.5
    assert top1_cv(w_gate, x) > 0.4 and top1_cv(balanced, x) < 0.2


def test_train_router_2d_rejects_bad_tokens():
    with pytest.raises(ValueError, match="tokens"):
        sparsely_gated.train_router_2d(torch.randn(10, 3), torch.zeros(10, dtype=torch.long), 4, 2, 0.1)
    with pytest.raises(ValueError, match="w_balance"):
        sparsely_gated.train_moe_regression(torch.randn(10, 2), torch.randn(10, 3), 4, 2, -1.0)
