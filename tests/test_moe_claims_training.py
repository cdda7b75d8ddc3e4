"""The MoE family's trained claims (Shazeer 2017 balancing, Eigen 2013 deep MoE, SMEAR, SparseMixer),
unit tests of the pieces each experiment is built from, and the Sparse-MLP block."""
import time

import pytest
import torch

from course.data import gaussian_mixture, ring_centers
from course.moe import MoELayer, balancing, deep_moe, smear, sparse_mlp, sparsemixer
from course.moe.gating import with_bias


@pytest.fixture(scope="module")
def balancing_result():
    return balancing.balancing_claim()


@pytest.fixture(scope="module")
def deep_moe_result():
    return deep_moe.deep_moe_claim()


@pytest.fixture(scope="module")
def smear_result():
    return smear.smear_claim()


# Shazeer et al. 2017: the balancing losses

def test_balancing_claim_holds(balancing_result):
    m = balancing_result.measured
    assert balancing_result.holds
    assert m["cv_ratio"] >= 5.0
    assert m["cv_with"] < 0.1 and m["idle_with"] == 0
    # the losses cost little task accuracy
    assert m["mse_with"] < 1.5 * m["mse_without"] + 0.01


def test_without_the_losses_the_router_collapses(balancing_result):
    m = balancing_result.measured
    assert m["cv_without"] > 0.5
    assert m["idle_without"] >= 1  # experts that get (almost) no tokens
    assert m["peak_without"] > 1.5  # the busiest expert gets well over its share


def test_load_cv_is_zero_for_a_uniform_load_and_counts_choices():
    assert balancing.load_cv(torch.full((4,), 0.25)) == pytest.approx(0.0)
    assert balancing.load_cv([0.5, 0.5, 0.0, 0.0]) == pytest.approx(1.0)
    layer = MoELayer(3, 4, num_experts=4, k=2)
    layer.w_gate.data = torch.randn(3, 4)
    x = torch.randn(50, 2)
    fractions = balancing.load_fractions(layer, x)
    expected = torch.bincount((with_bias(x) @ layer.w_gate).topk(2, -1).indices.flatten(), minlength=4)
    torch.testing.assert_close(fractions, expected.float() / 100)


def top1_cv(w_gate, x):
    top1 = (with_bias(x) @ w_gate).argmax(-1)
    return balancing.load_cv(torch.bincount(top1, minlength=w_gate.shape[1]).float())


def test_train_router_2d_for_the_widget():
    x, blob = gaussian_mixture(256, ring_centers(4), seed=0)
    start = time.process_time()
    w_gate, w_noise = balancing.train_router_2d(x, blob, 4, 2, 0.0)
    seconds = time.process_time() - start
    balanced, _ = balancing.train_router_2d(x, blob, 4, 2, 1.0)
    assert w_gate.shape == w_noise.shape == (3, 4) and not w_gate.requires_grad
    assert seconds < 1.5
    assert top1_cv(w_gate, x) > 0.4 and top1_cv(balanced, x) < 0.2


def test_train_router_2d_rejects_bad_tokens():
    with pytest.raises(ValueError, match="tokens"):
        balancing.train_router_2d(torch.randn(10, 3), torch.zeros(10, dtype=torch.long), 4, 2, 0.1)
    with pytest.raises(ValueError, match="w_balance"):
        balancing.train_moe_regression(torch.randn(10, 2), torch.randn(10, 3), 4, 2, -1.0)


# Eigen et al. 2013: the deep mixture of experts

def test_deep_moe_claim_holds(deep_moe_result):
    m = deep_moe_result.measured
    assert deep_moe_result.holds
    assert m["nmi_layer1_where"] > m["nmi_layer1_what"] + 0.1
    assert m["nmi_layer2_what"] > 0.6 and m["nmi_layer2_where"] < 0.1
    assert m["test_accuracy"] > 0.9


def test_nmi_of_identical_and_renamed_labelings_is_one():
    a = torch.randint(4, (500,), generator=torch.Generator().manual_seed(0))
    assert deep_moe.normalized_mutual_information(a, a) == pytest.approx(1.0)
    assert deep_moe.normalized_mutual_information(a, (a + 1) % 4) == pytest.approx(1.0)
    b = torch.randint(4, (20000,), generator=torch.Generator().manual_seed(1))
    c = torch.randint(4, (20000,), generator=torch.Generator().manual_seed(2))
    assert deep_moe.normalized_mutual_information(b, c) < 0.01
    assert deep_moe.normalized_mutual_information(torch.zeros_like(a), a) == pytest.approx(0.0)


