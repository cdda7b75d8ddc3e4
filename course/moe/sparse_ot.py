"""Sparsity-constrained optimal transport, and its use as capacity-limited token-to-expert routing.

Liu, Puigcerver and Blondel 2023, "Sparsity-Constrained Optimal Transport" (ICLR; arXiv 2209.15466).
For a cost C [m, n], marginals a [m] and b [n], and a plan T whose column t_j has at most k
non-zeros (B_k = {t >= 0 : ||t||_0 <= k}), with the squared-l2 regularizer
Omega(t) = gamma/2 ||t||^2:

    primal     min_{T 1 = a, T^T 1 = b, t_j in B_k}  <T, C> + sum_j Omega(t_j)
    dual       max_{alpha, beta}  <alpha, a> + <beta, b> - sum_j Omega*_k(alpha + beta_j 1 - c_j)
    semi-dual  max_alpha  <alpha, a> - sum_j b_j max_{Omega,k}(alpha - c_j)

    max-k-sparse conjugate  Omega*_k(s) = max_{t in B_k} <s, t> - Omega(t)
                                        = 1/(2 gamma) sum_{i in top-k(s)} [s_i]_+^2,
                            gradient    t = [top-k(s)]_+ / gamma
    k-sparse max            max_{Omega,k}(x) = max_{y in simplex, ||y||_0 <= k}
                                               <x, y> - gamma b_j/2 ||y||^2,
                            maximizer   y = P_k(x / (gamma b_j)): keep the k largest, project them
                            onto the simplex (the sparse simplex projection, Kyrillidis et al. 2013)

The plan is the gradient of the conjugate at the optimal potentials (t_j = b_j y_j in the
semi-dual), so it is k-sparse by construction; when it meets the marginals, its primal value equals
the dual value, so it is optimal (weak duality). The constraint set is not convex, so this can fail:
where the dual optimum is a kink (a tie at some column's k-th entry), the recovered plan misses the
marginals a little and a gap remains; the semi-dual, with only m variables, is the robust one here.
k = 1 is unregularized OT with one non-zero per column; a k larger than what the plan needs is
quadratically regularized OT (Blondel et al. 2018). The definitions follow the paper and the first
author's implementation in POT (`ot.smooth`, `SparsityConstrained`).

As routing (the paper's motivating application): sources are the E experts with marginal T / E each
(balanced load), targets are the T tokens with marginal 1 each (no token dropped), the cost is minus
the router score, and "at most k non-zeros per column" is "at most k experts per token". (The
abstract words the constraint from the experts' side, at most k tokens per expert; that is the same
problem with the roles of the two marginals exchanged.) The baselines:
greedy top-k with a capacity that drops overflow (GShard / Switch, `course.moe.dispatch`) and the
dense entropic plan of Sinkhorn's algorithm (Cuturi 2013, in the log domain).
"""
from typing import NamedTuple

import torch

from course.checks import check_finite, check_int, check_tensor
from course.claims import Claim, one_thread, timed
from course.data import gaussian_mixture, ring_centers
from course.moe.dispatch import dispatch, expert_capacity
from course.moe.gating import keep_top_k, prototype_gate, with_bias


class Transport(NamedTuple):
    """A solved transport problem: the plan, the (semi-)dual value and the potentials."""

    plan: torch.Tensor          # [m, n]
    value: float                # dual or semi-dual objective at the returned potentials
    alpha: torch.Tensor         # [m]
    beta: torch.Tensor | None   # [n], None for the semi-dual


def top_k_mask(s, k: int):
    """True at the k largest entries of each column. s [m, n] -> bool [m, n]"""
    return torch.zeros_like(s, dtype=torch.bool).scatter(0, s.topk(k, dim=0).indices, True)


def max_k_sparse_conjugate(s, k: int, gamma: float):
    """Omega*_k of each column and its gradient (the plan column). s [m, n] -> [n], [m, n]"""
    t = torch.where(top_k_mask(s, k), s.clamp(min=0), 0.0) / gamma  # [m, n]
    return 0.5 * gamma * (t ** 2).sum(0), t


