"""Discrete data for diffusion: short DNA-like strings with exact probabilities, the absorbing process.

The toy (`dna_toy`): strings of L = 6 tokens over {A, C, G, T} from a hidden Markov chain (AT-rich,
GC-rich and CpG-island states), so the probability of each of the 4^6 strings is exact and a model's
distribution is compared with the data's over every string, with no sample noise.

The absorbing ("mask") forward process (Austin et al. 2021, D3PM, arXiv:2107.03006; Lou et al. 2024,
SEDD, arXiv:2310.16834; Ou et al. 2024, RADD, arXiv:2406.03736) with the linear schedule: at time
t in [0, 1] each token is replaced by MASK (token id V) independently with probability t. The
denoiser q(x_i | x_t) predicts a clean token at each masked position, and the negative ELBO is

    -log p(x) <= integral_0^1 (1/t) E_{x_t} [ sum_{i masked} -log q(x_i | x_t, t) ] dt      [ELBO]
              = sum_{k=1}^{L} (1/k) E_{|M| = k} [ sum_{i in M} -log q(x_i | x_M) ]            [AO]

[AO] holds for a denoiser without time input (RADD, sec. 4): integral (1/t) t^k (1-t)^(L-k) dt =
B(k, L-k+1) = 1 / (k C(L, k)). Training draws k uniformly in 1..L, the mask as the positions whose
uniform "unmask times" are below the k-th smallest of them (so t is that order statistic, Beta(k,
L-k+1), the time at which exactly k tokens are masked), and weighs L / k per masked token: an unbiased
estimate of [ELBO] with the same draws for a denoiser with or without time input (`training_batch`).

Every partial string (each token a letter or MASK, (V+1)^L of them) is enumerated, so [ELBO] is
computed exactly (`nll_bound`), and so is the distribution of strings that the sampler which unmasks
one uniformly chosen position per step generates (`order_sampler_distribution`): with a denoiser
without time input that is the exact continuous-time reverse process.
"""
import functools
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from course.checks import check_finite, check_index_range, check_int, check_tensor
from course.train import fit, seeded

LETTERS = "ACGT"  # the names of the toy's tokens 0..3, for display
MAX_STATES = 5 ** 7  # partial strings enumerated at most


