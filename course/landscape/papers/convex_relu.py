"""Two-layer ReLU networks trained globally, through their convex reformulation, solved by ADMM.

Bai, Gautam and Sojoudi 2022, "Efficient Global Optimization of Two-layer ReLU Networks:
Quadratic-time Algorithms and Adversarial Training" (arXiv:2201.01965), section 2 and its ADMM
(section 3), on the convex program of Pilanci and Ergen 2020 ("Neural Networks are Convex
Regularizers", arXiv:2002.10553). Training f(x) = sum_j alpha_j (x^T u_j)_+ with weight decay,

    min 1/2 |sum_j (X u_j)_+ alpha_j - y|^2 + beta/2 sum_j (|u_j|^2 + alpha_j^2),        (non-convex)

equals, over the activation patterns D_i = diag(1[X g_i >= 0]) of the data,

    min 1/2 |sum_i D_i X (v_i - w_i) - y|^2 + beta sum_i (|v_i| + |w_i|)
    s.t. (2 D_i - I) X v_i >= 0,  (2 D_i - I) X w_i >= 0                                   (convex)

(a group lasso with cone constraints): where the constraint holds, D_i X v_i = (X v_i)_+, so each
non-zero v_i is a neuron u = v_i / sqrt|v_i| with alpha = sqrt|v_i| (and w_i one with alpha < 0),
whose weight decay beta/2 (|u|^2 + alpha^2) = beta |v_i|. Sampling P patterns from random g_i gives
the approximate program the paper solves; its optimum is an upper bound on the global one.

ADMM (`admm`) splits the variables q = (v, w) [2P, d] from a copy z for the group norm and from
slacks s >= 0 for the cones: the q-update is one linear system whose matrix F^T F + rho (I + G^T G)
is fixed, block-diagonal (G^T G = I (x) X^T X because (2 D - I)^2 = I) plus rank n, so it is solved
by Woodbury with one n x n factorisation; the z-update is a group soft-threshold, the s-update a
clamp at 0. X carries a column of ones: the hidden units' biases.

The toy: 1-D regression, y = sin(4 x) + x^2 / 2 + noise at 40 points, beta = 0.1; the patterns of
2000 Gaussian gates (about 75 distinct, of the at most 2 (n + 1) that 1-D data with a bias allows, so
the sampled program is close to the exact one). The baseline is the same objective trained by
full-batch Adam (decaying learning rate) from 8 initialisations, at the width of the network the
convex program returns.
"""
import math

import torch

from course.checks import check_int, check_shape, check_tensor
from course.claims import REPRODUCTION, Claim
from course.train import DecayingAdam, fit

N, PATTERNS, BETA, RHO, ADMM_STEPS = 40, 2000, 0.1, 0.1, 3000
RUNS, GD_STEPS, GD_LR = 8, 3000, 0.02  # gradient-trained baselines: initialisations, steps, Adam's lr


def regression_data(seed: int, n: int = N):
    """X [n, 2] (x uniform on [-1, 1], then a column of ones for the biases), y [n]."""
    check_int("convex_relu.regression_data", "n", n, low=1)
    g = torch.Generator().manual_seed(seed)
    x = 2 * torch.rand(n, generator=g, dtype=torch.float64) - 1
    y = torch.sin(4 * x) + 0.5 * x ** 2 + 0.1 * torch.randn(n, generator=g, dtype=torch.float64)
    return torch.stack([x, torch.ones(n, dtype=torch.float64)], 1), y


def sample_patterns(X, count: int, seed: int) -> torch.Tensor:
    """Distinct activation patterns [P, n] (1[X g >= 0] for Gaussian g [d]), at most `count`."""
    check_tensor("convex_relu.sample_patterns", "X", X, ndim=2, kind="float")
    check_int("convex_relu.sample_patterns", "count", count, low=1)
    g = torch.Generator().manual_seed(seed)
    gates = torch.randn(X.shape[1], count, generator=g, dtype=X.dtype)
    return torch.unique((X @ gates >= 0).T.to(X.dtype), dim=0)


def convex_prediction(X, patterns, v, w) -> torch.Tensor:
    """sum_i D_i X (v_i - w_i) [n] for patterns [P, n], v and w [P, d]."""
    return (patterns * ((v - w) @ X.T)).sum(0)


def convex_objective(X, y, patterns, v, w, beta: float) -> float:
    """1/2 |sum_i D_i X (v_i - w_i) - y|^2 + beta sum_i (|v_i| + |w_i|)."""
    residual = convex_prediction(X, patterns, v, w) - y
    return float(residual @ residual / 2 + beta * (v.norm(dim=1).sum() + w.norm(dim=1).sum()))