def simplex_projection(v):
    """Euclidean projection of each column onto the probability simplex (by sorting). [m, n]"""
    u = v.sort(dim=0, descending=True).values
    rank = torch.arange(1, v.shape[0] + 1, dtype=v.dtype, device=v.device).unsqueeze(1)  # [m, 1]
    threshold = (u.cumsum(0) - 1) / rank  # [m, n] candidate shifts
    support = (u > threshold).sum(0, keepdim=True)  # [1, n] size of the support
    tau = threshold.gather(0, support - 1)  # [1, n]
    return (v - tau).clamp(min=0)


def sparse_simplex_projection(v, k: int):
    """Projection of each column onto {y in simplex, ||y||_0 <= k}: top-k, then simplex. [m, n]"""
    top, index = v.topk(k, dim=0)  # [k, n]
    return torch.zeros_like(v).scatter(0, index, simplex_projection(top))


def check_transport_args(where, cost, a, b, k=None, gamma=None):
    """Validate a transport problem: cost [m, n], marginals a [m] and b [n], k and gamma."""
    check_tensor(where, "cost", cost, ndim=2, kind="float")
    check_tensor(where, "a", a, ndim=1, kind="float")
    check_tensor(where, "b", b, ndim=1, kind="float")
    m, n = cost.shape
    if a.shape != (m,) or b.shape != (n,):
        raise ValueError(f"{where}: `a` and `b` must have shapes [m] = ({m},) and [n] = ({n},) "
                         f"for a cost of shape [m, n]; got {tuple(a.shape)} and {tuple(b.shape)}.")
    mass_a, mass_b = a.sum().item(), b.sum().item()
    if (a <= 0).any() or (b <= 0).any() or abs(mass_a - mass_b) > 1e-6 * mass_b:
        raise ValueError(f"{where}: `a` and `b` must be positive with equal sums; got minima "
                         f"{a.min().item():.6g} and {b.min().item():.6g}, sums {mass_a:.6g} "
                         f"and {mass_b:.6g}.")
    if k is not None:
        check_int(where, "k", k, low=1, high=m)
    if gamma is not None and not gamma > 0:
        raise ValueError(f"{where}: `gamma` must be > 0; got {gamma}.")
    check_finite(where, "cost", cost)


