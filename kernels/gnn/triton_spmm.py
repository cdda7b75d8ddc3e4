"""The CSR sparse-dense product and its per-edge row dot in Triton: GCN's propagation, forward and back.

    spmm:      out[i, d] = sum_{p in rowptr[i]:rowptr[i+1]} weight[p, d // C] * x[col[p], d]
    edge dot:  out[p, h] = <a[dst[p], h, :], b[col[p], h, :]>

x is [S, D] row-major with D = H C: H heads of C columns each (H = 1 for gnn.spmm, whose weight is one
number per edge; H heads for GAT's backward, whose weight is the attention alpha [E, H]). The product
is a segment sum over each row's edges, so it needs no atomics and adds in a fixed order: it is
deterministic. Its gradients are the same two kernels:
    grad_x      = the product over the transposed graph (CSC), with weights weight[perm]
    grad_weight = the edge dot of grad_out's destination row with x's source row.

`spmm_fwd_kernel` runs one program per block of BLOCK_N destination rows and block of BLOCK_D columns;
each row walks its own edges, BLOCK_E at a time: a [BLOCK_N, BLOCK_E, BLOCK_D] tile of gathered source
rows, weighted and added up. A hub row of degree 10^4 is a loop of 10^4 / BLOCK_E vector steps; the
rows sharing its program stop adding (masked) once their own edges run out. `spmm_bwd_kernel`, the
edge dot, runs one program per block of BLOCK_E edges and head. Offsets are int64 (`.to(tl.int64)`),
so E D may pass 2^31. Arithmetic is in float32, or float64 for float64 rows (ACC); stores round to
nearest (`course.kernels.rounding`). Indices may be int32 or int64.
"""
import torch
import triton
import triton.language as tl

from course import outputs
from course.kernels.launch import gpu_tiles
from course.kernels.rounding import to_storage


@triton.jit
def spmm_fwd_kernel(rowptr_ptr, col_ptr, x_ptr, weight_ptr, out_ptr, N, D, C, H,
                    HAS_WEIGHT: tl.constexpr, ACC: tl.constexpr, BLOCK_N: tl.constexpr,
                    BLOCK_E: tl.constexpr, BLOCK_D: tl.constexpr):
    """out[i, d] = sum_p weight[p, d // C] * x[col[p], d] over the edges p of each row i of the block."""
    pid_n = tl.program_id(0)
    pid_d = tl.program_id(1)
    offs_n = pid_n.to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)  # [BLOCK_N] destination rows
    mask_n = offs_n < N
    start = tl.load(rowptr_ptr + offs_n, mask=mask_n, other=0).to(tl.int64)
    degree = tl.load(rowptr_ptr + offs_n + 1, mask=mask_n, other=0).to(tl.int64) - start
    degree = tl.where(mask_n, degree, 0)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)  # [BLOCK_D] columns
    mask_d = offs_d < D
    head = offs_d // C  # the weight column of each column
    acc = tl.zeros((BLOCK_N, BLOCK_E, BLOCK_D), dtype=ACC)
    for first in range(0, tl.max(degree, axis=0), BLOCK_E):  # as long as the block's longest row
        offs_e = first + tl.arange(0, BLOCK_E)  # [BLOCK_E] positions within each row
        mask_e = offs_e[None, :] < degree[:, None]  # [BLOCK_N, BLOCK_E]
        p = start[:, None] + offs_e[None, :]  # [BLOCK_N, BLOCK_E] CSR positions
        src = tl.load(col_ptr + p, mask=mask_e, other=0).to(tl.int64)  # source rows
        mask = mask_e[:, :, None] & mask_d[None, None, :]
        rows = tl.load(x_ptr + src[:, :, None] * D + offs_d[None, None, :], mask=mask, other=0.0)
        rows = rows.to(ACC)  # [BLOCK_N, BLOCK_E, BLOCK_D]
        if HAS_WEIGHT:
            w = tl.load(weight_ptr + p[:, :, None] * H + head[None, None, :], mask=mask, other=0.0)
            rows = rows * w.to(ACC)
        acc += rows
    out = tl.sum(acc, axis=1)  # [BLOCK_N, BLOCK_D]; an empty row sums to 0
    tl.store(out_ptr + offs_n[:, None] * D + offs_d[None, :], to_storage(out, out_ptr.dtype.element_ty),
             mask=mask_n[:, None] & mask_d[None, :])


