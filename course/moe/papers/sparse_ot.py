"""Liu, Puigcerver and Blondel 2023, "Sparsity-Constrained Optimal Transport" (ICLR; arXiv
2209.15466), as capacity-limited token-to-expert routing (the paper's motivating application).

Sources are the E experts with marginal T / E each (balanced load), targets are the T tokens with
marginal 1 each (no token dropped), the cost is minus the router score, and "at most k non-zeros per
column" is "at most k experts per token". (The abstract words the constraint from the experts' side,
at most k tokens per expert; that is the same problem with the roles of the two marginals exchanged.)
The solvers are in `course.moe.transport`. The baselines: greedy top-k with a capacity that drops
overflow (GShard / Switch, `course.moe.dispatch`) and the dense entropic plan of Sinkhorn's
algorithm (Cuturi 2013).
"""
import torch

from course.claims import REPRODUCTION, Claim
from course.data import gaussian_mixture, ring_centers
from course.moe.dispatch import dispatch, expert_capacity
from course.moe.gating import keep_top_k, prototype_gate, with_bias
from course.moe.transport import balanced_marginals, sinkhorn, sparse_ot_plan


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


def sparse_ot_experiment(seed: int, num_tokens: int = 256, num_experts: int = 4, k: int = 2,
                         gamma: float = 0.05, epsilon: float = 0.05) -> dict:
    """Top-k with capacity vs dense Sinkhorn vs the k-sparse OT plan, on imbalanced scores."""
    logits = imbalanced_router_logits(num_tokens, num_experts, seed)
    scores = logits.softmax(dim=1)  # [T, E]
    a, b = balanced_marginals(num_tokens, num_experts)
    capacity = expert_capacity(num_tokens, num_experts, k, 1.0)
    plans = {"top_k": top_k_capacity_plan(logits, k, capacity),
             "sinkhorn": sinkhorn(-scores.t(), a, b, epsilon).t(),
             "sparse_ot": sparse_ot_plan(scores, k, gamma)}
    reports = {name: routing_report(p, scores, k) for name, p in plans.items()}
    return {f"{name}_{key}": value for name, r in reports.items() for key, value in r.items()}


def sparse_ot_summary(m: dict) -> str:
    def line(name):
        return (f"{name}: {m[name + '_experts_per_token']:.2f} experts/token (max "
                f"{m[name + '_max_experts_per_token']}), max load/capacity "
                f"{m[name + '_max_load_over_capacity']:.2f}, max mass/share "
                f"{m[name + '_max_mass_over_share']:.2f}, {m[name + '_dropped_tokens']:.0%} tokens "
                f"dropped")

    return ("T=256, E=4, k=2, half the tokens prefer expert 0. "
            + "; ".join(line(n) for n in ("top_k", "sinkhorn", "sparse_ot")))


CLAIM = Claim(
    paper="Liu, Puigcerver, Blondel 2023",
    citation="Sparsity-Constrained Optimal Transport (arXiv:2209.15466), sections 3-5",
    statement="optimal transport with at most k non-zeros per token matches tokens to experts with "
              "balanced loads and no dropped tokens, using at most k experts per token; entropic "
              "OT (Sinkhorn) gives dense plans, greedy top-k drops the overflow",
    kind=REPRODUCTION,
    experiment=sparse_ot_experiment,
    thresholds=("sparse_ot_dropped_tokens == 0", "sparse_ot_max_experts_per_token <= 2",
                "sparse_ot_max_load_over_capacity <= 1", "sparse_ot_max_mass_over_share <= 1.01",
                "top_k_dropped_tokens >= 0.05", "sinkhorn_experts_per_token >= 3.5"),
    summary=sparse_ot_summary,
)
