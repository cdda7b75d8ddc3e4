"""Parallel retrieval in the multitasking Hebbian network: diluted patterns are retrieved several at once.

Agliari, Alessandrelli, Barra & Ricci-Tersenghi 2023, "Parallel Learning by Multitasking Neural
Networks" (arXiv:2308.04106), building on Agliari, Barra, Galluzzi, Guerra & Moauro, "Multitasking
associative networks" (Phys. Rev. Lett. 109, 268101, 2012). Patterns are *diluted*: each entry is
0 with probability d and +-1 with probability (1 - d) / 2 each,

    xi_mu,i in {-1, 0, +1},   couplings J_ij = (1 / N) sum_mu xi_mu,i xi_mu,j (Hebb, zero diagonal),

and the zero-temperature dynamics set sigma_i <- sgn(sum_j J_ij sigma_j). A pattern leaves the units
where it is 0 free; the others, through the couplings, use them to retrieve their own entries. In the
low-storage regime (K patterns, K << N) the signal-to-noise argument gives, from a cue of pattern 1, the
*hierarchical* state sigma_i = sgn(xi_1,i + d xi_2,i + d^2 xi_3,i + ...) with Mattis magnetisations

    m_mu = (1 / N) sum_i xi_mu,i sigma_i:   m_1 = 1 - d,  m_2 = d (1 - d),  m_3 = d^2 (1 - d), ...

stable while m_1 > m_2 + ... + m_K (for K = 3: d + d^2 < 1, d < 0.618); at stronger dilution the
amplitudes even out (the *parallel* regime). The undiluted network (d = 0, the Hopfield model) retrieves
the cued pattern alone: the other magnetisations are O(1 / sqrt(N)).

The experiment (`multitasking_experiment`, a reproduction): K = PATTERNS patterns in N = UNITS units,
every pattern in turn as the cue (its 0 entries filled with random signs), asynchronous sweeps to a fixed
point, at d = 0 (the baseline: the same network without dilution), d = D_HIERARCHICAL and
d = D_PARALLEL. A pattern counts as retrieved when |m_mu| >= RETRIEVED (several times the O(1/sqrt(N))
crosstalk); the sorted |m| are compared with (1 - d) d^(k - 1).
"""
import torch

from course.checks import check_int, check_tensor
from course.claims import REPRODUCTION, Claim
from course.hopfield import classical

UNITS, PATTERNS = 4000, 3
D_HIERARCHICAL, D_PARALLEL = 0.4, 0.8
RETRIEVED = 0.05
SWEEPS = 30


def check_dilution(where: str, d) -> float:
    if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0 <= d < 1:
        raise ValueError(f"{where}: `d` must be a dilution in [0, 1) (the probability of a 0 entry); "
                         f"got {d!r}.")
    return float(d)


def diluted_patterns(K: int, N: int, d: float, generator: torch.Generator):
    """K patterns of N entries, each 0 with probability d, else +1 or -1 with equal probability.
    -> [K, N] of -1, 0, +1"""
    check_int("diluted_patterns", "K", K, low=0)
    check_int("diluted_patterns", "N", N, low=1)
    d = check_dilution("diluted_patterns", d)
    signs = torch.randint(0, 2, (K, N), generator=generator).float() * 2 - 1
    return signs * (torch.rand(K, N, generator=generator) >= d).float()


def check_diluted(where: str, name: str, patterns):
    check_tensor(where, name, patterns, ndim=2, kind="float")
    if patterns.numel() and not ((patterns == 1) | (patterns == -1) | (patterns == 0)).all():
        raise ValueError(f"{where}: `{name}` must hold -1, 0 and +1 only (diluted patterns); got values "
                         f"{sorted(set(patterns.unique().tolist()))[:6]}.")


def multitasking_weights(patterns):
    """J = (1 / N) sum_mu xi_mu xi_mu^T with zero diagonal, for diluted patterns. [K, N] -> [N, N]"""
    check_diluted("multitasking_weights", "patterns", patterns)
    J = patterns.T @ patterns / patterns.shape[1]
    return J.fill_diagonal_(0.0)