def maximize(objective, params, max_iter: int):
    """Maximize a concave objective of `params` with L-BFGS (strong Wolfe line search)."""
    opt = torch.optim.LBFGS(params, lr=1, max_iter=max_iter, history_size=20,
                            tolerance_grad=1e-10, tolerance_change=1e-14,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = -objective()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return objective().item()


def sparsity_constrained_ot_dual(cost, a, b, k: int, gamma: float = 0.1,
                                 max_iter: int = 500) -> Transport:
    """The dual of sparsity-constrained OT, solved with L-BFGS; plan t_j = grad Omega*_k.

    cost [m, n], a [m], b [n] -> Transport(plan [m, n], dual value, alpha [m], beta [n]).
    """
    check_transport_args("sparse_ot.dual", cost, a, b, k, gamma)
    C, a64, b64 = cost.double(), a.double(), b.double()
    alpha = torch.zeros_like(a64, requires_grad=True)
    beta = torch.zeros_like(b64, requires_grad=True)

    def dual():
        conj, _ = max_k_sparse_conjugate(alpha[:, None] + beta[None, :] - C, k, gamma)
        return alpha @ a64 + beta @ b64 - conj.sum()

    value = maximize(dual, [alpha, beta], max_iter)
    with torch.no_grad():
        _, plan = max_k_sparse_conjugate(alpha[:, None] + beta[None, :] - C, k, gamma)
    return Transport(plan.to(cost.dtype), value, alpha.detach(), beta.detach())


def sparsity_constrained_ot_semi_dual(cost, a, b, k: int, gamma: float = 0.1,
                                      max_iter: int = 200) -> Transport:
    """The semi-dual, solved with L-BFGS; plan t_j = b_j P_k((alpha - c_j) / (gamma b_j)).

    Its plan meets the column marginals b exactly and is k-sparse; the row marginals a hold at the
    optimum. cost [m, n], a [m], b [n] -> Transport(plan [m, n], semi-dual value, alpha [m], None).
    """
    check_transport_args("sparse_ot.semi_dual", cost, a, b, k, gamma)
    C, a64, b64 = cost.double(), a.double(), b.double()
    alpha = torch.zeros_like(a64, requires_grad=True)

    def plan_of(alpha):
        return b64 * sparse_simplex_projection((alpha[:, None] - C) / (gamma * b64), k)

    def semi_dual():
        t = plan_of(alpha.detach())  # Danskin: the maximizer's gradient is the plan itself
        inner = ((alpha[:, None] - C) * t).sum() - 0.5 * gamma * (t ** 2).sum()
        return alpha @ a64 - inner

    value = maximize(semi_dual, [alpha], max_iter)
    with torch.no_grad():
        plan = plan_of(alpha)
    return Transport(plan.to(cost.dtype), value, alpha.detach(), None)


def primal_objective(plan, cost, gamma: float) -> float:
    """<T, C> + gamma/2 ||T||^2, the primal objective of a plan. plan, cost [m, n]"""
    return ((plan * cost).sum() + 0.5 * gamma * (plan ** 2).sum()).item()


def sinkhorn(cost, a, b, epsilon: float = 0.05, iterations: int = 300):
    """Entropic OT by Sinkhorn's algorithm in the log domain: a dense plan (Cuturi 2013).

    P = exp((f_i + g_j - C_ij) / epsilon), with f and g updated in turn so that the rows, then the
    columns, meet their marginals. cost [m, n], a [m], b [n] -> plan [m, n].
    """
    check_transport_args("sparse_ot.sinkhorn", cost, a, b)
    if not epsilon > 0:
        raise ValueError(f"sparse_ot.sinkhorn: `epsilon` must be > 0; got {epsilon}.")
    C, log_a, log_b = cost.double(), a.double().log(), b.double().log()
    f, g = torch.zeros_like(log_a), torch.zeros_like(log_b)
    for _ in range(iterations):
        f = epsilon * (log_a - torch.logsumexp((g[None, :] - C) / epsilon, dim=1))
        g = epsilon * (log_b - torch.logsumexp((f[:, None] - C) / epsilon, dim=0))
    return ((f[:, None] + g[None, :] - C) / epsilon).exp().to(cost.dtype)


def balanced_marginals(num_tokens: int, num_experts: int, dtype=torch.float32):
    """Expert marginals T / E each (balanced load) and token marginals 1 each. -> a [E], b [T]"""
    return (torch.full((num_experts,), num_tokens / num_experts, dtype=dtype),
            torch.ones(num_tokens, dtype=dtype))


def sparse_ot_plan(scores, k: int, gamma: float = 0.05, max_iter: int = 200):
    """The k-sparse balanced routing plan: experts are sources, tokens are targets, cost = -score.

    scores [T, E] -> plan [T, E] (token-major), each row k-sparse and summing to 1.
    """
    check_tensor("sparse_ot.sparse_ot_plan", "scores", scores, ndim=2, kind="float")
    T, E = scores.shape
    a, b = balanced_marginals(T, E, scores.dtype)
    return sparsity_constrained_ot_semi_dual(-scores.t(), a, b, k, gamma, max_iter).plan.t()


def sparse_ot_route(scores, k: int, gamma: float = 0.05):
    """Routing from the k-sparse plan: each token's k largest plan entries, rows normalized.

    A token whose plan column has fewer than k non-zeros gets gate 0 on its extra experts.
    scores [T, E] -> expert_index [T, k], gates [T, k].
    """
    plan = sparse_ot_plan(scores, k, gamma)  # [T, E]
    gates, expert_index = plan.topk(k, dim=1)  # [T, k] each
    return expert_index, gates / gates.sum(1, keepdim=True).clamp(min=1e-12)


def top_k_capacity_plan(logits, k: int, capacity: int):
    """Greedy top-k routing through `course.moe.dispatch` with a capacity: dropped gates are 0.

    logits [T, E] -> plan [T, E] with gate (Shazeer eq. 3) at kept assignments.
    """
    T, E = logits.shape
    expert_index, gates = keep_top_k(logits, k)  # [T, k]
    routed = dispatch(logits.new_zeros(T, 1), expert_index, E, capacity)
    kept_gates = torch.where(routed.slot >= 0, gates, 0.0)  # [T, k]
    return logits.new_zeros(T, E).scatter(1, expert_index, kept_gates)


def routing_report(plan, scores, k: int) -> dict:
    """What a routing plan costs and keeps. plan, scores [T, E] -> numbers.

    load = tokens an expert must process (non-zeros of its column), against the capacity
    ceil(T k / E) of Switch Transformer eq. 3 with capacity factor 1; mass = the plan's column sum,
    against the balanced share T / E; a token is dropped if it keeps less than its unit of mass.
    """
    T, E = plan.shape
    used = plan > 0  # [T, E] the non-zeros: an expert computes on any token it gets a share of
    capacity = expert_capacity(T, E, k, 1.0)
    return {
        "routing_score": (plan * scores).sum().item(),
        "experts_per_token": used.sum(1).float().mean().item(),
        "max_experts_per_token": int(used.sum(1).max()),
        "max_load_over_capacity": used.sum(0).max().item() / capacity,
        "max_mass_over_share": plan.sum(0).max().item() / (T / E),
        "dropped_tokens": (plan.sum(1) < 1 - 1e-3).float().mean().item(),
    }


def imbalanced_router_logits(num_tokens: int = 256, num_experts: int = 4, seed: int = 0):
    """Router logits for tokens from a mixture whose blobs favour one expert each, unevenly.

    Half the tokens come from the blob of expert 0, so greedy routing overloads it. -> [T, E]
    """
    weights = [0.5] + [0.5 / (num_experts - 1)] * (num_experts - 1)
    centers = ring_centers(num_experts)
    x, _ = gaussian_mixture(num_tokens, centers, weights=weights, std=0.8, seed=seed)
    return with_bias(x) @ prototype_gate(centers) / 4  # [T, E]


def sparse_ot_claim(seed: int = 0, num_tokens: int = 256, num_experts: int = 4, k: int = 2,
                    gamma: float = 0.05, epsilon: float = 0.05) -> Claim:
    """Top-k with capacity vs dense Sinkhorn vs the k-sparse OT plan, on imbalanced scores."""
    with timed() as t, one_thread():
        logits = imbalanced_router_logits(num_tokens, num_experts, seed)
        scores = logits.softmax(dim=1)  # [T, E]
        a, b = balanced_marginals(num_tokens, num_experts)
        capacity = expert_capacity(num_tokens, num_experts, k, 1.0)
        plans = {"top_k": top_k_capacity_plan(logits, k, capacity),
                 "sinkhorn": sinkhorn(-scores.t(), a, b, epsilon).t(),
                 "sparse_ot": sparse_ot_plan(scores, k, gamma)}
        reports = {name: routing_report(p, scores, k) for name, p in plans.items()}
    measured = {f"{name}_{key}": value for name, r in reports.items() for key, value in r.items()}
    ot, top, sk = reports["sparse_ot"], reports["top_k"], reports["sinkhorn"]
    holds = (ot["dropped_tokens"] == 0 and ot["max_experts_per_token"] <= k
             and ot["max_load_over_capacity"] <= 1 and ot["max_mass_over_share"] <= 1.01
             and top["dropped_tokens"] >= 0.05 and sk["experts_per_token"] >= num_experts - 0.5)

    def line(name, r):
        return (f"{name}: score {r['routing_score']:.0f}, "
                f"{r['experts_per_token']:.2f} experts/token (max {r['max_experts_per_token']}), "
                f"max load/capacity {r['max_load_over_capacity']:.2f}, "
                f"max mass/share {r['max_mass_over_share']:.2f}, "
                f"{r['dropped_tokens']:.0%} tokens dropped")

    return Claim(
        paper="Liu, Puigcerver, Blondel 2023, Sparsity-Constrained OT",
        statement="Optimal transport with at most k non-zeros per token matches tokens to experts "
                  "with balanced loads and no dropped tokens, using at most k experts per token; "
                  "entropic OT (Sinkhorn) gives dense plans, greedy top-k drops overflow.",
        summary=(f"T={num_tokens}, E={num_experts}, k={k}, half the tokens prefer expert 0. "
                 + "; ".join(line(n, reports[n]) for n in ("top_k", "sinkhorn", "sparse_ot"))),
        holds=holds, measured=measured, seconds=t.seconds)
