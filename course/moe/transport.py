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
the router score, and "at most k non-zeros per column" is "at most k experts per token"
(`sparse_ot_route`). The potentials alpha [E] say how the balance shifts the choice: a token's
experts are the k largest of score + alpha, so a new token is routed without solving again.
"""
from typing import NamedTuple

import torch

from course.checks import check_finite, check_int, check_tensor


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


def balanced_routing_transport(scores, k: int, gamma: float = 0.05, max_iter: int = 200) -> Transport:
    """The k-sparse balanced routing problem, solved by its semi-dual: experts are sources with
    marginal T / E, tokens are targets with marginal 1, the cost is minus the score.

    scores [T, E] -> Transport(plan [E, T], value, alpha [E], None).
    """
    check_tensor("transport.balanced_routing_transport", "scores", scores, ndim=2, kind="float")
    T, E = scores.shape
    a, b = balanced_marginals(T, E, scores.dtype)
    return sparsity_constrained_ot_semi_dual(-scores.t(), a, b, k, gamma, max_iter)


def sparse_ot_plan(scores, k: int, gamma: float = 0.05, max_iter: int = 200):
    """The k-sparse balanced routing plan. scores [T, E] -> plan [T, E], rows k-sparse summing to 1."""
    return balanced_routing_transport(scores, k, gamma, max_iter).plan.t()


class OTRoute(NamedTuple):
    """A routing read off the k-sparse balanced plan."""

    expert_index: torch.Tensor  # [T, k] each token's k largest plan entries
    gates: torch.Tensor  # [T, k] those entries, normalized per token
    potentials: torch.Tensor  # [E] alpha: a token's experts are the top k of score + alpha


def sparse_ot_route(scores, k: int, gamma: float = 0.05, max_iter: int = 200) -> OTRoute:
    """Routing from the k-sparse balanced plan.

    A token whose plan column has fewer than k non-zeros gets gate 0 on its extra experts.
    scores [T, E] -> OTRoute(expert_index [T, k], gates [T, k], potentials [E]).
    """
    solved = balanced_routing_transport(scores, k, gamma, max_iter)
    gates, expert_index = solved.plan.t().topk(k, dim=1)  # [T, k] each
    return OTRoute(expert_index, gates / gates.sum(1, keepdim=True).clamp(min=1e-12),
                   solved.alpha.to(scores.dtype))