def mattis_magnetisations(states, patterns):
    """m_mu = (1 / N) sum_i xi_mu,i sigma_i of each state against each pattern. [S, N], [K, N] -> [S, K]"""
    return states @ patterns.T / patterns.shape[1]


def cue(patterns, generator: torch.Generator):
    """Each pattern as a +-1 state: its 0 entries replaced by random signs. [K, N] -> [K, N]"""
    random = torch.randint(0, 2, patterns.shape, generator=generator).float() * 2 - 1
    return torch.where(patterns == 0, random, patterns)


def update_asynchronous(states, patterns, generator: torch.Generator | None = None):
    """One sweep of zero-temperature asynchronous updates sigma_i <- sgn(sum_j J_ij sigma_j) (sgn(0) = +1)
    with J = `multitasking_weights(patterns)`, over the units in the order torch.randperm(N, generator)
    gives, exactly as `classical.update_asynchronous(states, J, generator)` but without the [N, N]
    couplings: the field is (1 / N) sum_mu xi_mu,i (v_mu - xi_mu,i sigma_i) with the overlaps
    v_mu = xi_mu . sigma kept up to date, in integers (so no rounding decides a tie).
    states [S, N] of +-1, patterns [K, N] of -1, 0, +1 -> [S, N]"""
    check_diluted("update_asynchronous", "patterns", patterns)
    classical.check_spins("update_asynchronous", "states", states)
    if states.dim() != 2 or states.shape[1] != patterns.shape[1]:
        raise ValueError(f"update_asynchronous: `states` must be [S, N] with N = {patterns.shape[1]} (the "
                         f"patterns' width); got shape {tuple(states.shape)}.")
    order = torch.randperm(patterns.shape[1], generator=generator).tolist()
    columns = patterns.T.to(torch.int64).tolist()  # [N][K]
    squares = (patterns * patterns).sum(0).to(torch.int64).tolist()  # [N]
    out = []
    for sigma in states.to(torch.int64).tolist():
        v = (torch.tensor([sigma]) @ patterns.T.to(torch.int64))[0].tolist()  # [K] overlaps
        for i in order:
            xi = columns[i]
            field = sum(x * m for x, m in zip(xi, v)) - squares[i] * sigma[i]
            new = 1 if field >= 0 else -1
            if new != sigma[i]:
                change = new - sigma[i]
                v = [m + x * change for x, m in zip(xi, v)]
                sigma[i] = new
        out.append(sigma)
    return torch.tensor(out, dtype=states.dtype)


def relax(states, patterns, generator: torch.Generator, sweeps: int = SWEEPS):
    """Asynchronous sweeps until nothing changes (at most `sweeps`), as `classical.recall` does.
    states [S, N] -> [S, N]"""
    check_int("relax", "sweeps", sweeps, low=0)
    for _ in range(sweeps):
        new = update_asynchronous(states, patterns, generator)
        if torch.equal(new, states):
            break
        states = new
    return states


def hierarchical_amplitudes(d: float, K: int):
    """The signal-to-noise prediction (1 - d) d^(k - 1), k = 1..K, of the hierarchical regime. -> [K]"""
    d = check_dilution("hierarchical_amplitudes", d)
    check_int("hierarchical_amplitudes", "K", K, low=1)
    return (1 - d) * d ** torch.arange(K, dtype=torch.float32)


def retrieve_all_cues(d: float, generator: torch.Generator, K: int = PATTERNS, N: int = UNITS):
    """Diluted patterns at d, each one the cue of one state, relaxed: the sorted |m| of every state
    (largest first). -> [K, K]"""
    patterns = diluted_patterns(K, N, d, generator)
    final = relax(cue(patterns, generator), patterns, generator)
    return mattis_magnetisations(final, patterns).abs().sort(dim=1, descending=True).values


