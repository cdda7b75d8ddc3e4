"""The discrete-data library: the exact toy, the absorbing process, the denoiser, the exact ELBO and
the exact distribution of the sampler."""
import itertools

import pytest
import torch
from torch import nn

from course.diffusion import discrete


@pytest.fixture(scope="module")
def dist():
    return discrete.dna_toy()


@pytest.fixture(scope="module")
def small():
    """An HMM over 3 letters, L = 3: small enough to enumerate its hidden paths."""
    initial, emission = [.7, .3], [[.6, .3, .1], [.1, .2, .7]]
    return discrete.hidden_markov(initial, [[.8, .2], [.4, .6]], emission, length=3), initial, emission


def test_the_exact_distribution_sums_to_one_over_every_string(dist):
    assert dist.probs.shape == (4 ** 6,) and (dist.probs > 0).all()
    assert abs(dist.probs.sum().item() - 1) < 1e-12
    assert dist.strings.shape == (4 ** 6, 6) and len({tuple(s) for s in dist.strings.tolist()}) == 4 ** 6
    torch.testing.assert_close(dist.index(dist.strings), torch.arange(4 ** 6))
    assert 0 < dist.entropy() < 6 * torch.log(torch.tensor(4.0)).item()


def test_the_forward_algorithm_equals_the_sum_over_hidden_paths(small):
    dist, initial, emission = small
    transition = [[.8, .2], [.4, .6]]
    for x, p in zip(dist.strings.tolist(), dist.probs.tolist()):
        total = 0.0
        for path in itertools.product(range(2), repeat=3):
            weight = initial[path[0]] * emission[path[0]][x[0]]
            for j in range(1, 3):
                weight *= transition[path[j - 1]][path[j]] * emission[path[j]][x[j]]
            total += weight
        assert abs(total - p) < 1e-12


def test_samples_follow_the_exact_probabilities(small):
    dist = small[0]
    x = dist.sample(40000, torch.Generator().manual_seed(0))
    frequency = torch.bincount(dist.index(x), minlength=27).double() / 40000
    assert (frequency - dist.probs).abs().max() < 0.01


def test_the_forward_process_masks_the_expected_fraction():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(4, (4000, 6), generator=g)
    for t in (0.0, 0.3, 0.8, 1.0):
        x_t = discrete.mask_tokens(x, torch.full((4000,), t), g, vocab=4)
        masked = x_t == 4
        assert abs(masked.double().mean().item() - t) < 0.01
        assert (x_t[~masked] == x[~masked]).all()  # unmasked tokens are kept


def test_a_training_batch_masks_k_tokens_at_the_kth_order_statistic(dist):
    x0, x_t, t, weight = discrete.training_batch(dist, 500, torch.Generator().manual_seed(1))
    k = (x_t == 4).sum(1)
    torch.testing.assert_close(weight, 6 / k.float())
    assert (k >= 1).all() and set(k.tolist()) == set(range(1, 7))
    assert ((t > 0) & (t < 1)).all() and (x_t[x_t != 4] == x0[x_t != 4]).all()


def test_the_data_weights_and_marginals_of_partial_strings(dist):
    target = dist.masked_targets  # each of the L 2^(L-1) (mask, masked position) pairs carries mass 1
    assert abs(target.sum().item() - 6 * 2 ** 5) < 1e-9
    states = discrete.partial_states(6, 4)
    assert (target[states != 4] == 0).all()
    assert dist.marginals[-1].item() == pytest.approx(1.0)
    torch.testing.assert_close(dist.marginals[(states < 4).all(1)], dist.probs)


@pytest.mark.parametrize("timed", [False, True])
def test_a_denoisers_output_is_a_distribution_and_soft_one_hots_equal_tokens(timed):
    torch.manual_seed(0)
    model = discrete.MaskedDenoiser(6, 4, hidden=16, time_conditioned=timed)
    x = torch.randint(5, (8, 6))
    t = torch.rand(8) if timed else None
    logits = model(x, t)
    assert logits.shape == (8, 6, 4)
    torch.testing.assert_close(logits.softmax(-1).sum(-1), torch.ones(8, 6))
    torch.testing.assert_close(model(nn.functional.one_hot(x, 5).float(), t), logits)


