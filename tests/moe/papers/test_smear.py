"""SMEAR's merge, straight-through top-1, and the multi-task data of Muqeeth et al. 2023."""
import pytest
import torch

from course.moe.papers import smear


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
