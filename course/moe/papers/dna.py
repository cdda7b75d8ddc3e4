"""A distributed neural architecture at toy scale, after Cowsik, He & Gromov 2025, "Towards
Distributed Neural Architectures" (DNA).

A DNA is a pool of modules (attention, MLP, identity, ...) and routers. There is no fixed order of
layers: at every step a router sends each token to one module of the pool, so each token takes its
own path through the modules. Mixture-of-experts (a pool of MLPs at one place), mixture-of-depths
(identity as a module) and parameter sharing (a module reused at several steps) are special cases.
The paper finds that the paths tokens take are distributed according to a power law.

Step s, for tokens h [B, T, D] and a pool of M modules f_m:

    p     = softmax(h R_s)                       [B, T, M]  router s
    m(t)  = argmax_m p_t                          top-1 choice per token
    h_t  <- h_t + p_t[m(t)] f_{m(t)}(h)_t         the gate keeps the router trainable (Switch)

plus a small balancing term M sum_m f_m P_m per step (Switch Transformer, Fedus et al. 2021:
f_m fraction of tokens sent to m, P_m mean router probability; `course.moe.losses`). Here an attention module lets a
token attend, causally, only to the tokens routed to that same module at that step, so the routers
also decide which tokens communicate. A token's path is its S choices, one of M^S.

The task: sequences of symbols in which "copy" symbols must predict the previous symbol (needs
attention) and "map" symbols a fixed function of themselves (an MLP suffices).
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from course.claims import REPRODUCTION, Claim
from course.metrics import linear_fit
from course.moe.losses import switch_balance_loss
from course.train import fit, seeded

NUM_SYMBOLS = 16
DEFAULT_POOL = ("attention", "attention", "mlp", "mlp", "identity")


def sequence_task(batch: int, length: int, generator: torch.Generator, zipf: float = 1.0):
    """Symbol sequences and their targets: tokens [B, T], targets [B, T].

    Symbol s is drawn with probability proportional to (s + 1)^-zipf: Zipf's law, as for the words
    of a language (zipf=0: uniform). Even symbols are "copy" tokens, odd ones "map" tokens.
    """
    weights = torch.arange(1, NUM_SYMBOLS + 1, dtype=torch.float64) ** -zipf  # [V]
    tokens = torch.multinomial(weights, batch * length, replacement=True,
                               generator=generator).view(batch, length)
    previous = torch.cat([tokens[:, :1], tokens[:, :-1]], dim=1)  # [B, T]
    mapped = (3 * tokens + 5) % NUM_SYMBOLS  # [B, T] a symbol-wise function
    return tokens, torch.where(tokens % 2 == 0, previous, mapped)


class RoutedAttention(nn.Module):
    """Single-head causal attention among the tokens routed to this module."""

    def __init__(self, d: int):
        super().__init__()
        self.norm, self.qkv, self.out = nn.LayerNorm(d), nn.Linear(d, 3 * d), nn.Linear(d, d)

    def forward(self, h, member):
        """h [B, T, D], member [B, T] (routed here) -> [B, T, D]."""
        q, k, v = self.qkv(self.norm(h)).chunk(3, dim=-1)  # [B, T, D] each
        T = h.shape[1]
        causal = torch.ones(T, T, dtype=torch.bool, device=h.device).tril()
        # a query always sees itself, so rows of tokens routed elsewhere stay finite (unused)
        allowed = causal & member[:, None, :] | torch.eye(T, dtype=torch.bool, device=h.device)
        scores = (q @ k.transpose(1, 2)) / math.sqrt(h.shape[-1])  # [B, T, T]
        return self.out(scores.masked_fill(~allowed, float("-inf")).softmax(-1) @ v)


class MLP(nn.Module):
    """A pre-norm feed-forward block with one GELU hidden layer of width 2 D."""

    def __init__(self, d: int):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def forward(self, h, member):
        """h [B, T, D] -> [B, T, D]; `member` is unused: an MLP looks at one token at a time."""
        return self.net(h)


class Identity(nn.Module):
    """The skip module: choosing it lets a token sit out a step (mixture-of-depths)."""

    def forward(self, h, member):
        """A skip: the token leaves this step unchanged. -> [B, T, D] zeros"""
        return torch.zeros_like(h)


class DNA(nn.Module):
    """Embedding, S routing steps over one shared pool of modules, and a read-out."""

    def __init__(self, d: int = 32, steps: int = 4, length: int = 12,
                 pool: tuple = DEFAULT_POOL):
        super().__init__()
        kinds = {"attention": RoutedAttention, "mlp": MLP, "identity": lambda d: Identity()}
        bad = [p for p in pool if p not in kinds]
        if bad:
            raise ValueError(f"DNA: `pool` must name modules from {sorted(kinds)}; got {bad}.")
        self.pool_names = tuple(pool)
        self.embed, self.position = nn.Embedding(NUM_SYMBOLS, d), nn.Parameter(torch.zeros(length, d))
        self.modules_pool = nn.ModuleList(kinds[p](d) for p in pool)
        self.routers = nn.ModuleList(nn.Linear(d, len(pool)) for _ in range(steps))
        self.readout = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, NUM_SYMBOLS))

    def forward(self, tokens):
        """tokens [B, T] -> logits [B, T, V], paths [B, T, S] (module per step), balance loss []."""
        if tokens.dim() != 2 or tokens.shape[1] > self.position.shape[0]:
            raise ValueError(f"DNA: `tokens` must be [B, T] with T <= length = "
                             f"{self.position.shape[0]}; got shape {tuple(tokens.shape)}.")
        h = self.embed(tokens) + self.position[:tokens.shape[1]]  # [B, T, D]
        choices, balance = [], h.new_zeros(())
        for router in self.routers:
            probs = router(h).softmax(-1)  # [B, T, M]
            choice = probs.argmax(-1)  # [B, T]
            balance = balance + switch_balance_loss(probs, choice.unsqueeze(-1))
            update = torch.zeros_like(h)
            for m, module in enumerate(self.modules_pool):
                member = choice == m  # [B, T]
                if member.any():
                    update = torch.where(member[..., None], module(h, member), update)
            h = h + probs.gather(-1, choice[..., None]) * update
            choices.append(choice)
        return self.readout(h), torch.stack(choices, dim=-1), balance / len(self.routers)


def path_ids(paths, num_modules: int):
    """Each token's path as one integer, sum_s m_s M^s. [B, T, S] -> [B T]"""
    weights = num_modules ** torch.arange(paths.shape[-1], device=paths.device)
    return (paths * weights).sum(-1).flatten()


