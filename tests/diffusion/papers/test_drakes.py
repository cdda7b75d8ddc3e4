"""Wang et al. 2024 (DRAKES): Gumbel-softmax, the motif reward, the relaxed trajectory, the KL term."""
import pytest
import torch
import torch.nn.functional as F

from course.diffusion import discrete
from course.diffusion.papers import drakes


@pytest.fixture(scope="module")
def pretrained():
    torch.manual_seed(0)
    return discrete.MaskedDenoiser(6, 4, hidden=16).requires_grad_(False)


def tokens(text):
    return torch.tensor([["ACGT".index(c) for c in s] for s in text])


def test_gumbel_softmax_lies_on_the_simplex_and_tends_to_one_hot_at_low_temperature():
    logits = torch.log(torch.tensor([0.1, 0.2, 0.3, 0.4])).expand(20000, 4)
    soft = drakes.gumbel_softmax(logits, 1.0, torch.Generator().manual_seed(0))
    torch.testing.assert_close(soft.sum(-1), torch.ones(20000))
    assert soft.max(-1).values.mean() < 0.8
    near_one_hot = []
    for tau in (0.1, 0.01, 0.001):
        cold = drakes.gumbel_softmax(logits, tau, torch.Generator().manual_seed(0))
        near_one_hot.append((cold.max(-1).values > 0.99).double().mean().item())
    assert near_one_hot == sorted(near_one_hot) and near_one_hot[-1] > 0.99
    frequency = torch.bincount(cold.argmax(-1), minlength=4).double() / 20000  # the Gumbel-max trick
    assert (frequency - torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)).abs().max() < 0.015
    assert torch.equal(cold.argmax(-1), soft.argmax(-1))  # the same noise: the same argmax at any tau


def test_the_motif_reward_counts_cpg_sites_on_hard_and_relaxed_tokens():
    x = tokens(["CGCGCG", "ACGTCG", "GCGCGC", "AAAAAA"])
    expected = torch.tensor([3.0, 2.0, 2.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(drakes.motif_reward(x), expected)
    soft = F.one_hot(x, 4).float().requires_grad_(True)
    reward = drakes.motif_reward(soft)
    torch.testing.assert_close(reward, torch.tensor([3.0, 2.0, 2.0, 0.0]))
    reward.sum().backward()
    assert soft.grad[3, 0, 1] == 0 and soft.grad[0, 0, 1] == 1  # d r / d x_0[C] = x_1[G]


def test_the_relaxed_trajectory_is_one_hot_forward_and_differentiable(pretrained):
    model = discrete.MaskedDenoiser(6, 4, hidden=16)
    x0, kl = drakes.relaxed_trajectory(model, pretrained, 32, 0.5, torch.Generator().manual_seed(1))
    assert x0.shape == (32, 6, 4) and torch.equal(x0.sum(-1), torch.ones(32, 6))
    assert set(x0.detach().flatten().tolist()) <= {0.0, 1.0} and (kl > 0).all()
    (drakes.motif_reward(x0).mean() - kl.mean()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_the_kl_term_is_zero_from_the_pretrained_model_itself(pretrained):
    same = drakes.fine_tune(pretrained, 1.0, seed=0, iterations=0)
    _, kl = drakes.relaxed_trajectory(same, pretrained, 16, 0.5, torch.Generator().manual_seed(2))
    assert torch.equal(kl, torch.zeros(16))
    dist = discrete.dna_toy()
    p_pre = discrete.order_sampler_distribution(pretrained)[0]
    measured = drakes.evaluate(same, p_pre, dist, pretrained)
    assert measured["kl"] == pytest.approx(0, abs=1e-12)
    assert measured["path_kl"] == pytest.approx(0, abs=1e-12)


def test_fine_tuning_leaves_the_pretrained_model_alone_and_raises_the_reward(pretrained):
    before = [p.clone() for p in pretrained.parameters()]
    tuned = drakes.fine_tune(pretrained, 0.0, seed=0, iterations=10, batch=32)
    assert all(torch.equal(a, b) for a, b in zip(before, pretrained.parameters()))
    dist = discrete.dna_toy()
    p_pre = discrete.order_sampler_distribution(pretrained)[0]
    assert drakes.evaluate(tuned, p_pre, dist)["reward"] > drakes.evaluate(pretrained, p_pre, dist)["reward"]


def test_the_tilted_optimum_interpolates_between_the_model_and_the_best_string():
    p, reward = torch.tensor([0.5, 0.3, 0.2]), torch.tensor([0.0, 1.0, 2.0])
    torch.testing.assert_close(drakes.tilted(p, reward, 1e6), p.double(), rtol=1e-5, atol=1e-6)
    assert drakes.tilted(p, reward, 0.01)[2] > 0.999
    torch.testing.assert_close(drakes.tilted(p, reward, 1.0).sum(), torch.tensor(1.0, dtype=torch.float64))


def test_bad_input_is_refused_with_the_argument_named(pretrained):
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="`tau`"):
        drakes.gumbel_softmax(torch.zeros(2, 4), 0.0, g)
    with pytest.raises(TypeError, match="`logits`"):
        drakes.gumbel_softmax(torch.zeros(2, 4, dtype=torch.long), 1.0, g)
    with pytest.raises(ValueError, match="`motif`"):
        drakes.motif_reward(tokens(["ACGTAC"]), motif=(1, 7))
    with pytest.raises(ValueError, match="`x`"):
        drakes.motif_reward(torch.full((1, 6, 4), float("nan")))
    with pytest.raises(ValueError, match="`alpha`"):
        drakes.fine_tune(pretrained, -1.0, seed=0)
    with pytest.raises(ValueError, match="`iterations`"):
        drakes.fine_tune(pretrained, 1.0, seed=0, iterations=-2)
