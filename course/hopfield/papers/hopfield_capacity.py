"""Storage capacity: classical against modern Hopfield networks.

Ramsauer et al. 2020, "Hopfield Networks is All You Need" (arXiv:2008.02217), section 1 and section 2
(Theorem 3: the number of patterns that are stored and retrieved grows exponentially with the dimension
D; Theorem 4: a pattern is retrieved with one update). The baseline is the classical network of
Hopfield (1982) with Hebb's couplings and asynchronous updates, whose capacity for random patterns is
about 0.138 D (Amit, Gutfreund & Sompolinsky 1985).

The experiment (`capacity_experiment`, a reproduction), random +-1 patterns throughout:

- classical, D = D_CLASSICAL: for loads M / D on LOADS, each stored pattern with FLIPPED of its units
  flipped is recalled by asynchronous sweeps (`course.hopfield.classical.recall`); a load counts as
  retrieved when at least REQUIRED of the patterns come back with overlap >= MIN_OVERLAP. The capacity
  is the largest load before the first that fails.
- modern, same D and the same corrupted queries: M = 10 D and M = 50 D patterns, ONE update
  xi <- softmax(beta xi X^T) X (eq. 3, `course.hopfield.modern.retrieve`) at beta = BETA; the fraction
  retrieved with the same criterion.
- the growth with D: at D in SCAN_DIMS, the largest M on a grid of powers of two at which REQUIRED of
  the patterns (queried with one flipped unit) are retrieved exactly (the sign of the state equals the
  pattern), for both networks; the modern network's count should grow like 2^(c D), i.e. by c bits per
  added unit (`scan_bits_per_unit`, the slope of log2 capacity against D), where a capacity linear in D
  gains log2(20 / 8) / 12 = 0.11 bits per unit over the scan.
"""
import math

import torch

from course.checks import check_int
from course.claims import REPRODUCTION, Claim
from course.hopfield import classical, modern

D_CLASSICAL = 200
LOADS = tuple(round(0.02 * k, 2) for k in range(2, 16))  # M / D from 0.04 to 0.30
FLIPPED = 0.05  # fraction of units flipped in a query
MIN_OVERLAP, REQUIRED = 0.95, 0.9
BETA = 1.0  # inverse temperature of the modern network (large: beta D >> log M)
MODERN_LOADS = (10, 50)  # M / D for the modern network's one-step retrieval
MAX_QUERIES = 256  # patterns queried per load (the first ones; all when fewer)
SCAN_DIMS = (8, 12, 16, 20)
SCAN_MAX_LOG2 = 15  # the scan's grid: M = 1, 2, 4, ..., 2^15
SWEEPS = 20


def classical_retrieved(patterns, flipped: float, generator: torch.Generator, sweeps: int = SWEEPS,
                        exact: bool = False):
    """Which of the first MAX_QUERIES stored patterns [M, D] of +-1 the classical network retrieves: each is
    stored by Hebb's rule, corrupted by flipping round(flipped D) units, and recalled by asynchronous
    sweeps. Retrieved: overlap >= MIN_OVERLAP (`exact`: the state equals the pattern).
    -> bool [min(M, MAX_QUERIES)]"""
    W = classical.hebbian_weights(patterns)
    targets = patterns[:MAX_QUERIES]
    final = classical.recall(classical.flip(targets, flipped, generator), W, sweeps, generator)
    if exact:
        return (final == targets).all(1)
    return classical.overlap(final, targets) >= MIN_OVERLAP


def modern_retrieved(patterns, flipped: float, generator: torch.Generator, beta: float = BETA,
                     exact: bool = False):
    """The same for the modern network with ONE update (Ramsauer et al. eq. 3) of each corrupted query;
    `exact`: the sign of the state equals the pattern. -> bool [min(M, MAX_QUERIES)]"""
    targets = patterns[:MAX_QUERIES]
    state = modern.retrieve(classical.flip(targets, flipped, generator), patterns, beta, steps=1)
    if exact:
        return (classical.sgn(state) == targets).all(1)
    return classical.overlap(state, targets) >= MIN_OVERLAP


def classical_capacity(D: int, generator: torch.Generator, loads=LOADS, flipped: float = FLIPPED) -> float:
    """The largest load M / D on `loads` before the first one at which fewer than REQUIRED of the patterns
    are retrieved (0 if the first fails)."""
    check_int("classical_capacity", "D", D, low=1)
    capacity = 0.0
    for load in loads:
        M = max(1, round(load * D))
        patterns = classical.random_patterns(M, D, generator)
        if classical_retrieved(patterns, flipped, generator).float().mean() < REQUIRED:
            break
        capacity = load
    return capacity


