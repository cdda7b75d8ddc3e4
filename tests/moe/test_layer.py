"""The MoE layer and Shazeer et al.'s balancing quantities, against their definitions."""
import pytest
import torch

from course import moe


def test_layer_is_the_gate_weighted_sum_of_experts():
    torch.manual_seed(0)
    layer = moe.MoELayer(6, 10, num_experts=5, k=2)
    layer.w_gate.data.normal_()
    layer.eval()  # no noise: the gates are a deterministic function of x
    x = torch.randn(40, 6)
    out = layer(x)
    every_expert = torch.stack([torch.relu(x @ layer.w1[e]) @ layer.w2[e] for e in range(5)], 1)  # [T, E, D]
    expected = (moe.dense_gates(out.gating).unsqueeze(-1) * every_expert).sum(1)  # eq. 1
    torch.testing.assert_close(out.y, expected, rtol=1e-5, atol=1e-5)
    assert set(layer.backends_used) == {"moe.dispatch", "moe.expert_mlp", "moe.combine"}


def test_capacity_drops_and_gradients_reach_every_parameter():
    torch.manual_seed(1)
    layer = moe.MoELayer(4, 8, num_experts=4, k=2, capacity_factor=0.5)
    out = layer(torch.randn(32, 4))
    assert (out.routed.slot < 0).any() and out.routed.counts.max() <= 8
    (out.y.pow(2).mean() + moe.balance_loss(out.gating, 0.1, 0.1)).backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_importance_sums_the_gates():
    g = moe.noisy_top_k_gating(torch.randn(30, 3), torch.randn(3, 6), None, k=2)
    assert torch.allclose(moe.importance(g), moe.dense_gates(g).sum(0))
    assert torch.allclose(moe.importance(g).sum(), torch.tensor(30.0))


def test_smooth_load_is_the_probability_of_staying_in_the_top_k():
    """Eq. 9 against Monte Carlo: re-draw only expert i's noise, count how often i stays in the top k."""
    torch.manual_seed(2)
    T, D, E, k = 4, 3, 5, 2
    x, w_gate, w_noise = torch.randn(T, D), torch.randn(D, E), 0.3 * torch.randn(D, E)
    g = moe.noisy_top_k_gating(x, w_gate, w_noise, k, generator=torch.Generator().manual_seed(3))
    draws = 20000
    estimate = torch.zeros(E)
    for i in range(E):
        logits = g.logits.unsqueeze(0).repeat(draws, 1, 1)  # [draws, T, E]
        logits[:, :, i] = g.clean_logits[:, i] + torch.randn(draws, T) * g.noise_std[:, i]
        in_top = (logits.topk(k, dim=-1).indices == i).any(-1)  # [draws, T]
        estimate[i] = in_top.float().mean(0).sum()
    torch.testing.assert_close(moe.load(g), estimate, atol=0.03, rtol=0.0)


def test_load_without_noise_counts_the_choices():
    g = moe.noisy_top_k_gating(torch.randn(25, 3), torch.randn(3, 4), None, k=1)
    assert moe.load(g).tolist() == torch.bincount(g.expert_index.flatten(), minlength=4).float().tolist()


def test_cv_squared():
    assert moe.cv_squared(torch.tensor([2.0, 2.0, 2.0])).item() == pytest.approx(0.0)
    assert moe.cv_squared(torch.tensor([0.0, 4.0])).item() == pytest.approx(1.0)  # std 2, mean 2


def test_layer_rejects_k_outside_the_experts():
    with pytest.raises(ValueError, match=r"`k` must be in \[1, num_experts\] = \[1, 3\]; got 4"):
        moe.MoELayer(4, 4, num_experts=3, k=4)