def multitasking_experiment(seed: int) -> dict:
    """Magnetisations of the fixed points reached from each pattern's cue at d = 0, D_HIERARCHICAL and
    D_PARALLEL."""
    check_int("multitasking_experiment", "seed", seed, low=0)
    g = torch.Generator().manual_seed(seed)
    out = {}
    undiluted = retrieve_all_cues(0.0, g)
    hierarchical = retrieve_all_cues(D_HIERARCHICAL, g)
    parallel = retrieve_all_cues(D_PARALLEL, g)
    out["undiluted_retrieved"] = float((undiluted >= RETRIEVED).sum(1).max())
    out["diluted_retrieved"] = float((hierarchical >= RETRIEVED).sum(1).min())
    predicted = hierarchical_amplitudes(D_HIERARCHICAL, PATTERNS)
    out["hierarchy_max_error"] = float((hierarchical - predicted).abs().max())
    out["parallel_retrieved"] = float((parallel >= RETRIEVED).sum(1).min())
    out["parallel_min_over_max"] = float((parallel[:, -1] / parallel[:, 0]).min())
    for name, m in (("undiluted", undiluted), ("hierarchical", hierarchical), ("parallel", parallel)):
        for k, value in enumerate(m.mean(0).tolist(), start=1):
            out[f"{name}_m{k}"] = value
    return out


CLAIM = Claim(
    paper="Agliari et al. 2023",
    citation="Parallel Learning by Multitasking Neural Networks (arXiv:2308.04106), the hierarchical and "
             "parallel regimes of the multitasking Hebbian network (and Agliari et al., PRL 109, 268101, "
             "2012)",
    statement="with diluted patterns the Hebbian network retrieves several patterns at once, with "
              "magnetisations 1 - d, d (1 - d), d^2 (1 - d) at mild dilution and of equal strength at "
              "strong dilution, where the undiluted network retrieves only the cued one",
    kind=REPRODUCTION,
    experiment=multitasking_experiment,
    thresholds=("undiluted_retrieved == 1", "diluted_retrieved >= 3", "hierarchy_max_error <= 0.03",
                "parallel_min_over_max >= 0.6"),
    summary=lambda m: (
        f"mean sorted |m| at d = 0: {m['undiluted_m1']:.2f}, {m['undiluted_m2']:.3f}, "
        f"{m['undiluted_m3']:.3f} "
        f"(one pattern); at d = {D_HIERARCHICAL}: {m['hierarchical_m1']:.3f}, {m['hierarchical_m2']:.3f}, "
        f"{m['hierarchical_m3']:.3f} against the predicted "
        f"{', '.join(f'{v:.3f}' for v in hierarchical_amplitudes(D_HIERARCHICAL, PATTERNS).tolist())} "
        f"(largest error {m['hierarchy_max_error']:.3f}); at d = {D_PARALLEL}: {m['parallel_m1']:.3f}, "
        f"{m['parallel_m2']:.3f}, {m['parallel_m3']:.3f} (smallest over largest "
        f"{m['parallel_min_over_max']:.2f})"),
    held_on=(2,),
    note=f"Held on seed 2 only, by the strong-dilution part: at d = {D_PARALLEL} the amplitudes came out "
         "0.19-0.20, 0.17, 0.13-0.14 (smallest over largest 0.56, 0.59, 0.62 on seeds 0, 1, 2, against the "
         "0.6 set beforehand): still ordered, close to the power law (1 - d) d^(k - 1) = 0.2, 0.16, 0.128, "
         "not the equal strengths of the parallel regime. The hierarchical regime (error <= 0.02 against "
         "the prediction) and the contrast with the undiluted network held on every seed. "
         f"N = {UNITS} units, K = {PATTERNS} patterns (low storage), every pattern as the cue; "
         f"retrieved: |m| >= {RETRIEVED}; zero-temperature asynchronous dynamics, no teacher (the paper's "
         "supervised and unsupervised learning of the couplings from examples is left out: the couplings "
         "are Hebb's on the patterns themselves).",
)