def cone_violation(X, patterns, v, w) -> float:
    """The largest violation of (2 D_i - I) X v_i >= 0 and of the same for w (0 if feasible)."""
    signs = 2 * patterns - 1  # [P, n]
    worst = torch.cat([(signs * (q @ X.T)).clamp(max=0) for q in (v, w)])
    return float(-worst.min()) if worst.numel() else 0.0


def admm(X, y, patterns, beta: float = BETA, rho: float = RHO, steps: int = ADMM_STEPS):
    """(v [P, d], w [P, d]): the convex program by ADMM (section 3), returning the group-sparse copy.

    The q-update solves (F^T F + rho (I + G^T G)) q = F^T y + rho (z - dual_z) + rho G^T (s - dual_s);
    rho (I + G^T G) = rho I (x) (I + X^T X) is block-diagonal with one d x d block, and F^T F has rank
    n, so the Woodbury identity solves it with one n x n factorisation, made once."""
    check_tensor("convex_relu.admm", "X", X, ndim=2, kind="float")
    check_shape("convex_relu.admm", "y", y, (X.shape[0],), "[n]")
    check_shape("convex_relu.admm", "patterns", patterns, (patterns.shape[0], X.shape[0]), "[P, n]")
    check_int("convex_relu.admm", "steps", steps, low=1)
    if not beta > 0 or not rho > 0:
        raise ValueError(f"convex_relu.admm: `beta` and `rho` must be > 0; got {beta} and {rho}.")
    P, (n, d) = patterns.shape[0], X.shape
    block_inverse = torch.linalg.inv(torch.eye(d, dtype=X.dtype) + X.T @ X) / rho  # A^{-1}'s block
    kernel = X @ block_inverse @ X.T  # [n, n]
    inner = torch.eye(n, dtype=X.dtype) + 2 * kernel * (patterns.T @ patterns)  # I + F A^{-1} F^T
    inner_factor = torch.linalg.cholesky(inner)
    signs = torch.cat([2 * patterns - 1] * 2)  # [2P, n]: the cones' (2 D_i - I)

    def solve(b):  # (A + F^T F)^{-1} b for b [2P, d]
        a = b @ block_inverse
        correction = torch.cholesky_solve(forward(a)[:, None], inner_factor)[:, 0]
        return a - backward(correction) @ block_inverse

    def forward(q):  # F q [n]
        return convex_prediction(X, patterns, q[:P], q[P:])

    def backward(r):  # F^T r [2P, d]
        half = (patterns * r) @ X
        return torch.cat([half, -half])

    Fty = backward(y)
    z = torch.zeros(2 * P, d, dtype=X.dtype)
    s = torch.zeros(2 * P, n, dtype=X.dtype)
    dual_z, dual_s = torch.zeros_like(z), torch.zeros_like(s)
    for _ in range(steps):
        q = solve(Fty + rho * (z - dual_z + (signs * (s - dual_s)) @ X))
        z = group_soft_threshold(q + dual_z, beta / rho)
        Gq = signs * (q @ X.T)  # [2P, n]
        s = (Gq + dual_s).clamp(min=0)
        dual_z = dual_z + q - z
        dual_s = dual_s + Gq - s
    return z[:P], z[P:]


def group_soft_threshold(q, threshold: float) -> torch.Tensor:
    """The proximal map of threshold * sum_j |q_j|: each row shrunk by `threshold` in norm, or to 0."""
    norms = q.norm(dim=1, keepdim=True)
    return q * (1 - threshold / norms.clamp_min(1e-300)).clamp(min=0)


def recover_network(v, w, tol: float = 1e-3):
    """(U [m, d], alpha [m]): one ReLU neuron per v_i (alpha > 0) or w_i (alpha < 0) whose norm is
    above `tol` times the largest (ADMM's iterate leaves a dust of tiny groups), u = q / sqrt|q| and
    |alpha| = sqrt|q|, so that alpha (X u)_+ = D_i X q where the cone holds."""
    rows = torch.cat([v, w])
    signs = torch.cat([torch.ones(len(v)), -torch.ones(len(w))]).to(v.dtype)
    norms = rows.norm(dim=1)
    keep = norms > tol * norms.max()
    scale = norms[keep].sqrt()
    return rows[keep] / scale[:, None], signs[keep] * scale


def relu_network(X, U, alpha) -> torch.Tensor:
    """f(X) = sum_j alpha_j (X u_j)_+ [..., n] for U [..., m, d], alpha [..., m] (a leading batch of
    networks is kept)."""
    return (torch.relu(U @ X.T) * alpha[..., :, None]).sum(-2)


def network_objective(X, y, U, alpha, beta: float = BETA) -> torch.Tensor:
    """1/2 |f(X) - y|^2 + beta sum_j |u_j| |alpha_j| [...]: the non-convex objective with each neuron
    rescaled (u, alpha) -> (u c, alpha / c) to balance its weight decay, which only lowers it."""
    residual = relu_network(X, U, alpha) - y
    return (residual.pow(2).sum(-1) / 2 + beta * (U.norm(dim=-1) * alpha.abs()).sum(-1)).detach()


