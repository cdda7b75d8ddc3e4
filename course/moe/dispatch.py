"""Token dispatch and combine for a mixture-of-experts layer: the reference.

Dispatch groups the rows of a token batch by the expert each token was routed to, so that every expert
reads one contiguous block (the layout of MegaBlocks and ScatterMoE, no padding). With a capacity C,
expert e keeps only its first C assignments and drops the rest, as in GShard (Lepikhin et al. 2020,
Algorithm 1) and Switch Transformer (Fedus et al. 2021, eq. 3): every token's first choice has priority
over any second choice, and within one choice rank earlier tokens come first. Combine is the inverse:
each token sums its experts' outputs weighted by its gates (Shazeer et al. 2017, eq. 1); a dropped
assignment contributes nothing. Both walk the grouped rows, each of which knows the (token, choice)
it holds (`assignment_of_rows`): dispatch gathers token rows into it, combine adds the gate-weighted
rows back into their tokens.

Shapes: T tokens, D features, E experts, k experts per token, S kept assignments (S <= T k).
"""
import math
from fractions import Fraction
from typing import NamedTuple

import torch
from einops import rearrange

from course.checks import (check_index_range, check_int, check_same_device, check_shape,
                           check_tensor)


class Dispatched(NamedTuple):
    """What dispatch returns: grouped rows, where each assignment went, and rows per expert."""

    x: torch.Tensor       # [S, D] token rows grouped by expert
    slot: torch.Tensor    # [T, k] row of x holding assignment (t, j), -1 if dropped
    counts: torch.Tensor  # [E] rows kept per expert

    @property
    def offsets(self) -> torch.Tensor:
        """[E + 1] first row of each expert's block, then S."""
        return torch.nn.functional.pad(self.counts.cumsum(0), (1, 0))


def check_route_args(expert_index, num_experts, capacity, where="moe.route_slots"):
    """Validate a routing: expert_index [T, k] in [0, num_experts), k <= num_experts, capacity >= 1."""
    check_tensor(where, "expert_index", expert_index, ndim=2, kind="int")
    check_int(where, "num_experts", num_experts, low=1)
    check_int(where, "k = expert_index.shape[1]", expert_index.shape[1], low=1, high=num_experts)
    check_int(where, "capacity", capacity, low=1, allow_none=True)
    check_index_range(where, "expert_index", expert_index, num_experts, "num_experts")


def check_dispatch_args(x, expert_index, num_experts, capacity, where="moe.dispatch"):
    """Validate the arguments shared by every dispatch backend."""
    check_tensor(where, "x", x, ndim=2, kind="float")
    check_tensor(where, "expert_index", expert_index, ndim=2, kind="int")
    check_same_device(where, x=x, expert_index=expert_index)
    if expert_index.shape[0] != x.shape[0]:
        check_shape(where, "expert_index", expert_index, (x.shape[0], expert_index.shape[1]),
                    "[T, k] with T = x.shape[0]")
    check_route_args(expert_index, num_experts, capacity, where)


def check_combine_args(y, slot, gates, where="moe.combine"):
    """Validate the arguments shared by every combine backend."""
    check_tensor(where, "y", y, ndim=2, kind="float")
    check_tensor(where, "slot", slot, ndim=2, kind="int")
    check_tensor(where, "gates", gates, ndim=2, kind="float")
    check_same_device(where, y=y, slot=slot, gates=gates)
    check_shape(where, "gates", gates, tuple(slot.shape), "[T, k] = slot.shape")
    if gates.dtype != y.dtype:
        raise TypeError(f"{where}: `gates` must have the dtype of `y` ({y.dtype}); got {gates.dtype}.")
    if slot.numel() and (slot.min().item() < -1 or slot.max().item() >= y.shape[0]):
        raise ValueError(f"{where}: `slot` must hold rows of `y` in [0, S) = [0, {y.shape[0]}) "
                         f"or -1 for a dropped assignment; got values from {slot.min().item()} "
                         f"to {slot.max().item()}.")
    kept = slot[slot >= 0]
    if kept.numel() != y.shape[0] or (kept.numel() and kept.bincount().max().item() > 1):
        raise ValueError(f"{where}: `slot` must name every row of `y` exactly once, as dispatch "
                         f"returns it; got {kept.numel()} kept assignments "
                         f"({kept.unique().numel()} distinct rows) for {y.shape[0]} rows of `y`.")


