"""Dense associative memory: the numeric check of a C paper, "Replica symmetry breaking in dense neural
networks" (Albanese, Alemanno, Alessandrelli & Barra 2021, arXiv:2111.12997).

No claim here: the notebook's reading cell on that paper calls these functions. The paper studies dense
(p-spin) Hebbian networks, whose energy couples p units at once; their storage capacity, in the
Baldi-Venkatesh high-storage regime, grows like D^(p - 1) rather than like D for the pairwise Hopfield
network. The network is Krotov & Hopfield's dense associative memory (2016, arXiv:1606.01164, eq. 2):

    E(s) = -D sum_mu F(xi_mu . s / D),   F(x) = x^n,   i.e.  -sum_mu (xi_mu . s)^n / D^(n - 1),

for +-1 patterns xi_mu [M, D] and a +-1 state s [D]; n = 2 is the classical network (its energy is twice
the Hebbian one plus a constant, and its updates are the same). Zero-temperature asynchronous dynamics
set each unit to the sign that lowers E (eq. 3 of Krotov & Hopfield):

    s_i <- sgn( sum_mu (h_mu + xi_mu,i)^n - (h_mu - xi_mu,i)^n ),   h_mu = sum_{j != i} xi_mu,j s_j,

and Monte-Carlo (Glauber) dynamics at temperature T > 0 set s_i = +1 with probability
1 / (1 + exp(-Delta_i / T)), Delta_i = E(s_i = -1) - E(s_i = +1). `capacity_check` measures the largest
number of random patterns retrieved at a few D for n = 2 and n = 4, and the exponent of their growth.
"""
import math

import torch

from course.checks import check_int, check_tensor
from course.hopfield import classical

FLIPPED, MIN_OVERLAP, REQUIRED = 0.05, 0.95, 0.9
MAX_QUERIES = MIN_QUERIES = 32  # patterns queried per memory; queries per load at least
SWEEPS = 10
CHECK_DIMS = (16, 32, 48)


def check_order(where: str, n) -> int:
    """n, the order of the interaction F(x) = x^n, as an int >= 2."""
    check_int(where, "n", n, low=2)
    return n


def check_dense_args(where: str, states, patterns, n) -> int:
    """states [N, D] and +-1 patterns [M, D], or a batch of T memories: states [T, N, D], patterns
    [T, M, D]; returns n."""
    check_tensor(where, "patterns", patterns, kind="float")
    if patterns.dim() not in (2, 3):
        raise ValueError(f"{where}: `patterns` must be [M, D] or [T, M, D]; got shape "
                         f"{tuple(patterns.shape)}.")
    classical.check_spins(where, "patterns", patterns)
    check_tensor(where, "states", states, ndim=patterns.dim(), kind="float")
    if states.shape[-1] != patterns.shape[-1] or states.shape[:-2] != patterns.shape[:-2]:
        raise ValueError(f"{where}: `states` [(T,) N, D] and `patterns` [(T,) M, D] must share T and D; got "
                         f"states {tuple(states.shape)} and patterns {tuple(patterns.shape)}.")
    return check_order(where, n)


def dense_energy(states, patterns, n: int = 4):
    """E(s) = -sum_mu (xi_mu . s)^n / D^(n - 1) (Krotov & Hopfield 2016, eq. 2) of each state.
    states [(T,) N, D], patterns [(T,) M, D] of +-1 -> [(T,) N] (float64)"""
    n = check_dense_args("dense_energy", states, patterns, n)
    D = patterns.shape[-1]
    return -((states.double() @ patterns.double().transpose(-1, -2)) ** n).sum(-1) / D ** (n - 1)


def energy_gaps(h, column, n: int):
    """Delta_i = E(s_i = -1) - E(s_i = +1) up to the factor D^(n - 1): sum_mu (h_mu + xi_mu,i)^n -
    (h_mu - xi_mu,i)^n, from the overlaps without unit i, h [(T,) N, M], and the patterns' unit i,
    column [(T,) 1, M]. -> [(T,) N]"""
    return ((h + column) ** n - (h - column) ** n).sum(-1)


