"""Metastable states: at a small beta the fixed points are averages over clusters of similar patterns.

Ramsauer et al. 2020, "Hopfield Networks is All You Need" (arXiv:2008.02217), section 2 ("the update
rule converges ... to a fixed point near a stored pattern, or to a metastable state that averages over
a subset of patterns, or to the global fixed point near the mean of all patterns") and section 3 (the
attention heads of BERT in the three regimes). The regime is set by beta against the separations: a
group of patterns whose mutual separation Delta is small against 1 / beta is not resolved, and the
update's fixed point is their (softmax-weighted) average; a large beta resolves every pattern.

The experiment (`metastable_experiment`, a reproduction): CLUSTERS clusters of MEMBERS random +-1
patterns each in D = DIM units, every member its cluster's random centre with SPREAD of the units
flipped. Each member, with QUERY_FLIPPED of its units flipped, is iterated to a fixed point (STEPS
updates of eq. 3) at BETA_SMALL and at BETA_LARGE. Distances are measured in units of the member's own
distance to its cluster's mean, ||x - mean||: at BETA_SMALL the fixed point should lie near the cluster
mean (`small_to_mean` small) and far from the member (`small_to_pattern` near 1); at BETA_LARGE on the
member (`large_to_pattern` near 0). At BETA_TINY the distance to the mean of all patterns is reported
(the global fixed point).

beta was chosen from the geometry before running: within a cluster the logits of the mean differ by
about sqrt(D SPREAD) * 2 = 5, so BETA_SMALL = 0.05 leaves them unresolved, while the clusters are
D (1 - 2 SPREAD)^2 = 104 apart against a spread of about sqrt(D) = 11, so it separates the clusters;
BETA_LARGE = 1 resolves members that differ in about 2 D SPREAD = 13 units (logits 26 apart).
"""
import torch

from course.checks import check_int
from course.claims import REPRODUCTION, Claim
from course.hopfield import classical, modern

DIM, CLUSTERS, MEMBERS, SPREAD = 128, 4, 8, 0.05
QUERY_FLIPPED = 0.03
BETA_TINY, BETA_SMALL, BETA_LARGE = 0.001, 0.05, 1.0
STEPS = 50


def clustered_patterns(clusters: int, members: int, D: int, spread: float, generator: torch.Generator):
    """`clusters` random +-1 centres [clusters, D], and `members` patterns around each, every one its centre
    with round(spread D) units flipped: patterns [clusters * members, D] (cluster by cluster) and the
    cluster of each pattern [clusters * members]."""
    check_int("clustered_patterns", "clusters", clusters, low=1)
    check_int("clustered_patterns", "members", members, low=1)
    check_int("clustered_patterns", "D", D, low=1)
    if not 0 <= spread <= 1:
        raise ValueError(f"clustered_patterns: `spread` must be in [0, 1]; got {spread}.")
    centres = classical.random_patterns(clusters, D, generator)
    patterns = classical.flip(centres.repeat_interleave(members, 0), spread, generator)
    return patterns, torch.arange(clusters).repeat_interleave(members)


def cluster_means(patterns, cluster):
    """The mean pattern of each cluster. patterns [M, D], cluster [M] in 0..K-1 -> [K, D]"""
    K = int(cluster.max()) + 1
    sums = torch.zeros(K, patterns.shape[1], dtype=patterns.dtype).index_add_(0, cluster, patterns)
    return sums / torch.bincount(cluster, minlength=K)[:, None].to(patterns.dtype)


def fixed_points(queries, patterns, beta: float, steps: int = STEPS):
    """The states [N, D] after `steps` updates of eq. 3 from the queries, and the relative residual
    max ||update(xi) - xi|| / ||xi|| that says how far they are from a fixed point."""
    states = modern.retrieve(queries, patterns, beta, steps=steps)
    moved = modern.update(states, patterns, beta) - states
    return states, float((moved.norm(dim=1) / states.norm(dim=1).clamp_min(1e-12)).max())


