"""Row scatter, row gather-sum and row dot in Triton: the data movement of MoE dispatch and combine.

After ScatterMoE (Tan et al. 2024): dispatch scatters token rows to their expert's block and its
backward gathers them back; combine gathers expert rows into tokens and its backward scatters them.
So two kernels serve both ops, forward and backward; a third, the row dot, gives the gates'
gradient. `slot [T, k]` says where assignment (t, j) lives in the grouped array; -1 marks a dropped
assignment. Rows are stored row-major, D contiguous; offsets are int64, so T D may pass 2^31.
Arithmetic runs in float32, or float64 for float64 rows (ACC); results are rounded to nearest
(`course.kernels.rounding`).
"""
import torch
import triton
import triton.language as tl

from course import outputs
from course.kernels.rounding import to_storage


@triton.jit
def scatter_rows_kernel(src_ptr, slot_ptr, weight_ptr, out_ptr, n_assign, k, D,
                        HAS_WEIGHT: tl.constexpr, ACC: tl.constexpr, BLOCK_A: tl.constexpr,
                        BLOCK_D: tl.constexpr):
    """out[slot[a]] = weight[a] * src[a // k] for every kept assignment a = t k + j."""
    pid_a = tl.program_id(0)
    pid_d = tl.program_id(1)
    offs_a = pid_a.to(tl.int64) * BLOCK_A + tl.arange(0, BLOCK_A)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    slot = tl.load(slot_ptr + offs_a, mask=offs_a < n_assign, other=-1)  # int64
    token = offs_a // k
    mask = (slot >= 0)[:, None] & (offs_d < D)[None, :]
    rows = tl.load(src_ptr + token[:, None] * D + offs_d[None, :], mask=mask, other=0.0)
    if HAS_WEIGHT:
        weight = tl.load(weight_ptr + offs_a, mask=slot >= 0, other=0.0)
        weighted = rows.to(ACC) * weight.to(ACC)[:, None]
        rows = to_storage(weighted, out_ptr.dtype.element_ty)
    tl.store(out_ptr + slot[:, None] * D + offs_d[None, :], rows, mask=mask)


@triton.jit
def gather_rows_kernel(src_ptr, slot_ptr, weight_ptr, out_ptr, T, k, D,
                       HAS_WEIGHT: tl.constexpr, ACC: tl.constexpr, BLOCK_T: tl.constexpr,
                       BLOCK_D: tl.constexpr):
    """out[t] = sum_j weight[t, j] * src[slot[t, j]] over kept assignments, accumulated in ACC."""
    pid_t = tl.program_id(0)
    pid_d = tl.program_id(1)
    offs_t = pid_t.to(tl.int64) * BLOCK_T + tl.arange(0, BLOCK_T)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    mask_t = offs_t < T
    mask_d = offs_d < D
    acc = tl.zeros((BLOCK_T, BLOCK_D), dtype=ACC)
    for j in range(k):
        slot = tl.load(slot_ptr + offs_t * k + j, mask=mask_t, other=-1)
        mask = (slot >= 0)[:, None] & mask_d[None, :]
        rows = tl.load(src_ptr + slot[:, None] * D + offs_d[None, :], mask=mask, other=0.0)
        rows = rows.to(ACC)
        if HAS_WEIGHT:
            weight = tl.load(weight_ptr + offs_t * k + j, mask=slot >= 0, other=0.0)
            rows = rows * weight.to(ACC)[:, None]
        acc += rows
    out = to_storage(acc, out_ptr.dtype.element_ty)
    tl.store(out_ptr + offs_t[:, None] * D + offs_d[None, :], out,
             mask=mask_t[:, None] & mask_d[None, :])


@triton.jit
def row_dot_kernel(a_ptr, src_ptr, slot_ptr, out_ptr, T, k, D, ACC: tl.constexpr,
                   BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr):
    """out[t, j] = <a[t], src[slot[t, j]]> for kept assignments, 0 for dropped ones."""
    pid_t = tl.program_id(0)
    j = tl.program_id(1)
    offs_t = pid_t.to(tl.int64) * BLOCK_T + tl.arange(0, BLOCK_T)
    mask_t = offs_t < T
    slot = tl.load(slot_ptr + offs_t * k + j, mask=mask_t, other=-1)
    acc = tl.zeros((BLOCK_T,), dtype=ACC)
    for start in range(0, D, BLOCK_D):
        offs_d = start + tl.arange(0, BLOCK_D)
        mask_d = offs_d < D
        a = tl.load(a_ptr + offs_t[:, None] * D + offs_d[None, :],
                    mask=mask_t[:, None] & mask_d[None, :], other=0.0)
        rows = tl.load(src_ptr + slot[:, None] * D + offs_d[None, :],
                       mask=(slot >= 0)[:, None] & mask_d[None, :], other=0.0)
        acc += tl.sum(a.to(ACC) * rows.to(ACC), axis=1)
    tl.store(out_ptr + offs_t * k + j,
             to_storage(acc, out_ptr.dtype.element_ty), mask=mask_t)


def _block_d(D: int) -> int:
    return max(16, min(128, triton.next_power_of_2(D)))


def arithmetic(dtype: torch.dtype) -> dict:
    """ACC, the kernels' arithmetic: float64 for float64 rows, float32 for every other dtype."""
    return dict(ACC=tl.float64 if dtype == torch.float64 else tl.float32)


def scatter_rows(src, slot, weight, num_rows: int):
    """src [T, D], slot [T, k], weight [T, k] or None -> out [num_rows, D] (every row written once)."""
    T, k = slot.shape
    D = src.shape[1]
    out = outputs.empty((num_rows, D), dtype=src.dtype, device=src.device)
    if num_rows == 0 or D == 0:
        return out
    BLOCK_A, BLOCK_D = 16, _block_d(D)
    grid = (triton.cdiv(T * k, BLOCK_A), triton.cdiv(D, BLOCK_D))
    scatter_rows_kernel[grid](src, slot, weight if weight is not None else slot, out, T * k, k, D,
                              HAS_WEIGHT=weight is not None, **arithmetic(src.dtype),
                              BLOCK_A=BLOCK_A, BLOCK_D=BLOCK_D)
    return out


def gather_rows(src, slot, weight):
    """src [S, D], slot [T, k], weight [T, k] or None -> out [T, D]."""
    T, k = slot.shape
    D = src.shape[1]
    out = outputs.empty((T, D), dtype=src.dtype, device=src.device)
    if T == 0 or D == 0:
        return out
    BLOCK_T, BLOCK_D = 16, _block_d(D)
    grid = (triton.cdiv(T, BLOCK_T), triton.cdiv(D, BLOCK_D))
    gather_rows_kernel[grid](src, slot, weight if weight is not None else slot, out, T, k, D,
                             HAS_WEIGHT=weight is not None, **arithmetic(src.dtype),
                             BLOCK_T=BLOCK_T, BLOCK_D=BLOCK_D)
    return out


def row_dot(a, src, slot):
    """a [T, D], src [S, D], slot [T, k] -> out [T, k]."""
    T, k = slot.shape
    out = outputs.empty((T, k), dtype=a.dtype, device=a.device)
    if T == 0 or k == 0:
        return out
    BLOCK_T, BLOCK_D = 16, _block_d(a.shape[1])
    row_dot_kernel[(triton.cdiv(T, BLOCK_T), k)](a, src, slot, out, T, k, a.shape[1],
                                                **arithmetic(a.dtype), BLOCK_T=BLOCK_T,
                                                BLOCK_D=BLOCK_D)
    return out