def expert_capacity(num_tokens: int, num_experts: int, k: int, capacity_factor) -> int:
    """Switch Transformer eq. 3: capacity = ceil(capacity_factor * T k / E), at least 1.

    In exact arithmetic: a float factor is read as the decimal it prints as (1.1 is 11/10), so
    1.1 * 25 * 2 / 5 is 11, not the 11.000000000000002 of floating point, whose ceiling is 12.
    """
    where = "expert_capacity"
    check_int(where, "num_tokens", num_tokens, low=1)
    check_int(where, "num_experts", num_experts, low=1)
    check_int(where, "k", k, low=1, high=num_experts)
    if isinstance(capacity_factor, bool) or not isinstance(capacity_factor, (int, float, Fraction)) \
            or not capacity_factor > 0 or capacity_factor == float("inf"):
        raise ValueError(f"{where}: `capacity_factor` must be a finite number > 0; got "
                         f"{capacity_factor!r}.")
    factor = Fraction(repr(capacity_factor)) if isinstance(capacity_factor, float) \
        else Fraction(capacity_factor)
    return max(1, math.ceil(factor * num_tokens * k / num_experts))


def route_slots(expert_index, num_experts: int, capacity: int | None):
    """Where each assignment lands in the grouped layout: a stable counting sort by expert.

    expert_index [T, k] -> slot [T, k] (-1 where dropped), counts [E] (kept per expert).
    """
    check_route_args(expert_index, num_experts, capacity)
    return counting_sort_slots(expert_index, num_experts, capacity)


def counting_sort_slots(expert_index, num_experts: int, capacity: int | None):
    """`route_slots` without the argument checks (dispatch has made them)."""
    T, k = expert_index.shape
    expert = rearrange(expert_index.long(), "T k -> (k T)")  # priority order: choice, then token
    order = torch.argsort(expert, stable=True)  # grouped by expert, priority kept inside a group
    routed = torch.bincount(expert, minlength=num_experts)  # [E]
    first = routed.cumsum(0) - routed  # [E] first sorted position of each expert
    position = torch.empty_like(expert)  # [kT] rank of the assignment inside its expert
    position[order] = torch.arange(expert.numel(), device=expert.device) - first[expert[order]]
    counts = routed if capacity is None else routed.clamp(max=capacity)
    offsets = counts.cumsum(0) - counts  # [E]
    keep = position < counts[expert]
    slot = torch.where(keep, offsets[expert] + position, -1)
    return rearrange(slot, "(k T) -> T k", k=k), counts


def assignment_of_rows(slot, num_rows: int):
    """The inverse of `slot`: which (token, choice) each grouped row holds.

    slot [T, k] (-1 where dropped) -> token [S], choice [S] with slot[token[s], choice[s]] = s.
    """
    T, k = slot.shape
    assignment = torch.arange(T * k, device=slot.device)  # t k + j, row-major over slot
    # a dropped assignment (-1) writes into one spare row past the end, cut off below: no boolean
    # mask, so no count of the kept entries to wait for
    rows = torch.where(slot >= 0, slot, num_rows).reshape(-1).long()
    holder = torch.empty(num_rows + 1, dtype=torch.long, device=slot.device).index_put_((rows,), assignment)
    holder = holder[:num_rows]
    return holder // k, holder % k


def dispatch(x, expert_index, num_experts: int, capacity: int | None = None) -> Dispatched:
    """Group token rows by expert (GShard Algorithm 1 dispatch, no padding).

    x [T, D], expert_index [T, k] -> Dispatched(x [S, D], slot [T, k], counts [E]).
    """
    check_dispatch_args(x, expert_index, num_experts, capacity)
    slot, counts = counting_sort_slots(expert_index, num_experts, capacity)
    token, _ = assignment_of_rows(slot, int(counts.sum()))  # [S]
    return Dispatched(x.index_select(0, token), slot, counts)


def combine(y, slot, gates):
    """Gate-weighted sum of each token's expert outputs (Shazeer et al. 2017, eq. 1).

    Every grouped row adds its output, times its gate, into the token it came from; a dropped
    assignment has no row, so it adds nothing.
    y [S, D] expert outputs in grouped order, slot [T, k], gates [T, k] -> [T, D].
    """
    check_combine_args(y, slot, gates)
    token, choice = assignment_of_rows(slot, y.shape[0])  # [S] each
    weighted = y * gates[token, choice].unsqueeze(1)  # [S, D] gate_tj * E_j(x_t)
    return y.new_zeros(slot.shape[0], y.shape[1]).index_add_(0, token, weighted)  # [T, D]
