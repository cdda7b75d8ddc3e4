"""Willshaw-style binary associative memory under insertion and erasure noise: the numeric check of a C
paper, "Robust Associative Memories Naturally Occuring From Recurrent Hebbian Networks Under Noise"
(Coyac, Gripon, Langlais & Berrou 2017, arXiv:1709.08367).

No claim here: the notebook's reading cell on that paper calls these functions. The paper argues that
noise in the brain, coarsely quantised, reduces to *insertions* (a unit active that should not be) and
*erasures* (a unit silent that should be active), and that recurrent Hebbian connections, formed from
noisy presentations under an energy limit and kept only when consolidated, end up as a binary sparse
associative memory of the Willshaw kind (Willshaw, Buneman & Longuet-Higgins 1969):

    patterns     x_mu in {0, 1}^D with c active units each (sparse: c << D)
    couplings    W_ij = 1 if some stored pattern has i and j both active, else 0 (binary, clipped Hebb)
    retrieval    h = W x_cue, then the c units with the largest h are active (winners take all)

Here: `willshaw_weights` (the clean memory), `noisy` (insertions and erasures), `willshaw_retrieve`,
`retrieval_accuracy`, and `consolidated_weights` (couplings counted over noisy presentations of each
pattern and kept where the pair was active together at least `keep` times: a pair that the noise made
co-active once is not consolidated). `noise_check` gives the notebook's numbers: the exact-retrieval rate
against the number of erased and inserted units, and how close the consolidated couplings come to the
clean Willshaw ones, against the couplings of a single noisy presentation.
"""
import torch

from course.checks import check_int, check_tensor

D, ACTIVE, STORED = 256, 8, 150
ERASED_LEVELS = (0, 2, 4, 5, 6)
INSERTED_LEVELS = (0, 4, 8, 16)
PRESENTATIONS, KEEP = 8, 4
NOISE = (1, 2)  # erasures and insertions in each noisy presentation


def check_binary(where: str, name: str, x):
    """x must be a float tensor [N, D] of 0 and 1."""
    check_tensor(where, name, x, ndim=2, kind="float")
    if x.numel() and not ((x == 0) | (x == 1)).all():
        raise ValueError(f"{where}: `{name}` must hold 0 and 1 only (binary activity); got values "
                         f"{sorted(set(x.unique().tolist()))[:6]}.")


def sparse_binary_patterns(M: int, D: int, c: int, generator: torch.Generator):
    """M random patterns of D units with exactly c of them active (1). -> [M, D]"""
    check_int("sparse_binary_patterns", "M", M, low=0)
    check_int("sparse_binary_patterns", "D", D, low=1)
    check_int("sparse_binary_patterns", "c", c, low=0, high=D)
    active = torch.rand(M, D, generator=generator).argsort(1)[:, :c]
    return torch.zeros(M, D).scatter_(1, active, 1.0)


def willshaw_weights(patterns):
    """W_ij = 1 where some pattern has units i and j both active (the diagonal too). [M, D] -> [D, D]"""
    check_binary("willshaw_weights", "patterns", patterns)
    return (patterns.T @ patterns > 0).float()


def noisy(patterns, erased: int, inserted: int, generator: torch.Generator):
    """Each pattern with `erased` of its active units silenced and `inserted` of its silent units made
    active, at random (Coyac et al.: quantised noise as erasures and insertions). [N, D] -> [N, D]"""
    check_binary("noisy", "patterns", patterns)
    N, width = patterns.shape
    fewest_on = int(patterns.sum(1).min()) if N else 0
    check_int("noisy", "erased", erased, low=0, high=fewest_on)
    check_int("noisy", "inserted", inserted, low=0, high=width - (int(patterns.sum(1).max()) if N else 0))
    out = patterns.clone()
    keys = torch.rand(N, width, generator=generator)
    if erased:  # the `erased` active units with the smallest keys
        order = torch.where(patterns == 1, keys, 2.0).argsort(1)[:, :erased]
        out.scatter_(1, order, 0.0)
    if inserted:  # the `inserted` silent units with the smallest keys
        order = torch.where(patterns == 0, keys, 2.0).argsort(1)[:, :inserted]
        out.scatter_(1, order, 1.0)
    return out


