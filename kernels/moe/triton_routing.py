"""Expert routing positions in Triton: a parallel, stable counting sort of assignments by expert.

The T k assignments are read in GShard's priority order (all first choices, then all second choices,
each in token order: p = j T + t) and cut into chunks of BLOCK_A. Three steps, as in a radix-sort pass:
  1. `expert_histogram_kernel`: each chunk counts its assignments per expert -> hist [chunks, E].
  2. an exclusive scan of hist over chunks (a few KB, `host.scan_chunk_histogram`) gives each chunk
     the number of earlier assignments of every expert; capacity clamps the totals into `counts`.
  3. `dispatch_slot_kernel`: each assignment's rank inside its expert is the chunk's base plus its
     rank inside the chunk (a cumulative sum of the one-hot chunk); kept when rank < counts[e], it
     lands in slot offsets[e] + rank of the grouped array.
"""
import torch
import triton
import triton.language as tl

from course import outputs
from course.kernels.moe.host import scan_chunk_histogram

BLOCK_A = 128  # assignments per chunk
MAX_EXPERTS = 2 ** 20 // BLOCK_A  # a chunk's one-hot [BLOCK_A, BLOCK_E] stays within Triton's 2^20 elements


@triton.jit
def expert_histogram_kernel(index_ptr, hist_ptr, n_assign, T, k, E,
                            BLOCK_A: tl.constexpr, BLOCK_E: tl.constexpr):
    """hist[chunk, e] = number of assignments to expert e in this chunk of the priority order."""
    pid_a = tl.program_id(0).to(tl.int64)
    offs_p = pid_a * BLOCK_A + tl.arange(0, BLOCK_A)  # priority order p = j T + t
    offs_e = tl.arange(0, BLOCK_E)
    mask_p = offs_p < n_assign
    expert = tl.load(index_ptr + (offs_p % T) * k + offs_p // T, mask=mask_p, other=-1)
    one_hot = (expert[:, None] == offs_e[None, :]).to(tl.int64)  # [BLOCK_A, BLOCK_E]
    tl.store(hist_ptr + pid_a * E + offs_e, tl.sum(one_hot, axis=0), mask=offs_e < E)


@triton.jit
def dispatch_slot_kernel(index_ptr, base_ptr, counts_ptr, offsets_ptr, slot_ptr, n_assign, T, k, E,
                         BLOCK_A: tl.constexpr, BLOCK_E: tl.constexpr):
    """slot[t, j] = offsets[e] + rank of (t, j) among expert e's assignments, or -1 past capacity."""
    pid_a = tl.program_id(0).to(tl.int64)
    offs_p = pid_a * BLOCK_A + tl.arange(0, BLOCK_A)
    offs_e = tl.arange(0, BLOCK_E)
    mask_p = offs_p < n_assign
    offs_tk = (offs_p % T) * k + offs_p // T  # where assignment p lives in the [T, k] arrays
    expert = tl.load(index_ptr + offs_tk, mask=mask_p, other=-1)
    one_hot = (expert[:, None] == offs_e[None, :]).to(tl.int64)  # [BLOCK_A, BLOCK_E]
    rank_in_chunk = tl.sum(one_hot * tl.cumsum(one_hot, axis=0), axis=1) - 1  # [BLOCK_A]
    base = tl.load(base_ptr + pid_a * E + offs_e, mask=offs_e < E, other=0)  # [BLOCK_E]
    rank = tl.sum(one_hot * base[None, :], axis=1) + rank_in_chunk
    safe_expert = tl.where(mask_p, expert, 0)
    kept = mask_p & (rank < tl.load(counts_ptr + safe_expert, mask=mask_p, other=0))
    slot = tl.where(kept, tl.load(offsets_ptr + safe_expert, mask=mask_p, other=0) + rank, -1)
    tl.store(slot_ptr + offs_tk, slot, mask=mask_p)


def route_slots(expert_index, num_experts: int, capacity: int | None):
    """expert_index [T, k] -> slot [T, k] (-1 where dropped), counts [E] kept per expert."""
    T, k = expert_index.shape
    n_assign = T * k
    device = expert_index.device
    slot = outputs.empty((T, k), dtype=torch.long, device=device)
    if n_assign == 0:
        return slot, torch.zeros(num_experts, dtype=torch.long, device=device)
    BLOCK_E = max(16, triton.next_power_of_2(num_experts))
    n_chunks = triton.cdiv(n_assign, BLOCK_A)
    hist = outputs.empty((n_chunks, num_experts), dtype=torch.long, device=device)
    expert_histogram_kernel[(n_chunks,)](expert_index, hist, n_assign, T, k, num_experts,
                                         BLOCK_A=BLOCK_A, BLOCK_E=BLOCK_E)
    base, counts, offsets = scan_chunk_histogram(hist, capacity)
    dispatch_slot_kernel[(n_chunks,)](expert_index, base, counts, offsets, slot, n_assign, T, k,
                                      num_experts, BLOCK_A=BLOCK_A, BLOCK_E=BLOCK_E)
    return slot, counts