def relative_distances(states, targets, scale) -> float:
    """The mean of ||state - target|| / scale over the rows. states, targets [N, D], scale [N] -> float"""
    return float(((states - targets).norm(dim=1) / scale).mean())


def metastable_experiment(seed: int) -> dict:
    """Distances of the fixed points to the cluster mean and to the queried pattern at three betas."""
    check_int("metastable_experiment", "seed", seed, low=0)
    g = torch.Generator().manual_seed(seed)
    patterns, cluster = clustered_patterns(CLUSTERS, MEMBERS, DIM, SPREAD, g)
    means = cluster_means(patterns, cluster)[cluster]  # [M, D]: each member's cluster mean
    scale = (patterns - means).norm(dim=1)  # [M]: each member's distance to its cluster mean
    queries = classical.flip(patterns, QUERY_FLIPPED, g)
    out = {}
    residuals = []
    for name, beta in (("small", BETA_SMALL), ("large", BETA_LARGE)):
        states, residual = fixed_points(queries, patterns, beta)
        residuals.append(residual)
        out[f"{name}_to_mean"] = relative_distances(states, means, scale)
        out[f"{name}_to_pattern"] = relative_distances(states, patterns, scale)
    out["fixed_point_residual"] = max(residuals)
    states, _ = fixed_points(queries, patterns, BETA_TINY)
    overall = patterns.mean(0).expand_as(patterns)
    out["tiny_to_global_mean"] = relative_distances(states, overall, scale)
    out["tiny_to_mean"] = relative_distances(states, means, scale)
    return out


def beta_sweep(betas, seed: int = 0, steps: int = STEPS) -> dict:
    """For the notebook: the mean distances of the fixed points to the cluster mean, to the queried pattern
    and to the mean of all patterns (in units of ||x - cluster mean||) at each beta of `betas`, on the
    experiment's patterns. -> {"beta", "to_mean", "to_pattern", "to_global_mean": lists}"""
    g = torch.Generator().manual_seed(seed)
    patterns, cluster = clustered_patterns(CLUSTERS, MEMBERS, DIM, SPREAD, g)
    means = cluster_means(patterns, cluster)[cluster]
    scale = (patterns - means).norm(dim=1)
    queries = classical.flip(patterns, QUERY_FLIPPED, g)
    overall = patterns.mean(0).expand_as(patterns)
    out = {"beta": [], "to_mean": [], "to_pattern": [], "to_global_mean": []}
    for beta in betas:
        states, _ = fixed_points(queries, patterns, beta, steps)
        out["beta"].append(float(beta))
        out["to_mean"].append(relative_distances(states, means, scale))
        out["to_pattern"].append(relative_distances(states, patterns, scale))
        out["to_global_mean"].append(relative_distances(states, overall, scale))
    return out


CLAIM = Claim(
    paper="Ramsauer et al. 2020",
    citation="Hopfield Networks is All You Need (arXiv:2008.02217), section 2 (fixed points near a "
             "pattern, metastable states averaging a subset, the global fixed point) and section 3",
    statement="at a small beta the update's fixed point is the average of a cluster of similar patterns "
              "(a metastable state); at a large beta it is the single pattern queried",
    kind=REPRODUCTION,
    experiment=metastable_experiment,
    thresholds=("small_to_mean <= 0.3", "small_to_pattern >= 0.7", "large_to_pattern <= 0.05",
                "fixed_point_residual <= 0.0001"),
    summary=lambda m: (
        f"in units of a member's distance to its cluster mean: at beta = {BETA_SMALL} the fixed point is "
        f"{m['small_to_mean']:.2f} from the cluster mean and {m['small_to_pattern']:.2f} from the queried "
        f"pattern; at beta = {BETA_LARGE}, {m['large_to_pattern']:.2g} from the pattern; at beta = "
        f"{BETA_TINY}, {m['tiny_to_global_mean']:.2f} from the mean of all patterns"),
    note=f"{CLUSTERS} clusters of {MEMBERS} +-1 patterns in D = {DIM}, members {SPREAD:.0%} flipped from "
         f"their centre; queries {QUERY_FLIPPED:.0%} flipped; {STEPS} updates to the fixed point.",
)
