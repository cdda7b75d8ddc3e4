"""The classical binary Hopfield network (Hopfield 1982; its capacity: Amit, Gutfreund & Sompolinsky
1985), the baseline of "Hopfield Networks is All You Need" (Ramsauer et al. 2020, section 1).

Patterns are rows of +-1, s_j [M, D]. Hebb's rule stores them in the couplings

    W = (1 / D) sum_mu s_mu s_mu^T, with zero diagonal,

the energy is E(s) = -1/2 s^T W s, and an update sets a unit to the sign of its field,
s_i <- sgn(sum_j W_ij s_j) (ties keep +1). Updated one unit at a time (asynchronously) the energy never
increases; all units at once (synchronously) it may cycle between two states. A pattern is a fixed
point while the crosstalk of the others is smaller than its own field: for random patterns that holds,
with few errors, up to about M = 0.138 D patterns (Amit et al.), the classical capacity the modern
network surpasses.
"""
import torch

from course.checks import check_int, check_tensor


def check_spins(where: str, name: str, s):
    """s must be a float tensor of +-1 values."""
    check_tensor(where, name, s, kind="float")
    if s.numel() and not ((s == 1) | (s == -1)).all():
        raise ValueError(f"{where}: `{name}` must hold +1 and -1 only (binary patterns); got values "
                         f"{sorted(set(s.unique().tolist()))[:6]}.")


def hebbian_weights(patterns):
    """W = (1 / D) sum_mu s_mu s_mu^T with zero diagonal. patterns [M, D] of +-1 -> [D, D]"""
    check_tensor("hopfield.hebbian_weights", "patterns", patterns, ndim=2, kind="float")
    check_spins("hopfield.hebbian_weights", "patterns", patterns)
    W = patterns.T @ patterns / patterns.shape[1]
    return W.fill_diagonal_(0.0)


def sgn(field):
    """The sign with sgn(0) = +1, so that a state stays binary."""
    return torch.where(field >= 0, torch.ones_like(field), -torch.ones_like(field))


def energy(states, W):
    """E(s) = -1/2 s^T W s for states [N, D] (or one [D]). -> [N] (or a scalar)"""
    return -0.5 * ((states @ W) * states).sum(-1)


def update_synchronous(states, W):
    """Every unit at once: s <- sgn(W s). states [N, D] -> [N, D]"""
    return sgn(states @ W)


def update_asynchronous(states, W, generator: torch.Generator | None = None):
    """One sweep over the units in a random order, each set to the sign of its current field.
    states [N, D] -> [N, D]"""
    s = states.clone()
    for i in torch.randperm(W.shape[0], generator=generator).tolist():
        s[:, i] = sgn(s @ W[:, i])
    return s


def recall(states, W, sweeps: int = 10, generator: torch.Generator | None = None):
    """Asynchronous sweeps until nothing changes (at most `sweeps`). states [N, D] -> [N, D]"""
    check_int("hopfield.recall", "sweeps", sweeps, low=0)
    for _ in range(sweeps):
        new = update_asynchronous(states, W, generator)
        if torch.equal(new, states):
            break
        states = new
    return states


def random_patterns(M: int, D: int, generator: torch.Generator):
    """M random +-1 patterns of D units. -> [M, D]"""
    return torch.randint(0, 2, (M, D), generator=generator).float() * 2 - 1


def flip(patterns, fraction: float, generator: torch.Generator):
    """Each pattern with round(fraction D) of its units flipped at random positions. -> [M, D]"""
    check_tensor("hopfield.flip", "patterns", patterns, ndim=2, kind="float")
    if not 0 <= fraction <= 1:
        raise ValueError(f"hopfield.flip: `fraction` must be in [0, 1] (the share of units flipped); got "
                         f"{fraction!r}.")
    M, D = patterns.shape
    k = round(fraction * D)
    order = torch.rand(M, D, generator=generator).argsort(1)[:, :k]
    out = patterns.clone()
    out.scatter_(1, order, -out.gather(1, order))
    return out


def overlap(states, patterns):
    """m = s . s_mu / D, the overlap of each state with its pattern (1: retrieved exactly). -> [N]"""
    return (states * patterns).sum(-1) / patterns.shape[-1]