def test_glyph_factors_are_independent_and_drawn_where_they_say():
    images, what, where = deep_moe.glyph_images(8000, seed=3)
    counts = torch.bincount(what * 4 + where, minlength=16).float()
    assert (counts - 500).abs().max() < 100  # every (what, where) pair about equally likely
    assert deep_moe.normalized_mutual_information(what, where) < 0.01
    clean, what, where = deep_moe.glyph_images(16, noise=0.0, seed=4)
    for image, c, p in zip(clean, what, where):
        row, col = deep_moe.PLACES[p]
        assert torch.equal(image[row:row + 4, col:col + 4], deep_moe.GLYPHS[c])
        assert image.sum() == deep_moe.GLYPHS[c].sum()  # nothing drawn elsewhere


def test_gated_mixture_is_the_gate_weighted_sum_of_experts():
    torch.manual_seed(0)
    layer = deep_moe.GatedMixture(6, 5, num_experts=3)
    x = torch.randn(7, 6)
    z, gates = layer(x)
    experts = [torch.relu(x @ layer.w[e] + layer.b[e]) for e in range(3)]
    expected = sum(gates[:, e:e + 1] * experts[e] for e in range(3))
    torch.testing.assert_close(z, expected)
    torch.testing.assert_close(gates.sum(-1), torch.ones(7))


# Muqeeth et al. 2023: SMEAR

def test_smear_claim_holds(smear_result):
    m = smear_result.measured
    assert smear_result.holds
    assert m["error_straight_through"] > 1.25 * m["error_smear"]
    assert m["error_oracle"] < m["error_smear"] < 0.3


def test_smear_merges_parameters_by_the_router_probabilities():
    torch.manual_seed(0)
    bank = smear.ExpertBank(3, 5, 2, num_experts=4)
    x, logits = torch.randn(6, 3), torch.randn(6, 4)
    probs = logits.softmax(-1)
    for merged, param in zip(bank.merged(probs), (bank.w1, bank.b1, bank.w2, bank.b2)):
        for b in range(6):
            torch.testing.assert_close(merged[b], sum(probs[b, e] * param[e] for e in range(4)))
    y = smear.smear(x, logits, bank)
    for b in range(6):
        w1, b1, w2, b2 = (p[b] for p in bank.merged(probs))
        torch.testing.assert_close(y[b], torch.relu(x[b] @ w1 + b1) @ w2 + b2)
    # a one-hot router merges into exactly that expert
    onehot_logits = torch.full((6, 4), -1e4).scatter(1, torch.full((6, 1), 2), 0.0)
    torch.testing.assert_close(smear.smear(x, onehot_logits, bank), bank.every_expert(x)[:, 2])


def test_straight_through_forward_is_the_argmax_expert_and_backward_the_softmax():
    torch.manual_seed(1)
    bank = smear.ExpertBank(3, 5, 2, num_experts=4)
    x = torch.randn(6, 3)
    logits = torch.randn(6, 4, requires_grad=True)
    y = smear.straight_through_top1(x, logits, bank)
    outputs = bank.every_expert(x)
    choice = logits.argmax(-1)
    torch.testing.assert_close(y, outputs[torch.arange(6), choice])
    upstream = torch.randn(6, 2)
    (y * upstream).sum().backward()
    probs = logits.softmax(-1).detach()
    d_probs = torch.einsum("bo,beo->be", upstream, outputs.detach())  # d y / d p_e = f_e
    expected = probs * (d_probs - (probs * d_probs).sum(-1, keepdim=True))  # through the softmax
    torch.testing.assert_close(logits.grad, expected)
    # only the chosen experts' parameters receive gradient
    unused = sorted(set(range(4)) - set(choice.tolist()))
    assert bank.w1.grad[unused].abs().sum() == 0
    assert bank.w1.grad[choice.unique()].abs().sum() > 0


def test_multitask_data_shares_tasks_across_splits():
    x, task, y = smear.multitask_regression(100, 3, seed=5)
    x2, task2, y2 = smear.multitask_regression(100, 3, seed=5, split=1)
    assert x.shape == (100, 8) and y.shape == (100, 1)
    assert not torch.equal(x, x2)
    # the same task code centres in both splits: the task is readable from the input
    for t in range(3):
        torch.testing.assert_close(x[task == t, 4:].mean(0), x2[task2 == t, 4:].mean(0),
                                   atol=0.25, rtol=0)
    with pytest.raises(ValueError, match="routing"):
        smear.RoutedExperts(8, 4, 8, 1, 3, routing="top2")


# Liu, Gao, Chen 2023 (GRIN's estimator): SparseMixer against straight-through

