"""The pattern users run instead of a grouped layout: Hugging Face's Mixtral-style expert loop.

For each expert, find its assignments with `torch.where` on a one-hot mask, gather those token rows,
run the expert, and `index_add_` the gate-weighted outputs back into the tokens (transformers'
MixtralSparseMoeBlock). With identity experts it is dispatch and combine in one loop, so the
benchmark compares it with `combine(dispatch(x))`. Capacity follows GShard's priority (all first
choices, then second choices, each in token order), which is the order `torch.where` returns the
(choice, token) pairs of the transposed index in.
"""
import torch

from course.checks import check_shape, check_tensor
from course.moe.dispatch import check_dispatch_args, combine, dispatch


def check_round_trip_args(x, expert_index, gates, num_experts, capacity, where="moe.dispatch_combine"):
    check_dispatch_args(x, expert_index, num_experts, capacity, where)
    check_tensor(where, "gates", gates, ndim=2, kind="float")
    check_shape(where, "gates", gates, tuple(expert_index.shape), "[T, k] = expert_index.shape")
    if gates.dtype != x.dtype:
        raise TypeError(f"{where}: `gates` must have the dtype of `x` ({x.dtype}); got {gates.dtype}.")


def dispatch_combine(x, expert_index, gates, num_experts: int, capacity: int | None = None):
    """The library's layer without experts: combine(dispatch(x)), grouped layout in between.

    x [T, D], expert_index [T, k], gates [T, k] -> [T, D].
    """
    check_round_trip_args(x, expert_index, gates, num_experts, capacity)
    routed = dispatch(x, expert_index, num_experts, capacity)
    return combine(routed.x, routed.slot, gates)


def mixtral_loop(x, expert_index, gates, num_experts: int, capacity: int | None = None):
    """Per expert: where its assignments are, gather their rows, index_add_ them back gate-weighted.

    x [T, D], expert_index [T, k], gates [T, k] -> [T, D].
    """
    check_round_trip_args(x, expert_index, gates, num_experts, capacity)
    out = torch.zeros_like(x)
    choices = expert_index.t()  # [k, T]: where() lists (choice, token) in GShard's priority order
    for e in range(num_experts):
        j, token = torch.where(choices == e)  # [n_e] each
        if capacity is not None:
            j, token = j[:capacity], token[:capacity]
        expert_out = x[token]  # an identity expert; a real one would run here on [n_e, D]
        out.index_add_(0, token, expert_out * gates[token, j, None])  # in place, as transformers does
    return out