def largest_retrievable(D: int, network: str, generator: torch.Generator, max_log2: int = SCAN_MAX_LOG2,
                        beta: float = BETA) -> int:
    """The largest M = 2^k (k <= max_log2) before the first at which fewer than REQUIRED of the random
    patterns, queried with one flipped unit, are retrieved exactly; `network` is 'classical' or 'modern'
    (one update). -> M (0 if even one pattern is not retrieved)"""
    check_int("largest_retrievable", "D", D, low=1)
    check_int("largest_retrievable", "max_log2", max_log2, low=0)
    if network not in ("classical", "modern"):
        raise ValueError(f"largest_retrievable: `network` must be 'classical' or 'modern'; got {network!r}.")
    best = 0
    for k in range(max_log2 + 1):
        patterns = classical.random_patterns(2 ** k, D, generator)
        if network == "classical":
            ok = classical_retrieved(patterns, 1 / D, generator, exact=True)
        else:
            ok = modern_retrieved(patterns, 1 / D, generator, beta, exact=True)
        if ok.float().mean() < REQUIRED:
            break
        best = 2 ** k
    return best


def bits_per_unit(dims, counts) -> float:
    """The least-squares slope of log2(count) against D: how many bits the capacity gains per unit."""
    x = torch.tensor(dims, dtype=torch.float64)
    y = torch.tensor([math.log2(max(c, 1)) for c in counts], dtype=torch.float64)
    x = x - x.mean()
    return float((x * (y - y.mean())).sum() / (x * x).sum())


def capacity_experiment(seed: int) -> dict:
    """Classical capacity at D_CLASSICAL, modern one-step retrieval at 10 D and 50 D, and the growth of
    the number of retrievable patterns with D for both networks."""
    check_int("capacity_experiment", "seed", seed, low=0)
    g = torch.Generator().manual_seed(seed)
    out = {"classical_load": classical_capacity(D_CLASSICAL, g)}
    for load in MODERN_LOADS:
        patterns = classical.random_patterns(load * D_CLASSICAL, D_CLASSICAL, g)
        out[f"modern_retrieved_{load}D"] = float(modern_retrieved(patterns, FLIPPED, g).float().mean())
    out["load_ratio"] = MODERN_LOADS[-1] / max(out["classical_load"], 1 / D_CLASSICAL)
    modern_counts = [largest_retrievable(D, "modern", g) for D in SCAN_DIMS]
    classical_counts = [largest_retrievable(D, "classical", g) for D in SCAN_DIMS]
    for D, m, c in zip(SCAN_DIMS, modern_counts, classical_counts):
        out[f"modern_M_D{D}"], out[f"classical_M_D{D}"] = float(m), float(c)
    out["scan_bits_per_unit"] = bits_per_unit(SCAN_DIMS, modern_counts)
    out["classical_scan_bits_per_unit"] = bits_per_unit(SCAN_DIMS, classical_counts)
    return out


CLAIM = Claim(
    paper="Ramsauer et al. 2020",
    citation="Hopfield Networks is All You Need (arXiv:2008.02217), section 2, Theorems 3 and 4 (storage "
             "capacity exponential in D, retrieval with one update), against the classical capacity "
             "0.138 D (Amit et al. 1985)",
    statement="the classical Hopfield network retrieves random patterns up to about 0.14 D; the modern "
              "network, at the same D and with one update, retrieves 50 D of them, and the number it "
              "retrieves grows exponentially with D",
    kind=REPRODUCTION,
    experiment=capacity_experiment,
    thresholds=("classical_load >= 0.08", "classical_load <= 0.2", "modern_retrieved_50D >= 0.99",
                "scan_bits_per_unit >= 0.4"),
    summary=lambda m: (
        f"classical capacity {m['classical_load']:.2f} D at D = {D_CLASSICAL}; the modern network retrieves "
        f"{m['modern_retrieved_10D']:.0%} at 10 D and {m['modern_retrieved_50D']:.0%} at 50 D in one "
        f"update ({m['load_ratio']:.0f}x the classical load); retrievable patterns at D = "
        f"{', '.join(str(D) for D in SCAN_DIMS)}: modern "
        f"{', '.join(str(int(m[f'modern_M_D{D}'])) for D in SCAN_DIMS)} "
        f"({m['scan_bits_per_unit']:.2f} bits per unit), classical "
        f"{', '.join(str(int(m[f'classical_M_D{D}'])) for D in SCAN_DIMS)}"),
    note=f"Random +-1 patterns; queries flip {FLIPPED:.0%} of the units (one unit in the scan); retrieved: "
         f"overlap >= {MIN_OVERLAP} for at least {REQUIRED:.0%} of the patterns (the scan: exactly); "
         f"beta = {BETA}; at most {MAX_QUERIES} patterns queried per load.",
)