class StringDistribution:
    """An exact distribution over every string of `length` tokens in 0..vocab-1. probs [V^L]"""

    def __init__(self, probs, length: int, vocab: int):
        where = "discrete.StringDistribution"
        check_int(where, "length", length, low=1)
        check_int(where, "vocab", vocab, low=2)
        if (vocab + 1) ** length > MAX_STATES:
            raise ValueError(f"{where}: `(vocab + 1) ** length` must be <= {MAX_STATES} (every partial "
                             f"string is enumerated); got {(vocab + 1) ** length}.")
        check_tensor(where, "probs", probs, ndim=1, kind="float")
        check_finite(where, "probs", probs)
        if probs.numel() != vocab ** length or (probs < 0).any() or abs(probs.sum().item() - 1) > 1e-9:
            raise ValueError(f"{where}: `probs` must be {vocab ** length} = vocab ** length non-negative "
                             f"numbers summing to 1; got {probs.numel()} summing to "
                             f"{probs.sum().item():.6g}.")
        self.probs, self.length, self.vocab = probs.double(), length, vocab

    @functools.cached_property
    def strings(self):
        """Every string, in the order of `probs` (base-V numbers, first token most significant). [V^L, L]"""
        place = self.vocab ** torch.arange(self.length - 1, -1, -1)
        return torch.arange(self.vocab ** self.length)[:, None] // place % self.vocab

    def index(self, x):
        """Each string's row in `probs`. x [N, L] tokens -> [N]"""
        check_tokens("discrete.StringDistribution.index", "x", x, self.length, self.vocab)
        return (x * self.vocab ** torch.arange(self.length - 1, -1, -1)).sum(1)

    def sample(self, num: int, generator: torch.Generator):
        """`num` strings drawn from the distribution. -> [num, L]"""
        check_int("discrete.StringDistribution.sample", "num", num, low=0)
        return self.strings[torch.multinomial(self.probs, num, replacement=True, generator=generator)]

    def entropy(self) -> float:
        """H(p) in nats: the lowest [ELBO] any denoiser can reach."""
        return entropy(self.probs)

    @functools.cached_property
    def masked_targets(self):
        """J[y, i, v] = P(x agrees with the partial string y off its mask, x_i = v) for masked i, 0
        elsewhere: the data weight of each cross-entropy term in [ELBO]. [(V+1)^L, L, V], float64"""
        L, V = self.length, self.vocab
        patterns = torch.arange(2 ** L)[:, None] // 2 ** torch.arange(L - 1, -1, -1) % 2 == 1  # [2^L, L]
        y = torch.where(patterns[None], V, self.strings[:, None, :])  # [V^L, 2^L, L]
        state = (y * (V + 1) ** torch.arange(L - 1, -1, -1)).sum(-1)  # [V^L, 2^L]
        flat = (state[..., None] * L + torch.arange(L)) * V + self.strings[:, None, :]  # [V^L, 2^L, L]
        weight = self.probs[:, None, None] * patterns[None]
        target = torch.zeros((V + 1) ** L * L * V, dtype=torch.float64)
        return target.index_add_(0, flat.flatten(), weight.flatten()).view(-1, L, V)


    @functools.cached_property
    def marginals(self):
        """P(x agrees with the partial string y off its masks) for every partial string y (1 for all
        masks, p(x) for none). [(V+1)^L], float64"""
        total = self.masked_targets.sum(-1).amax(-1)
        full = (partial_states(self.length, self.vocab) < self.vocab).all(1)  # in the order of `probs`
        total[full] = self.probs
        return total


def hidden_markov(initial, transition, emission, length: int) -> StringDistribution:
    """The exact distribution of an HMM's strings by the forward algorithm.
    initial [S], transition [S, S] (rows sum to 1), emission [S, V] -> StringDistribution"""
    initial, transition, emission = (torch.as_tensor(a, dtype=torch.float64)
                                     for a in (initial, transition, emission))
    states = initial.shape[0]
    for name, a, shape in (("initial", initial, (states,)), ("transition", transition, (states, states)),
                           ("emission", emission, (states, emission.shape[-1]))):
        if tuple(a.shape) != shape or (a < 0).any() or (a.sum(-1) - 1).abs().max() > 1e-9:
            raise ValueError(f"discrete.hidden_markov: `{name}` must be probabilities of shape {shape} whose "
                             f"rows sum to 1; got shape {tuple(a.shape)}.")
    vocab = emission.shape[1]
    strings = StringDistribution(torch.full((vocab ** length,), vocab ** -length, dtype=torch.float64),
                                 length, vocab).strings
    alpha = initial * emission[:, strings[:, 0]].T  # [V^L, S]
    for j in range(1, length):
        alpha = (alpha @ transition) * emission[:, strings[:, j]].T
    return StringDistribution(alpha.sum(1), length, vocab)


@functools.lru_cache(maxsize=1)
def dna_toy() -> StringDistribution:
    """L = 6 over ACGT from an HMM with AT-rich, GC-rich and CpG-island (C, then G) hidden states."""
    emission = [[.60, .04, .04, .32], [.04, .60, .32, .04], [.02, .94, .02, .02], [.02, .02, .94, .02]]
    transition = [[.92, .05, .03, .00], [.08, .82, .10, .00], [.00, .00, .00, 1.0], [.30, .20, .50, .00]]
    return hidden_markov([.6, .3, .1, 0.0], transition, emission, length=6)


def check_tokens(where: str, name: str, x, length: int, vocab: int, masks: bool = False):
    """Check that x is an integer tensor [N, length] of tokens in 0..vocab-1 (0..vocab with masks)."""
    check_tensor(where, name, x, ndim=2, kind="int")
    if x.shape[1] != length:
        raise ValueError(f"{where}: `{name}` must have {length} tokens per string; got shape "
                         f"{tuple(x.shape)}.")
    check_index_range(where, name, x, vocab + masks, "vocab + 1 (MASK)" if masks else "vocab")


