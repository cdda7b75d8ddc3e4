"""Permutation symmetry of MLPs, and Git Re-Basin's alignment of one network to another.

Ainsworth, Hayase and Srinivasa 2023, "Git Re-Basin: Merging Models modulo Permutation Symmetries"
(arXiv:2209.04836), section 3. Reordering the hidden units of a layer, the rows of W_l and b_l and
the columns of W_{l+1} alike, leaves the function unchanged: with P_l the permutation matrix of
hidden layer l (P_0 = P_L = I, the inputs and the classes keep their order),

    W_l' = P_l W_l P_{l-1}^T,   b_l' = P_l b_l

(`permute`). A permutation here is a LongTensor p [H_l] with (P_l W)[j] = W[p[j]]: new unit j is
old unit p[j]. Two networks trained from different seeds differ by such a reordering (and more);
Git Re-Basin finds the permutations of network b that bring it closest to network a:

- weight matching (sec. 3.2, Algorithm 1): maximise sum_l <W_l^a, P_l W_l^b P_{l-1}^T> + <b_l^a,
  P_l b_l^b>. With the other layers' permutations fixed, the terms in P_l are one linear assignment
  problem (LAP) on the correlation matrix C_l = W_l^a (W_l^b P_{l-1}^T)^T + b_l^a b_l^b^T +
  W_{l+1}^a^T P_{l+1} W_{l+1}^b, so the algorithm sweeps the layers in a random order, solving each
  LAP (scipy's `linear_sum_assignment`), until a sweep changes nothing (`weight_matching`);
- activation matching (sec. 3.1): the permutation of layer l that minimises sum_n |Z_l^a[n] -
  P_l Z_l^b[n]|^2 over the hidden activations Z [N, H_l] of both networks on data x, i.e. the LAP
  maximising <Z_l^a, Z_l^b P_l^T>; one independent LAP per layer (`activation_matching`).

After alignment the straight line between a and the permuted b is the path whose barrier
(`interpolation.barrier`) the paper measures (`barriers_before_after`).
"""
import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from course.checks import check_int, check_tensor
from course.landscape.interpolation import barrier, check_pair, line_losses
from course.landscape.models import check_widths, parameter_count, unflatten


def check_theta(where: str, name: str, theta, widths) -> tuple:
    """One parameter vector theta [P] of the MLP of `widths`."""
    widths = check_widths(where, widths)
    check_tensor(where, name, theta, ndim=1, kind="float")
    P = parameter_count(widths)
    if theta.shape[0] != P:
        raise ValueError(f"{where}: `{name}` must be a network of widths {widths} (P = {P} parameters); "
                         f"got {theta.shape[0]} parameters.")
    return widths


def check_perms(where: str, perms, widths) -> list:
    """One permutation of range(H_l) per hidden layer l, as LongTensors [H_l]."""
    hidden = widths[1:-1]
    if not isinstance(perms, (list, tuple)) or len(perms) != len(hidden):
        given = f"{len(perms)} entries" if isinstance(perms, (list, tuple)) else type(perms).__name__
        raise ValueError(f"{where}: `perms` must be a list of {len(hidden)} permutations, one per hidden "
                         f"layer of widths {widths}; got {given}.")
    for i, (p, h) in enumerate(zip(perms, hidden)):
        check_tensor(where, f"perms[{i}]", p, ndim=1, kind="int")
        if p.shape[0] != h or not torch.equal(torch.sort(p.long()).values, torch.arange(h)):
            raise ValueError(f"{where}: `perms[{i}]` must be a permutation of 0..{h - 1} (hidden layer "
                             f"{i + 1} has {h} units); got {p.tolist()}.")
    return [p.long() for p in perms]


def permute(theta: torch.Tensor, widths, perms) -> torch.Tensor:
    """Sec. 3 of arXiv:2209.04836: the network theta [P] with its hidden units reordered, new unit j of
    layer l being old unit perms[l][j] (rows of W_l, b_l and columns of W_{l+1}). -> theta' [P],
    a network that computes the same function."""
    widths = check_theta("landscape.permute", "theta", theta, widths)
    perms = check_perms("landscape.permute", perms, widths)
    order = [torch.arange(widths[0]), *perms, torch.arange(widths[-1])]
    parts = []
    for (W, b), rows, cols in zip(unflatten(theta, widths), order[1:], order[:-1]):
        parts += [W[rows][:, cols].reshape(-1), b[rows]]
    return torch.cat(parts)


def identity_perms(widths) -> list:
    """The permutations that change nothing: arange(H_l) per hidden layer."""
    widths = check_widths("landscape.identity_perms", widths)
    return [torch.arange(h) for h in widths[1:-1]]


def inverse(perms) -> list:
    """The permutations that undo `perms`: permute(permute(theta, perms), inverse(perms)) = theta."""
    return [torch.argsort(p) for p in perms]


def solve_assignment(correlation: torch.Tensor) -> torch.Tensor:
    """The permutation p [H] maximising sum_j correlation[j, p[j]] (a LAP, scipy's solver), for a
    correlation matrix [H, H]."""
    rows, cols = linear_sum_assignment(correlation.detach().double().cpu().numpy(), maximize=True)
    return torch.as_tensor(cols[np.argsort(rows)], dtype=torch.long)