def willshaw_retrieve(cues, W, c: int):
    """One step: h = x_cue W, then the c units of largest h active (ties to the lower index).
    cues [N, D] of 0/1, W [D, D] -> [N, D] of 0/1"""
    check_binary("willshaw_retrieve", "cues", cues)
    check_tensor("willshaw_retrieve", "W", W, ndim=2, kind="float")
    if W.shape != (cues.shape[1], cues.shape[1]):
        raise ValueError(f"willshaw_retrieve: `W` must be [D, D] with D = {cues.shape[1]} (the cues' width); "
                         f"got shape {tuple(W.shape)}.")
    check_int("willshaw_retrieve", "c", c, low=0, high=cues.shape[1])
    h = cues @ W
    # a stable order: larger h first, then the lower index
    rank = h * (cues.shape[1] + 1) - torch.arange(cues.shape[1], dtype=h.dtype)
    winners = rank.topk(c, dim=1).indices
    return torch.zeros_like(cues).scatter_(1, winners, 1.0)


def retrieval_accuracy(patterns, W, erased: int, inserted: int, generator: torch.Generator) -> float:
    """The fraction of the patterns [M, D] retrieved exactly from a cue with `erased` erasures and
    `inserted` insertions."""
    c = int(patterns.sum(1).max())
    out = willshaw_retrieve(noisy(patterns, erased, inserted, generator), W, c)
    return float((out == patterns).all(1).float().mean())


def consolidated_weights(patterns, presentations: int, keep: int, erased: int, inserted: int,
                         generator: torch.Generator):
    """Hebbian counts over `presentations` noisy copies of every pattern (each with `erased` erasures and
    `inserted` insertions); a coupling is consolidated (1) where its pair was active together at least
    `keep` times. [M, D] -> [D, D] of 0/1"""
    check_int("consolidated_weights", "presentations", presentations, low=1)
    check_int("consolidated_weights", "keep", keep, low=1, high=presentations)
    counts = torch.zeros(patterns.shape[1], patterns.shape[1])
    for _ in range(presentations):
        seen = noisy(patterns, erased, inserted, generator)
        counts += seen.T @ seen
    return (counts >= keep).float()


def agreement(W, reference) -> tuple:
    """(missing, spurious): the fraction of the reference's couplings that W lacks, and W's couplings
    that the reference lacks, over the reference's count."""
    on = reference.sum().clamp_min(1)
    return float(((reference == 1) & (W == 0)).sum() / on), float(((reference == 0) & (W == 1)).sum() / on)


def noise_check(seed: int = 0) -> dict:
    """The notebook's numbers: exact-retrieval rates of the clean Willshaw memory (STORED patterns of
    ACTIVE units in D) against erasures and insertions; and the couplings consolidated from PRESENTATIONS
    noisy copies (kept at KEEP co-activations) against those of one noisy copy: their missing and
    spurious couplings relative to the clean memory, and their retrieval rate from a cue with a quarter
    of its units erased."""
    g = torch.Generator().manual_seed(seed)
    patterns = sparse_binary_patterns(STORED, D, ACTIVE, g)
    W = willshaw_weights(patterns)
    out = {"load": float(W.mean())}  # the fraction of couplings switched on
    for e in ERASED_LEVELS:
        out[f"erased_{e}"] = retrieval_accuracy(patterns, W, e, 0, g)
    for i in INSERTED_LEVELS:
        out[f"inserted_{i}"] = retrieval_accuracy(patterns, W, 0, i, g)
    cue_erased = ACTIVE // 4
    for name, (n, keep) in (("consolidated", (PRESENTATIONS, KEEP)), ("single", (1, 1))):
        Wn = consolidated_weights(patterns, n, keep, *NOISE, g)
        out[f"{name}_missing"], out[f"{name}_spurious"] = agreement(Wn, W)
        out[f"{name}_retrieved"] = retrieval_accuracy(patterns, Wn, cue_erased, 0, g)
    return out