def check_matches(where: str, denoiser, length: int, vocab: int, name: str = "denoiser"):
    """Check that a denoiser is made for strings of `length` tokens over `vocab` letters."""
    if (getattr(denoiser, "length", None), getattr(denoiser, "vocab", None)) != (length, vocab):
        raise ValueError(f"{where}: `{name}` must model {length} tokens over {vocab} letters; got "
                         f"{getattr(denoiser, 'length', None)} over {getattr(denoiser, 'vocab', None)}.")


@functools.lru_cache(maxsize=8)
def partial_states(length: int, vocab: int):
    """Every partial string, token vocab = MASK, as base-(V+1) numbers. -> [(V+1)^L, L]"""
    place = (vocab + 1) ** torch.arange(length - 1, -1, -1)
    return torch.arange((vocab + 1) ** length)[:, None] // place % (vocab + 1)


def mask_tokens(x, t, generator: torch.Generator, vocab: int):
    """The absorbing forward process: each token becomes MASK (= vocab) with probability t.
    x [N, L] tokens, t [N] in [0, 1] -> x_t [N, L]"""
    where = "discrete.mask_tokens"
    check_tensor(where, "x", x, ndim=2, kind="int")
    check_int(where, "vocab", vocab, low=1)
    check_index_range(where, "x", x, vocab + 1, "vocab + 1 (MASK)")
    check_tensor(where, "t", t, ndim=1, kind="float")
    if t.shape[0] != x.shape[0] or ((t < 0) | (t > 1) | t.isnan()).any():
        raise ValueError(f"{where}: `t` must hold one time in [0, 1] per string ({x.shape[0]}); got "
                         f"shape {tuple(t.shape)} with values from {t.min().item():.3g} to "
                         f"{t.max().item():.3g}.")
    drop = torch.rand(x.shape, generator=generator, dtype=t.dtype) < t[:, None]
    return torch.where(drop, vocab, x)


def training_batch(dist: StringDistribution, batch: int, generator: torch.Generator):
    """Clean strings, their masked versions, times and per-token weights L / k for [ELBO] (module
    docstring). -> x0 [B, L], x_t [B, L], t [B], weight [B]"""
    check_int("discrete.training_batch", "batch", batch, low=1)
    L = dist.length
    x0 = dist.sample(batch, generator)
    k = torch.randint(1, L + 1, (batch,), generator=generator)
    unmask_times = torch.rand(batch, L, generator=generator)
    t = unmask_times.sort(1).values.gather(1, (k - 1)[:, None])[:, 0]
    return x0, torch.where(unmask_times <= t[:, None], dist.vocab, x0), t, L / k


class MaskedDenoiser(nn.Module):
    """An MLP over one-hot tokens that predicts the clean token at every position, with or without
    the time as an input. x [N, L] tokens (MASK = V) or [N, L, V+1] soft one-hots, t [N]
    -> logits [N, L, V]"""

    def __init__(self, length: int, vocab: int, hidden: int = 64, time_conditioned: bool = False):
        super().__init__()
        self.length, self.vocab, self.time_conditioned = length, vocab, time_conditioned
        extra = 4 if time_conditioned else 0  # t, sin and cos of pi t, t^2: features of the time
        self.net = nn.Sequential(nn.Linear(length * (vocab + 1) + extra, hidden), nn.SiLU(),
                                 nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, length * vocab))

    def forward(self, x, t=None):
        where = "discrete.MaskedDenoiser"
        if x.is_floating_point():
            check_tensor(where, "x", x, ndim=3)
            if tuple(x.shape[1:]) != (self.length, self.vocab + 1):
                raise ValueError(f"{where}: soft `x` must be [N, {self.length}, {self.vocab + 1}]; got "
                                 f"{tuple(x.shape)}.")
        else:
            check_tokens(where, "x", x, self.length, self.vocab, masks=True)
            x = F.one_hot(x, self.vocab + 1).to(self.net[0].weight.dtype)
        inputs = x.flatten(1)
        if self.time_conditioned:
            if t is None or not isinstance(t, torch.Tensor) or t.shape != (x.shape[0],):
                raise ValueError(f"{where}: a time-conditioned denoiser needs `t` of shape [{x.shape[0]}]; "
                                 f"got {None if t is None else tuple(getattr(t, 'shape', ()))}.")
            t = t.to(inputs.dtype)[:, None]
            inputs = torch.cat([inputs, t, torch.sin(math.pi * t), torch.cos(math.pi * t), t * t], 1)
        return self.net(inputs).view(-1, self.length, self.vocab)