def gradient_trained(X, y, width: int, runs: int, seed: int, beta: float = BETA, steps: int = GD_STEPS):
    """(U [runs, width, d], alpha [runs, width]): `runs` networks trained on the non-convex objective
    with weight decay, by full-batch Adam with a decaying learning rate from seeded initialisations.
    Adam is elementwise, so the runs, stacked in one tensor, train exactly as they would apart."""
    check_int("convex_relu.gradient_trained", "width", width, low=1)
    check_int("convex_relu.gradient_trained", "runs", runs, low=1)
    g = torch.Generator().manual_seed(seed)
    U = torch.randn(runs, width, X.shape[1], generator=g, dtype=X.dtype) / math.sqrt(X.shape[1])
    alpha = torch.randn(runs, width, generator=g, dtype=X.dtype) / math.sqrt(width)
    U.requires_grad_(True)
    alpha.requires_grad_(True)

    def loss():  # the sum of the runs' objectives: each run's gradient is its own
        residual = relu_network(X, U, alpha) - y
        return (residual.pow(2).sum() + beta * (U.pow(2).sum() + alpha.pow(2).sum())) / 2

    fit([U, alpha], loss, steps, GD_LR, optimizer=DecayingAdam, total=steps)
    return U.detach(), alpha.detach()


def convex_relu_experiment(seed: int) -> dict:
    """The objective of the network recovered from the convex program against the best of RUNS
    gradient-trained networks of the same width."""
    X, y = regression_data(seed)
    patterns = sample_patterns(X, PATTERNS, seed)
    v, w = admm(X, y, patterns)
    U, alpha = recover_network(v, w)
    m = {"patterns": patterns.shape[0], "width": U.shape[0],
         "convex_objective": convex_objective(X, y, patterns, v, w, BETA),
         "cone_violation": cone_violation(X, patterns, v, w),
         "convex_network_objective": float(network_objective(X, y, U, alpha))}
    runs = network_objective(X, y, *gradient_trained(X, y, U.shape[0], RUNS, seed))
    m["best_gd_objective"], m["worst_gd_objective"] = float(runs.min()), float(runs.max())
    m["median_gd_objective"] = float(runs.median())
    m["convex_over_median_gd"] = m["convex_network_objective"] / m["median_gd_objective"]
    m["convex_over_best_gd"] = m["convex_network_objective"] / m["best_gd_objective"]
    return m


CLAIM = Claim(
    paper="Bai, Gautam and Sojoudi 2022",
    citation="Efficient Global Optimization of Two-layer ReLU Networks: Quadratic-time Algorithms and "
             "Adversarial Training (arXiv:2201.01965), sections 2-3; the convex program of Pilanci and "
             "Ergen 2020 (arXiv:2002.10553)",
    statement="training a two-layer ReLU network as the convex program over sampled activation patterns "
              "(solved by ADMM) reaches an objective at least as low as back-propagation's, which can "
              "stop at spurious local minima",
    kind=REPRODUCTION,
    experiment=convex_relu_experiment,
    thresholds=("convex_over_best_gd <= 1.001", "convex_over_median_gd <= 1.0"),
    held_on=(1, 2),
    note="A near tie, not reproduced on seed 0: on this 1-D toy the best of 8 gradient-trained runs "
         "lands within 0.04% of the convex program's objective on every seed and the median within "
         "0.2%, so the verdict rests on ADMM's stopping accuracy (3000 iterations, cone violation "
         "<= 3e-5): best-run ratios 1.00036, 0.99999, 1.00006 and median-run ratios 1.00012, 0.99811, "
         "0.99957 on seeds 0, 1, 2; seed 0's median run beats the convex network by 0.01%. The "
         "thresholds were set on development seeds 10-12 before seeds 0-2 ran: the brief's 'at most the "
         "best run' became 'within 0.1% of the best and at most the median', once the best runs there "
         "were seen to reach the optimum to 1e-4. (A shorter baseline, 1500 Adam steps at lr 0.04, was "
         "tried after seeing these seeds and would have passed seed 0; it was not kept.)",
    summary=lambda m: (
        f"{m['patterns']:.0f} sampled patterns: the convex program's network has {m['width']:.0f} "
        f"neurons and objective {m['convex_network_objective']:.5g} (convex {m['convex_objective']:.5g}, "
        f"cone violation {m['cone_violation']:.1g}); {RUNS} gradient-trained networks of that width reach "
        f"{m['best_gd_objective']:.5g} at best, {m['median_gd_objective']:.5g} in the median and "
        f"{m['worst_gd_objective']:.5g} at worst (the convex network: {m['convex_over_best_gd']:.4f}x the "
        f"best, {m['convex_over_median_gd']:.4f}x the median)"),
)