def test_exact_router_gradient_matches_autograd_of_the_enumerated_expectation():
    problem, w = sparsemixer.routing_problem(seed=7)
    w = w.clone().requires_grad_()
    (autograd,) = torch.autograd.grad(sparsemixer.expected_loss(w, problem), w)
    torch.testing.assert_close(sparsemixer.exact_router_gradient(w.detach(), problem), autograd,
                               atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("estimator", sparsemixer.ESTIMATORS)
def test_monte_carlo_estimates_converge_to_the_enumerated_expectation(estimator):
    problem, w = sparsemixer.routing_problem(seed=8)
    expected = sparsemixer.expected_estimate(estimator, w, problem)
    sampled = sparsemixer.sampled_estimate(estimator, w, problem, 4000,
                                           torch.Generator().manual_seed(9))
    assert sparsemixer.relative_bias(sampled, expected) < 0.06


def test_released_sparsemixer_differs_from_the_midpoint_only_at_the_argmax():
    problem, w = sparsemixer.routing_problem(seed=10)
    released = sparsemixer.expected_estimate("sparsemixer", w, problem)
    midpoint = sparsemixer.expected_estimate("sparsemixer_midpoint", w, problem)
    sampled = sparsemixer.sampled_estimate("sparsemixer", w, problem, 4000,
                                           torch.Generator().manual_seed(11))
    to_released = sparsemixer.relative_bias(sampled, released)
    assert to_released < 0.5 * sparsemixer.relative_bias(sampled, midpoint)


def test_estimator_surrogates_forward_the_sampled_expert_and_scale_gradients():
    problem, w = sparsemixer.routing_problem(seed=12)
    choice = torch.randint(4, (problem.x.shape[0],), generator=torch.Generator().manual_seed(13))
    ones = torch.ones(problem.x.shape[0])
    switch = sparsemixer.switch_surrogate(w, problem, choice)
    # straight-through's forward is the sampled expert's output, pi_D f_D
    torch.testing.assert_close(sparsemixer.straight_through_surrogate(w, problem, choice), switch)
    torch.testing.assert_close(sparsemixer.sparsemixer_surrogate(w, problem, choice, ones), switch)
    # with omega = 1 SparseMixer doubles the gate-only gradient
    torch.testing.assert_close(sparsemixer.router_estimate("sparsemixer", w, problem, choice, ones),
                               2 * sparsemixer.router_estimate("switch", w, problem, choice, ones))
    with pytest.raises(ValueError, match="estimator"):
        sparsemixer.expected_estimate("reinforce", w, problem)
    with pytest.raises(ValueError, match="w_router"):
        sparsemixer.exact_router_gradient(torch.randn(3, 4), problem)


def test_sparsemixer_claim_holds():
    claim = sparsemixer.sparsemixer_claim()
    m = claim.measured
    assert claim.holds
    assert m["bias_sparsemixer_midpoint"] < 0.5 * m["bias_straight_through"]
    assert m["midpoint_wins"] == m["problems"]
    # the gate-only gradient, which drops the choice term, is the most biased of all
    assert m["bias_switch"] > max(m["bias_straight_through"], m["bias_sparsemixer"])


# Lou et al. 2021: the Sparse-MLP block (architecture only; see the module docstring)

def test_top1_moe_is_the_gated_chosen_expert():
    torch.manual_seed(14)
    moe = sparse_mlp.Top1MoE(5, 7, num_experts=3)
    x = torch.randn(20, 5)
    y, probs = moe(x)
    gate, choice = probs.max(-1)
    expected = torch.stack([gate[t] * (torch.relu(x[t] @ moe.w1[choice[t]]) @ moe.w2[choice[t]])
                            for t in range(20)])
    torch.testing.assert_close(y, expected)


@pytest.mark.parametrize("num_experts", [1, 3])
def test_mixer_block_mixes_patches_per_channel_then_channels_per_patch(num_experts):
    torch.manual_seed(15)
    block = sparse_mlp.MixerBlock(num_patches=4, d=6, token_hidden=5, channel_hidden=7,
                                  num_experts=num_experts)
    x = torch.randn(2, 4, 6)
    out = block(x)
    normed = block.norm_s(x)
    token = torch.stack([torch.stack([block.token_mix(normed[b, :, d].unsqueeze(0))[0][0]
                                      for d in range(6)], dim=1) for b in range(2)])  # [B, N, D]
    mid = x + token
    channel = torch.stack([block.channel_mix(block.norm_c(mid)[b])[0] for b in range(2)])
    torch.testing.assert_close(out, mid + channel, atol=1e-5, rtol=1e-5)
    logits = sparse_mlp.MixerClassifier(8, 4, num_experts=num_experts)(torch.randn(3, 8, 8))
    assert logits.shape == (3, 4)