def test_the_exact_denoiser_reaches_the_entropy_and_samples_the_data(dist):
    exact = discrete.ExactDenoiser(dist)
    assert discrete.nll_bound(exact, dist) == pytest.approx(dist.entropy(), abs=1e-9)
    p, kl = discrete.order_sampler_distribution(exact, reference=exact)
    assert discrete.total_variation(p, dist.probs) < 1e-12 and abs(kl) < 1e-12


def test_any_denoiser_has_an_elbo_above_the_entropy_and_a_normalised_sampler(dist):
    torch.manual_seed(1)
    model = discrete.MaskedDenoiser(6, 4, hidden=16)
    assert discrete.nll_bound(model, dist) > dist.entropy() + 0.1
    p, kl = discrete.order_sampler_distribution(model, reference=discrete.ExactDenoiser(dist))
    assert (p >= 0).all() and abs(p.sum().item() - 1) < 1e-9 and kl > 0


class IgnoresTime(nn.Module):
    """A time-free denoiser presented as time-conditioned: the ELBO then goes through quadrature."""

    time_conditioned = True

    def __init__(self, inner):
        super().__init__()
        self.inner, self.length, self.vocab = inner, inner.length, inner.vocab

    def forward(self, x, t=None):
        return self.inner(x)


def test_quadrature_in_t_equals_the_any_order_weights_and_the_loss_is_unbiased(dist):
    torch.manual_seed(2)
    model = discrete.MaskedDenoiser(6, 4, hidden=16)
    exact = discrete.nll_bound(model, dist)
    assert discrete.nll_bound(IgnoresTime(model), dist, nodes=4) == pytest.approx(exact, rel=1e-9)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        estimate = sum(discrete.denoising_loss(model, *discrete.training_batch(dist, 5000, g)).item()
                       for _ in range(8)) / 8
    assert estimate == pytest.approx(exact, rel=0.01)


def test_divergences():
    p, q = torch.tensor([0.5, 0.5, 0.0]), torch.tensor([0.25, 0.25, 0.5])
    assert discrete.total_variation(p, q) == pytest.approx(0.5)
    assert discrete.kl_divergence(p, q) == pytest.approx(torch.log(torch.tensor(2.0)).item())
    assert discrete.entropy(p) == pytest.approx(torch.log(torch.tensor(2.0)).item())


def test_bad_input_is_refused_with_the_argument_named():
    with pytest.raises(ValueError, match="`probs`"):
        discrete.StringDistribution(torch.full((16,), 0.1, dtype=torch.float64), 2, 4)
    with pytest.raises(ValueError, match="vocab \\+ 1\\) \\*\\* length`"):
        discrete.StringDistribution(torch.full((4 ** 9,), 4.0 ** -9), 9, 4)
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="`t`"):
        discrete.mask_tokens(torch.zeros(2, 3, dtype=torch.long), torch.tensor([0.5, 1.5]), g, 4)
    with pytest.raises(TypeError, match="`x`"):
        discrete.mask_tokens(torch.zeros(2, 3), torch.tensor([0.5, 0.5]), g, 4)
    model = discrete.MaskedDenoiser(6, 4, hidden=8, time_conditioned=True)
    with pytest.raises(ValueError, match="`t`"):
        model(torch.zeros(2, 6, dtype=torch.long))
    with pytest.raises(ValueError, match="`x`"):
        model(torch.full((2, 6), 5), torch.rand(2))
    with pytest.raises(ValueError, match="`x`"):
        model(torch.zeros(2, 6, 4), torch.rand(2))
    with pytest.raises(ValueError, match="`nodes`"):
        discrete.nll_bound(model, discrete.dna_toy(), nodes=0)
    with pytest.raises(ValueError, match="`p` and `q`"):
        discrete.total_variation(torch.ones(3), torch.ones(4))