def layer_correlation(layers_a, layers_b, perms, l: int) -> torch.Tensor:
    """Sec. 3.2: C_l [H_l, H_l], the terms of the weight-matching objective in P_l (hidden layer
    l = 0, 1, ... counted from the first), the other layers' permutations fixed."""
    (Wa, ba), (Wb, bb) = layers_a[l], layers_b[l]
    Wb_in = Wb if l == 0 else Wb[:, perms[l - 1]]  # W_l^b P_{l-1}^T: inputs in a's order
    C = Wa @ Wb_in.T + torch.outer(ba, bb)
    Wa_next, Wb_next = layers_a[l + 1][0], layers_b[l + 1][0]
    Wb_out = Wb_next if l + 1 == len(perms) else Wb_next[perms[l + 1]]  # P_{l+1} W_{l+1}^b
    return C + Wa_next.T @ Wb_out


def weight_matching(theta_a: torch.Tensor, theta_b: torch.Tensor, widths, iterations: int = 100,
                    seed: int = 0) -> list:
    """Algorithm 1 of arXiv:2209.04836 (weight matching): the permutations of b's hidden units that
    bring theta_b [P] closest to theta_a [P], by coordinate descent over the layers (one LAP each, in a
    random order per sweep, seeded) until a sweep improves nothing or `iterations` sweeps ran.
    -> perms: [LongTensor [H_l]] per hidden layer, so that permute(theta_b, widths, perms) ~ theta_a."""
    where = "landscape.weight_matching"
    widths = check_pair(where, theta_a, theta_b, widths)
    check_int(where, "iterations", iterations, low=1)
    layers_a = unflatten(theta_a.detach().double(), widths)
    layers_b = unflatten(theta_b.detach().double(), widths)
    perms = identity_perms(widths)
    g = torch.Generator().manual_seed(seed)
    for _ in range(iterations):
        improved = False
        for l in torch.randperm(len(perms), generator=g).tolist():
            C = layer_correlation(layers_a, layers_b, perms, l)
            p = solve_assignment(C)
            old, new = float(C[torch.arange(len(p)), perms[l]].sum()), float(C[torch.arange(len(p)), p].sum())
            if new > old + 1e-12 * max(1.0, abs(old)):
                perms[l], improved = p, True
        if not improved:
            break
    return perms


def hidden_activations(theta: torch.Tensor, x: torch.Tensor, widths) -> list:
    """Z_l [N, H_l]: the post-ReLU activations of every hidden layer of the MLP theta [P] on x [N, I]."""
    out, h = [], x
    layers = unflatten(theta, widths)
    for W, b in layers[:-1]:
        h = torch.relu(h @ W.T + b)
        out.append(h)
    return out


def activation_matching(theta_a: torch.Tensor, theta_b: torch.Tensor, widths, x: torch.Tensor) -> list:
    """Sec. 3.1 of arXiv:2209.04836 (activation matching): per hidden layer, the permutation of b's
    units minimising |Z_l^a - Z_l^b P_l^T|^2 over the activations [N, H_l] on x [N, I], i.e. the LAP
    maximising the correlation Z_l^a^T Z_l^b [H_l, H_l]. -> perms [LongTensor [H_l]] per hidden layer."""
    where = "landscape.activation_matching"
    widths = check_pair(where, theta_a, theta_b, widths)
    check_tensor(where, "x", x, ndim=2, kind="float")
    if x.shape[0] == 0 or x.shape[1] != widths[0]:
        raise ValueError(f"{where}: `x` must be [N, I] with N >= 1 and I = widths[0] = {widths[0]}; got "
                         f"shape {tuple(x.shape)}.")
    with torch.no_grad():
        za = hidden_activations(theta_a.detach().double(), x.double(), widths)
        zb = hidden_activations(theta_b.detach().double(), x.double(), widths)
    return [solve_assignment(a.T @ b) for a, b in zip(za, zb)]


def barriers_before_after(x, labels, theta_a, theta_b, widths, perms, points: int = 25) -> dict:
    """The loss barrier (`interpolation.barrier`) on the straight line from theta_a [P] to theta_b [P]
    as trained ("before") and to permute(theta_b, widths, perms) ("after"), with the losses [K] at
    the K = `points` evenly spaced ts. -> {"ts", "losses_before", "losses_after", "before", "after"}"""
    where = "landscape.barriers_before_after"
    widths = check_pair(where, theta_a, theta_b, widths)
    check_int(where, "points", points, low=2)
    ts = torch.linspace(0, 1, points, dtype=x.dtype)
    aligned = permute(theta_b, widths, perms)
    before = line_losses(x, labels, theta_a, theta_b, widths, ts)
    after = line_losses(x, labels, theta_a, aligned, widths, ts)
    return {"ts": ts, "losses_before": before, "losses_after": after,
            "before": barrier(before, ts), "after": barrier(after, ts)}