def dense_update_asynchronous(states, patterns, n: int = 4, generator: torch.Generator | None = None,
                              temperature: float = 0.0):
    """One sweep over the units in a random order; each is set to the sign that lowers the energy
    (temperature 0), or to +1 with the Glauber probability 1 / (1 + exp(-Delta_i / T)). The overlaps
    xi_mu . s are kept in float64, where the integer powers are exact. states [(T,) N, D] against
    patterns [(T,) M, D] -> [(T,) N, D]"""
    n = check_dense_args("dense_update_asynchronous", states, patterns, n)
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"dense_update_asynchronous: `temperature` must be finite and >= 0; got "
                         f"{temperature!r}.")
    D = patterns.shape[-1]
    X = patterns.double()
    s = states.double().clone()
    h = s @ X.transpose(-1, -2)  # [(T,) N, M]
    for i in torch.randperm(D, generator=generator).tolist():
        column = X[..., i].unsqueeze(-2)  # [(T,) 1, M]
        h -= s[..., i:i + 1] * column
        gap = energy_gaps(h, column, n)
        if temperature == 0:
            new = classical.sgn(gap)
        else:
            up = torch.rand(gap.shape, generator=generator, dtype=torch.float64)
            up = up < torch.sigmoid(gap / (temperature * D ** (n - 1)))
            new = torch.where(up, 1.0, -1.0).double()
        s[..., i] = new
        h += new.unsqueeze(-1) * column
    return s.to(states.dtype)


def dense_recall(states, patterns, n: int = 4, sweeps: int = SWEEPS,
                 generator: torch.Generator | None = None):
    """Zero-temperature sweeps until nothing changes (at most `sweeps`). states [(T,) N, D] -> same"""
    check_int("dense_recall", "sweeps", sweeps, low=0)
    for _ in range(sweeps):
        new = dense_update_asynchronous(states, patterns, n, generator)
        if torch.equal(new, states):
            break
        states = new
    return states


def retrieved_fraction(patterns, n: int, generator: torch.Generator, flipped: float = FLIPPED) -> float:
    """The fraction of the first MAX_QUERIES patterns of each memory, patterns [(T,) M, D], recalled with
    overlap >= MIN_OVERLAP from a copy with round(flipped D) units flipped."""
    targets = patterns[..., :MAX_QUERIES, :]
    D = patterns.shape[-1]
    queries = classical.flip(targets.reshape(-1, D), flipped, generator).reshape(targets.shape)
    final = dense_recall(queries, patterns, n, SWEEPS, generator)
    return float((classical.overlap(final, targets) >= MIN_OVERLAP).float().mean())


def dense_capacity(D: int, n: int, generator: torch.Generator, max_log2: int = 12) -> int:
    """The largest M = 2^k (k <= max_log2) before the first at which fewer than REQUIRED of the random
    patterns are retrieved (0 if one pattern is not). Below MIN_QUERIES patterns, ceil(MIN_QUERIES / M)
    independent memories are drawn at once, so that one unlucky draw of a few patterns does not decide."""
    check_int("dense_capacity", "D", D, low=1)
    n = check_order("dense_capacity", n)
    check_int("dense_capacity", "max_log2", max_log2, low=0)
    best = 0
    for k in range(max_log2 + 1):
        M = 2 ** k
        memories = classical.random_patterns(math.ceil(MIN_QUERIES / M) * M, D, generator)
        if retrieved_fraction(memories.reshape(-1, M, D), n, generator) < REQUIRED:
            break
        best = M
    return best


def growth_exponent(dims, counts) -> float:
    """The least-squares slope of log(count) against log(D): ~1 for the pairwise network's linear
    capacity, ~n - 1 for the dense one's D^(n - 1)."""
    x = torch.tensor([math.log(d) for d in dims], dtype=torch.float64)
    y = torch.tensor([math.log(max(c, 1)) for c in counts], dtype=torch.float64)
    x = x - x.mean()
    return float((x * (y - y.mean())).sum() / (x * x).sum())


def capacity_check(seed: int = 0, dims=CHECK_DIMS) -> dict:
    """The numbers of the notebook's cell: the capacity (largest power of two) of the pairwise (n = 2)
    and the dense (n = 4) network at each D of `dims`, their ratio at the largest D, and the exponent of
    their growth with D."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for n in (2, 4):
        counts = [dense_capacity(D, n, g) for D in dims]
        for D, c in zip(dims, counts):
            out[f"n{n}_M_D{D}"] = float(c)
        out[f"n{n}_exponent"] = growth_exponent(dims, counts)
    out["ratio_at_largest_D"] = out[f"n4_M_D{dims[-1]}"] / max(out[f"n2_M_D{dims[-1]}"], 1.0)
    return out
