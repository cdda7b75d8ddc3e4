"""The modern continuous Hopfield network, whose update is attention (Ramsauer et al. 2020, "Hopfield
Networks is All You Need", arXiv:2008.02217).

Stored patterns are the rows x_j of X [M, D] (the paper's columns of X, d x N), a state is xi [D]:

    energy (eq. 2)   E(xi) = -lse(beta, X xi) + 1/2 xi . xi + log(M) / beta + 1/2 max_j |x_j|^2
                     with lse(beta, z) = log(sum_j exp(beta z_j)) / beta
    update (eq. 3)   xi_new = X^T softmax(beta X xi)

The update is the concave-convex procedure on E, so E never increases (Theorem 1); a well-separated
pattern is retrieved in one update (Theorem 4); the number of patterns that can be stored and
retrieved grows exponentially with D (Theorem 3). With small beta the fixed points are averages over
groups of similar patterns, the metastable states of section 2. For N queries at once the update is
softmax(beta Xi X^T) X: attention with the queries Xi, the keys and values X and the scale beta
(eq. 10 with W_Q = W_K = W_V = I).

`retrieve` is the op `hopfield.retrieve`'s reference (torch's softmax on the [N, M] logits);
`retrieve_online` the streaming softmax of `course.streaming` that the kernels implement;
`retrieve_sdpa` torch's `scaled_dot_product_attention`, the peer. Each step's state is rounded to the
queries' dtype, as a stack of layers stores it; arithmetic is float32 for half inputs.
"""
import math

import torch

from course.checks import check_int, check_tensor
from course.registry import check_backend
from course.streaming import SOFTMAX, accumulator, streaming_retrieval


def check_beta(where: str, beta) -> float:
    """beta, the inverse temperature, as a positive finite float."""
    if isinstance(beta, torch.Tensor) and beta.numel() == 1:
        beta = beta.item()
    if isinstance(beta, bool) or not isinstance(beta, (int, float)):
        raise TypeError(f"{where}: `beta` must be a positive number; got {type(beta).__name__}.")
    if not (math.isfinite(beta) and beta > 0):
        raise ValueError(f"{where}: `beta` must be positive and finite (the inverse temperature of the "
                         f"softmax); got {beta!r}.")
    return float(beta)


def check_retrieve_args(where: str, queries, patterns, beta, steps) -> float:
    """The ops' argument checks, shared by every backend; returns beta as a float."""
    check_tensor(where, "queries", queries, ndim=2, kind="float")
    check_tensor(where, "patterns", patterns, ndim=2, kind="float")
    if patterns.shape[0] == 0:
        raise ValueError(f"{where}: `patterns` must hold at least one stored pattern (an empty memory "
                         "has nothing to retrieve); got shape (0, D).")
    if patterns.shape[1] != queries.shape[1]:
        raise ValueError(f"{where}: `queries` [N, D] and `patterns` [M, D] must share D; got queries "
                         f"{tuple(queries.shape)} and patterns {tuple(patterns.shape)}.")
    if patterns.dtype != queries.dtype:
        raise TypeError(f"{where}: `patterns` must have the queries' dtype {queries.dtype}; got "
                        f"{patterns.dtype}.")
    check_int(where, "steps", steps, low=1)
    return check_beta(where, beta)


def temperatures(queries, beta: float) -> torch.Tensor:
    """t_i = 1 / beta for every query [N] (the streaming kernels' per-query temperature)."""
    return torch.full((queries.shape[0],), 1.0 / beta, dtype=accumulator(queries.dtype),
                      device=queries.device)


def retrieve(queries, patterns, beta, steps: int = 1):
    """`steps` updates xi <- softmax(beta xi X^T) X (Ramsauer et al. 2020, eq. 3) of every query.
    queries [N, D], patterns [M, D], beta > 0 -> [N, D]"""
    beta = check_retrieve_args("hopfield.retrieve", queries, patterns, beta, steps)
    acc = accumulator(queries.dtype)
    X, xi = patterns.to(acc), queries
    for _ in range(steps):
        weights = (beta * (xi.to(acc) @ X.T)).softmax(dim=1)  # [N, M]
        xi = (weights @ X).to(queries.dtype)
    return xi


def retrieve_online(queries, patterns, beta, steps: int = 1):
    """The same by the streaming softmax over blocks of patterns (`course.streaming`): the [N, M]
    weights never exist, in the forward or the backward. -> [N, D]"""
    beta = check_retrieve_args("hopfield.retrieve_online", queries, patterns, beta, steps)
    xi = queries
    for _ in range(steps):
        xi = streaming_retrieval(xi, patterns, temperatures(xi, beta), 0.0, SOFTMAX)
    return xi


def retrieve_sdpa(queries, patterns, beta, steps: int = 1):
    """The same as torch's scaled_dot_product_attention(Q = xi, K = V = X, scale = beta). -> [N, D]"""
    beta = check_retrieve_args("hopfield.retrieve_sdpa", queries, patterns, beta, steps)
    check_backend("hopfield.retrieve", "sdpa", "queries", queries)
    xi = queries
    for _ in range(steps):
        xi = torch.nn.functional.scaled_dot_product_attention(xi[None], patterns[None], patterns[None],
                                                              scale=beta)[0]
    return xi


def lse(beta: float, z, dim: int = -1):
    """lse(beta, z) = log(sum_j exp(beta z_j)) / beta (Ramsauer et al. 2020, below eq. 2)."""
    return torch.logsumexp(beta * z, dim=dim) / beta


def energy(states, patterns, beta):
    """E(xi) = -lse(beta, X xi) + xi . xi / 2 + log(M) / beta + max_j |x_j|^2 / 2 (eq. 2), for each of the
    states [N, D] (or one state [D]) against patterns [M, D]. -> [N] (or a scalar)"""
    beta = check_beta("hopfield.energy", beta)
    one = states.dim() == 1
    xi = states[None] if one else states
    largest = (patterns * patterns).sum(1).max()
    e = (-lse(beta, xi @ patterns.T, dim=1) + 0.5 * (xi * xi).sum(1) + math.log(patterns.shape[0]) / beta
         + 0.5 * largest)
    return e[0] if one else e


def update(states, patterns, beta):
    """One update of eq. 3 for states [N, D] in their own dtype (the energy widget's and the tests' step)."""
    return retrieve(states, patterns, beta, steps=1)


def trajectory(state, patterns, beta, steps: int):
    """The states [steps + 1, D] of one query under repeated updates, and their energies [steps + 1]."""
    states = [state]
    for _ in range(steps):
        states.append(update(states[-1][None], patterns, beta)[0])
    path = torch.stack(states)
    return path, energy(path, patterns, beta)


def separation(patterns):
    """Delta_j = x_j . x_j - max_{k != j} x_j . x_k, the separation of each pattern (Ramsauer et al.,
    Definition 1): a pattern is retrieved in one update with error exponentially small in
    beta Delta_j once Delta_j >= 2 / (beta M) + log(2 (M - 1) M beta R^2) / beta (Theorem 4). -> [M]"""
    gram = patterns @ patterns.T
    own = gram.diagonal().clone()
    gram.fill_diagonal_(float("-inf"))
    return own - gram.max(1).values


def one_step_threshold(patterns, beta: float):
    """The separation Delta above which Theorem 4 guarantees retrieval in one update, with R the
    largest pattern norm. -> float"""
    M = patterns.shape[0]
    R2 = (patterns * patterns).sum(1).max().item()
    return 2 / (beta * M) + math.log(2 * (M - 1) * M * beta * R2) / beta