class ExactDenoiser(nn.Module):
    """The data's own conditionals p(x_i | x_M) read from the exact distribution: the optimum of
    [AO]. x [N, L] tokens -> logits [N, L, V] (log-probabilities)"""

    time_conditioned = False

    def __init__(self, dist: StringDistribution):
        super().__init__()
        self.length, self.vocab = dist.length, dist.vocab
        target = dist.masked_targets
        total = target.sum(-1, keepdim=True)
        table = torch.where(total > 0, target / total.clamp(min=1e-300), 1.0 / dist.vocab)
        self.register_buffer("log_table", table.clamp(min=1e-300).log())

    def forward(self, x, t=None):
        check_tokens("discrete.ExactDenoiser", "x", x, self.length, self.vocab, masks=True)
        return self.log_table[(x * (self.vocab + 1) ** torch.arange(self.length - 1, -1, -1)).sum(1)]


def denoising_loss(denoiser, x0, x_t, t, weight):
    """The [ELBO] estimate of a batch: weight * sum over masked positions of -log q(x0_i | x_t).
    x0, x_t [B, L], t [B], weight [B] -> scalar"""
    logits = denoiser(x_t, t if denoiser.time_conditioned else None)
    nll = F.cross_entropy(logits.transpose(1, 2), x0, reduction="none")  # [B, L]
    return (weight * (nll * (x_t == denoiser.vocab)).sum(1)).mean()


def train_denoiser(dist: StringDistribution, time_conditioned: bool, seed: int, steps: int = 200,
                   batch: int = 256, lr: float = 8e-3, hidden: int = 64) -> MaskedDenoiser:
    """A MaskedDenoiser trained on [ELBO]; with and without time input it sees the same draws."""
    with seeded(seed):
        model = MaskedDenoiser(dist.length, dist.vocab, hidden, time_conditioned)
    g = torch.Generator().manual_seed(seed)
    fit(model.parameters(), lambda: denoising_loss(model, *training_batch(dist, batch, g)), steps, lr,
        seed=seed, desc="time-conditioned denoiser" if time_conditioned else "denoiser")
    return model.eval().requires_grad_(False)


@functools.lru_cache(maxsize=8)
def trained_denoiser(seed: int, time_conditioned: bool = False) -> MaskedDenoiser:
    """The denoiser of `dna_toy`, trained once per process (shared by the discrete papers' claims;
    never train it further: copy it)."""
    return train_denoiser(dna_toy(), time_conditioned, seed)


def conditionals(denoiser, t_of_state=None):
    """log q(v | y)_i of the denoiser at every partial string y (time t_of_state(k) with k masked,
    default k / L). -> states [S, L], log q [S, L, V] float64"""
    length, vocab = denoiser.length, denoiser.vocab
    states = partial_states(length, vocab)
    k = (states == vocab).sum(1)
    t = (t_of_state or (lambda k: k / length))(k.double()).float()
    with torch.no_grad():
        logits = denoiser(states, t if denoiser.time_conditioned else None)
    check_finite("discrete.conditionals", "denoiser output", logits)
    return states, F.log_softmax(logits.double(), -1)