@triton.jit
def spmm_bwd_kernel(dst_ptr, col_ptr, a_ptr, b_ptr, out_ptr, E, H, C, ACC: tl.constexpr,
                    BLOCK_E: tl.constexpr, BLOCK_C: tl.constexpr):
    """out[p, h] = <a[dst[p], h, :], b[col[p], h, :]> for a block of edges p and one head h."""
    pid_e = tl.program_id(0)
    pid_h = tl.program_id(1)
    offs_e = pid_e.to(tl.int64) * BLOCK_E + tl.arange(0, BLOCK_E)
    mask_e = offs_e < E
    i = tl.load(dst_ptr + offs_e, mask=mask_e, other=0).to(tl.int64)  # destination of each edge
    j = tl.load(col_ptr + offs_e, mask=mask_e, other=0).to(tl.int64)  # source of each edge
    dot = tl.zeros((BLOCK_E, BLOCK_C), dtype=ACC)
    for first in range(0, C, BLOCK_C):
        offs_c = first + tl.arange(0, BLOCK_C)
        mask = mask_e[:, None] & (offs_c < C)[None, :]
        a = tl.load(a_ptr + (i[:, None] * H + pid_h) * C + offs_c[None, :], mask=mask, other=0.0)
        b = tl.load(b_ptr + (j[:, None] * H + pid_h) * C + offs_c[None, :], mask=mask, other=0.0)
        dot += a.to(ACC) * b.to(ACC)
    tl.store(out_ptr + offs_e * H + pid_h, tl.sum(dot, axis=1).to(out_ptr.dtype.element_ty), mask=mask_e)


def accumulator(dtype: torch.dtype) -> torch.dtype:
    """The kernels' arithmetic: float64 for float64 tensors, float32 for every other dtype."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def arithmetic(dtype: torch.dtype) -> dict:
    """ACC, the kernels' arithmetic type for tensors of `dtype`."""
    return dict(ACC=tl.float64 if dtype == torch.float64 else tl.float32)


def row_blocks(device: torch.device, width: int, rows: int, edges: int) -> dict:
    """BLOCK_N rows per program, BLOCK_E edges per step, BLOCK_D columns per program.

    On a GPU a program takes one row (rows that share a program wait for the longest of them), 32
    edges a step and up to 128 columns. The interpreter pays per program and per operation, hardly per
    element, so on the CPU a program takes the whole row of columns, steps of about the mean degree and
    as many rows as fill a tile of 2^16 elements.
    """
    if gpu_tiles(device):
        return dict(BLOCK_N=1, BLOCK_E=32, BLOCK_D=max(16, min(128, triton.next_power_of_2(width))))
    BLOCK_D = max(16, min(256, triton.next_power_of_2(width)))
    BLOCK_E = max(8, min(256, triton.next_power_of_2(-(-edges // max(rows, 1)))))
    BLOCK_N = max(1, min(1024, triton.next_power_of_2(rows), 2 ** 16 // (BLOCK_E * BLOCK_D)))
    return dict(BLOCK_N=BLOCK_N, BLOCK_E=BLOCK_E, BLOCK_D=BLOCK_D)


def edge_blocks(device: torch.device, width: int) -> dict:
    """BLOCK_E edges per program and BLOCK_C columns a step of the edge dot (wider on the CPU)."""
    if gpu_tiles(device):
        return dict(BLOCK_E=64, BLOCK_C=max(16, min(64, triton.next_power_of_2(width))))
    return dict(BLOCK_E=1024, BLOCK_C=max(16, min(256, triton.next_power_of_2(width))))


def spmm(rowptr, col, x, weight):
    """rowptr [N + 1], col [E], x [S, D], weight [E, H] or None (H divides D) -> out [N, D] in x's dtype."""
    N, D = rowptr.numel() - 1, x.shape[1]
    H = 1 if weight is None else weight.shape[1]
    out = outputs.empty((N, D), dtype=x.dtype, device=x.device)
    if N == 0 or D == 0:
        return out
    blocks = row_blocks(x.device, D, N, col.numel())
    grid = (triton.cdiv(N, blocks["BLOCK_N"]), triton.cdiv(D, blocks["BLOCK_D"]))
    spmm_fwd_kernel[grid](rowptr, col, x, weight if weight is not None else x, out, N, D, D // H, H,
                          HAS_WEIGHT=weight is not None, **arithmetic(x.dtype), **blocks)
    return out


def edge_dot(dst, col, a, b, heads: int):
    """dst [E], col [E], a [N, H C], b [S, H C] -> out [E, H] = <a[dst[p], h], b[col[p], h]>, in ACC."""
    E, H = col.numel(), heads
    out = outputs.empty((E, H), dtype=accumulator(a.dtype), device=a.device)
    if E == 0 or H == 0:
        return out
    C = a.shape[1] // H
    blocks = edge_blocks(a.device, C)
    spmm_bwd_kernel[(triton.cdiv(E, blocks["BLOCK_E"]), H)](dst, col, a, b, out, E, H, C,
                                                            **arithmetic(a.dtype), **blocks)
    return out
