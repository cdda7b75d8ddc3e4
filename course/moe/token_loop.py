"""Dispatch and combine written as a loop over tokens: the algorithm spelled out one step at a time.

The same contract as `course.moe.dispatch` (GShard Algorithm 1 priority: all first choices, then all
second choices, each in token order), computed by visiting every assignment in Python. It is the
easiest form to read and the slowest to run; the benchmark measures how much slower.
"""
import itertools

import torch

from course.moe.dispatch import Dispatched, check_combine_args, check_dispatch_args


def dispatch_token_loop(x, expert_index, num_experts: int, capacity: int | None = None) -> Dispatched:
    """GShard Algorithm 1 dispatch, one assignment at a time.

    x [T, D], expert_index [T, k] -> Dispatched(x [S, D], slot [T, k], counts [E]).
    """
    check_dispatch_args(x, expert_index, num_experts, capacity)
    T, k = expert_index.shape
    choices = expert_index.tolist()
    tokens_of = [[] for _ in range(num_experts)]  # kept tokens of each expert, in priority order
    place = [[None] * k for _ in range(T)]  # (expert, position inside the expert) or None
    for j in range(k):
        for t in range(T):
            e = choices[t][j]
            if capacity is None or len(tokens_of[e]) < capacity:
                place[t][j] = (e, len(tokens_of[e]))
                tokens_of[e].append(t)
    counts = [len(tokens) for tokens in tokens_of]
    offsets = [0, *itertools.accumulate(counts)][:-1]  # first row of each expert's block
    slot = [[-1 if p is None else offsets[p[0]] + p[1] for p in row] for row in place]
    rows = [x[t] for tokens in tokens_of for t in tokens]
    grouped = torch.stack(rows) if rows else x[:0]  # no rows kept: an empty slice of x
    device = x.device
    return Dispatched(grouped, torch.tensor(slot, dtype=torch.long, device=device).view(T, k),
                      torch.tensor(counts, dtype=torch.long, device=device))


def combine_token_loop(y, slot, gates):
    """Shazeer et al. 2017 eq. 1, y_t = sum_j gate_tj * E_j(x_t), one token at a time.

    y [S, D], slot [T, k], gates [T, k] -> [T, D].
    """
    check_combine_args(y, slot, gates)
    T, k = slot.shape
    slots = slot.tolist()
    sum_dtype = torch.promote_types(y.dtype, torch.float32)  # half types add up in float32, like kernels
    out = []
    for t in range(T):
        total = y.new_zeros(y.shape[1], dtype=sum_dtype)
        for j in range(k):
            if slots[t][j] >= 0:
                total = total + gates[t, j].to(sum_dtype) * y[slots[t][j]].to(sum_dtype)
        out.append(total.to(y.dtype))
    return torch.stack(out) if out else y.new_zeros(0, y.shape[1])