def nll_bound(denoiser, dist: StringDistribution, nodes: int = 8) -> float:
    """[ELBO] over the exact distribution, in nats per string: [AO]'s weights without time input,
    Gauss-Legendre in t on `nodes` points with it. -> float (>= dist.entropy())"""
    check_int("discrete.nll_bound", "nodes", nodes, low=1)
    check_matches("discrete.nll_bound", denoiser, dist.length, dist.vocab)
    L, V = dist.length, dist.vocab
    k = (partial_states(L, V) == V).sum(1).double()
    if not denoiser.time_conditioned:
        cross = -(dist.masked_targets * conditionals(denoiser)[1]).sum((1, 2))  # [S]
        beta = torch.exp(torch.lgamma(k.clamp(min=1)) + torch.lgamma(L - k + 1) - math.lgamma(L + 1))
        return float((torch.where(k > 0, beta, 0.0) * cross).sum())
    points, weights = np.polynomial.legendre.leggauss(nodes)
    total = 0.0
    for t, w in zip((points + 1) / 2, weights / 2):
        logq = conditionals(denoiser, lambda k, t=float(t): torch.full_like(k, t))[1]
        cross = -(dist.masked_targets * logq).sum((1, 2))
        total += float(w * (torch.where(k > 0, t ** (k - 1) * (1 - t) ** (L - k), 0.0) * cross).sum())
    return total


def order_sampler_distribution(denoiser, reference=None):
    """The exact distribution of strings generated by unmasking one uniformly chosen masked position
    per step (L steps, t = k / L with k masked), and, given a `reference` denoiser, the expected sum
    over the steps of KL(q(.|x_t)_i || q_ref(.|x_t)_i) at the position unmasked (the KL between the
    two samplers' trajectories). -> probs [V^L] float64, trajectory KL (float, or None)"""
    length, vocab = denoiser.length, denoiser.vocab
    states, logq = conditionals(denoiser)
    masked = states == vocab  # [S, L]
    k = masked.sum(1)
    place = (vocab + 1) ** torch.arange(length - 1, -1, -1)
    step = (torch.arange(vocab) - vocab)[None, None, :] * place[None, :, None]  # [1, L, V] MASK -> v
    if reference is not None:
        check_matches("discrete.order_sampler_distribution", reference, length, vocab, "reference")
        kl_terms = (logq.exp() * (logq - conditionals(reference)[1])).sum(-1)  # [S, L]
    p, kl = torch.zeros(states.shape[0], dtype=torch.float64), 0.0
    p[-1] = 1.0  # every token masked
    for level in range(length, 0, -1):
        rows = (k == level).nonzero()[:, 0]
        each = (p[rows] / level)[:, None] * masked[rows]  # [R, L]: probability of unmasking position i
        child = torch.where(masked[rows, :, None], rows[:, None, None] + step, 0)  # [R, L, V]
        p.index_add_(0, child.flatten(), (each[..., None] * logq[rows].exp()).flatten())
        if reference is not None:
            kl += float((each * kl_terms[rows]).sum())
    full = k == 0
    strings = states[full]
    order = (strings * vocab ** torch.arange(length - 1, -1, -1)).sum(1).argsort()
    return p[full][order], (kl if reference is not None else None)


def entropy(p) -> float:
    """H(p) = -sum p log p in nats. p [K] -> float"""
    p = p.double()
    return float(-(p * p.clamp(min=1e-300).log()).sum())


def kl_divergence(p, q) -> float:
    """KL(p || q) = sum p log(p / q) in nats. p, q [K] -> float"""
    p, q = p.double(), q.double()
    return float((p * (p.clamp(min=1e-300).log() - q.clamp(min=1e-300).log())).sum())


def total_variation(p, q) -> float:
    """TV(p, q) = 1/2 sum |p - q|. p, q [K] -> float"""
    if p.shape != q.shape:
        raise ValueError(f"discrete.total_variation: `p` and `q` must have one shape; got {tuple(p.shape)} "
                         f"and {tuple(q.shape)}.")
    return float((p.double() - q.double()).abs().sum() / 2)