def path_frequencies(paths, num_modules: int):
    """Tokens per distinct path, most frequent first. [B, T, S] -> [P]"""
    counts = torch.bincount(path_ids(paths, num_modules))
    return counts[counts > 0].sort(descending=True).values


def log_log_fit(counts, min_count: int = 2) -> dict:
    """Rank-frequency fits: the power law log c = a + slope log r, and an exponential log c = a + b r.

    Paths seen fewer than `min_count` times are left out of the fits: their counts are a flat floor
    set by the sample size, not by the distribution.
    """
    c = counts[counts >= min_count].double()
    rank = torch.arange(1, c.numel() + 1, dtype=torch.float64)
    power, exponential = linear_fit(rank.log(), c.log()), linear_fit(rank, c.log())
    return {"slope": power[0], "r2_power": power[1], "r2_exponential": exponential[1],
            "paths_fitted": c.numel()}


def top_fraction_coverage(counts, fraction: float = 0.1) -> float:
    """Share of tokens on the most frequent `fraction` of the paths seen. [P] -> float"""
    top = max(1, math.ceil(fraction * counts.numel()))
    return (counts[:top].sum() / counts.sum()).item()


def train_dna(steps: int = 300, batch: int = 32, length: int = 12, d: int = 32, seed: int = 0,
              balance_weight: float = 0.01, lr: float = 3e-3, routing_steps: int = 4,
              pool: tuple = DEFAULT_POOL, zipf: float = 1.0):
    """Train a DNA on fresh batches of `sequence_task` with Adam; returns the model and the Fit."""
    g = torch.Generator().manual_seed(seed)
    with seeded(seed):
        model = DNA(d=d, steps=routing_steps, length=length, pool=pool)

    def loss():
        tokens, targets = sequence_task(batch, length, g, zipf)
        logits, _, balance = model(tokens)
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten()) + balance_weight * balance
    return model, fit(model.parameters(), loss, steps, lr, seed=seed, desc="DNA")


@torch.no_grad()
def measure_paths(model: DNA, batch: int = 256, length: int = 12, seed: int = 1,
                  zipf: float = 1.0) -> dict:
    """Path statistics and accuracy of a DNA on fresh sequences, and the symbols' own rank law."""
    tokens, targets = sequence_task(batch, length, torch.Generator().manual_seed(seed), zipf)
    logits, paths, _ = model(tokens)
    counts = path_frequencies(paths, len(model.pool_names))
    symbols = torch.bincount(tokens.flatten()).sort(descending=True).values  # [V]
    return {"accuracy": (logits.argmax(-1) == targets).float().mean().item(),
            "distinct_paths": counts.numel(), "possible_paths": len(model.pool_names) ** paths.shape[-1],
            "top10_coverage": top_fraction_coverage(counts), **log_log_fit(counts),
            "symbol_slope": log_log_fit(symbols)["slope"], "counts": counts}


def dna_experiment(seed: int, steps: int = 200) -> dict:
    """The paths of a trained toy DNA (and of untrained routers) on fresh sequences."""
    with seeded(seed):
        untrained = measure_paths(DNA())
    model, training = train_dna(steps=steps, seed=seed)
    trained = measure_paths(model)
    m = {k: v for k, v in trained.items() if k != "counts"}
    m.update(untrained_top10_coverage=untrained["top10_coverage"],
             untrained_slope=untrained["slope"], final_loss=training.final_loss, steps=steps,
             counts=trained["counts"].tolist())
    # a power law is a straight line on log-log axes: it must fit well, and better than an
    # exponential (a straight line on log-linear axes)
    m["power_minus_exponential_r2"] = m["r2_power"] - m["r2_exponential"]
    return m


CLAIM = Claim(
    paper="Cowsik, He, Gromov 2025",
    citation="Towards Distributed Neural Architectures (arXiv:2506.22389)",
    statement="the paths that tokens take through the modules are distributed according to a "
              "power law",
    kind=REPRODUCTION,
    experiment=dna_experiment,
    thresholds=("r2_power >= 0.9", "power_minus_exponential_r2 > 0", "top10_coverage >= 0.5"),
    held_on=(),
    note="In this toy the rank-frequency curve of the paths is fitted better by an exponential "
         "than by a power law on every seed; the paper's models are language and vision models "
         "trained at scale, this one is tiny and trained for seconds.",
    summary=lambda m: (
        f"{m['distinct_paths']} of {m['possible_paths']} paths used after {m['steps']} steps "
        f"(accuracy {m['accuracy']:.2f}); the top 10% of paths carry {m['top10_coverage']:.0%} of "
        f"tokens (untrained routers: {m['untrained_top10_coverage']:.0%}); rank-frequency: log-log "
        f"slope {m['slope']:.2f}, R^2 {m['r2_power']:.3f} for a power law vs "
        f"{m['r2_exponential']:.3f} for an exponential (the input symbols are Zipfian, slope "
        f"{m['symbol_slope']:.2f})"),
)
