"""GAT's neighbourhood attention in Triton (Velickovic et al. 2018, eq. 1-4): one pass over each node's
edges with an online softmax, and the per-edge part of its backward.

For each destination i and head h, over the incoming edges p = (j -> i):
    e_ij     = LeakyReLU(a_dst[i, h] + a_src[j, h])                       eq. (1)
    alpha_ij = exp(e_ij - lse_i),  lse_i = log sum_j exp(e_ij)           eq. (2)-(3)
    out_i    = sum_j alpha_ij h[j, h, :]                                  eq. (4), before the nonlinearity

`gat_aggregate_fwd_kernel` never holds alpha for all edges: it walks i's edges BLOCK_E at a time,
keeping a running maximum m, a running sum l of exp(e - m) and a running weighted sum acc of the rows,
both rescaled by exp(m_old - m_new) when a block raises the maximum (the online softmax of Milakov and
Gimelshein 2018, flash attention's loop). It saves lse = m + log l [N, H] for the backward. One program
per block of BLOCK_N destinations, head and block of BLOCK_C columns (the softmax's statistics are
recomputed per block of columns: they cost one scalar per edge).

The backward, with g = dL/d out and dot_ij = <g_i, h_j> (the edge dot of `triton_spmm`):
    delta_i  = sum_j alpha_ij dot_ij  (= <g_i, out_i>)
    de_ij    = alpha_ij (dot_ij - delta_i)                               the softmax's backward
    dz_ij    = de_ij * LeakyReLU'(a_dst[i] + a_src[j])                  slope where z <= 0, as torch
    grad_a_dst[i] = sum_j dz_ij,   grad_a_src[j] = sum_i dz_ij,   grad_h[j] = sum_i alpha_ij g_i.
`gat_aggregate_bwd_kernel` computes alpha, dz [E, H] and grad_a_dst [N, H] per destination (two passes
over its edges: delta first, then dz); the two sums over sources are products over the transposed
graph, done by the spmm kernel. A node without edges gets 0 (its lse is never read).
"""
import triton
import triton.language as tl

from course import outputs
from course.kernels.gnn.triton_spmm import accumulator, arithmetic, row_blocks
from course.kernels.rounding import to_storage


@triton.jit
def gat_aggregate_fwd_kernel(rowptr_ptr, col_ptr, h_ptr, a_src_ptr, a_dst_ptr, out_ptr, lse_ptr,
                             N, H, C, NEGATIVE_SLOPE: tl.constexpr, ACC: tl.constexpr,
                             BLOCK_N: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_D: tl.constexpr):
    """out[i, h, c] = sum_j alpha_ij h[j, h, c] for a block of destinations i, one head h, a block of c."""
    pid_n = tl.program_id(0)
    pid_h = tl.program_id(1)
    pid_c = tl.program_id(2)
    offs_n = pid_n.to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_n = offs_n < N
    start = tl.load(rowptr_ptr + offs_n, mask=mask_n, other=0).to(tl.int64)
    degree = tl.load(rowptr_ptr + offs_n + 1, mask=mask_n, other=0).to(tl.int64) - start
    degree = tl.where(mask_n, degree, 0)
    offs_c = pid_c * BLOCK_D + tl.arange(0, BLOCK_D)
    mask_c = offs_c < C
    s_dst = tl.load(a_dst_ptr + offs_n * H + pid_h, mask=mask_n, other=0.0).to(ACC)  # [BLOCK_N]
    m = tl.full((BLOCK_N,), float("-inf"), dtype=ACC)  # running maximum of e
    l = tl.zeros((BLOCK_N,), dtype=ACC)  # running sum of exp(e - m)
    acc = tl.zeros((BLOCK_N, BLOCK_D), dtype=ACC)  # running sum of exp(e - m) h_j
    for first in range(0, tl.max(degree, axis=0), BLOCK_E):
        offs_e = first + tl.arange(0, BLOCK_E)
        mask_e = offs_e[None, :] < degree[:, None]  # [BLOCK_N, BLOCK_E]
        p = start[:, None] + offs_e[None, :]
        src = tl.load(col_ptr + p, mask=mask_e, other=0).to(tl.int64)
        s_src = tl.load(a_src_ptr + src * H + pid_h, mask=mask_e, other=0.0).to(ACC)
        z = s_dst[:, None] + s_src  # [BLOCK_N, BLOCK_E]
        e = tl.where(mask_e, tl.where(z > 0, z, z * NEGATIVE_SLOPE), float("-inf"))  # LeakyReLU
        m_new = tl.maximum(m, tl.max(e, axis=1))  # -inf only for a row with no edge yet
        shift = tl.where(m_new == float("-inf"), 0.0, m_new)  # no -inf - -inf
        scale = tl.exp(m - shift)  # exp(m_old - m_new): 0 the first time, 1 when m did not grow
        prob = tl.exp(e - shift[:, None])  # [BLOCK_N, BLOCK_E] exp(e - m), 0 where masked
        rows = tl.load(h_ptr + (src[:, :, None] * H + pid_h) * C + offs_c[None, None, :],
                       mask=mask_e[:, :, None] & mask_c[None, None, :], other=0.0).to(ACC)
        l = l * scale + tl.sum(prob, axis=1)
        acc = acc * scale[:, None] + tl.sum(prob[:, :, None] * rows, axis=1)
        m = m_new
    seen = l > 0  # the node has an edge
    out = tl.where(seen[:, None], acc / tl.where(seen, l, 1.0)[:, None], 0.0)
    tl.store(out_ptr + (offs_n[:, None] * H + pid_h) * C + offs_c[None, :],
             to_storage(out, out_ptr.dtype.element_ty), mask=mask_n[:, None] & mask_c[None, :])
    lse = tl.where(seen, m + tl.log(tl.where(seen, l, 1.0)), 0.0)
    first_block = tl.full((BLOCK_N,), pid_c, tl.int32) == 0  # one program of the columns writes lse
    tl.store(lse_ptr + offs_n * H + pid_h, lse, mask=mask_n & first_block)


@triton.jit
def gat_aggregate_bwd_kernel(rowptr_ptr, col_ptr, a_src_ptr, a_dst_ptr, lse_ptr, dot_ptr, alpha_ptr,
                             dz_ptr, grad_dst_ptr, N, H, NEGATIVE_SLOPE: tl.constexpr, ACC: tl.constexpr,
                             BLOCK_N: tl.constexpr, BLOCK_E: tl.constexpr):
    """alpha_ij, dz_ij of every edge into a block of destinations i (one head), and grad_a_dst[i]."""
    pid_n = tl.program_id(0)
    pid_h = tl.program_id(1)
    offs_n = pid_n.to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_n = offs_n < N
    start = tl.load(rowptr_ptr + offs_n, mask=mask_n, other=0).to(tl.int64)
    degree = tl.load(rowptr_ptr + offs_n + 1, mask=mask_n, other=0).to(tl.int64) - start
    degree = tl.where(mask_n, degree, 0)
    longest = tl.max(degree, axis=0)
    s_dst = tl.load(a_dst_ptr + offs_n * H + pid_h, mask=mask_n, other=0.0).to(ACC)
    lse = tl.load(lse_ptr + offs_n * H + pid_h, mask=mask_n, other=0.0)
    total = tl.zeros((BLOCK_N, BLOCK_E), dtype=ACC)
    weighted = tl.zeros((BLOCK_N, BLOCK_E), dtype=ACC)
    for first in range(0, longest, BLOCK_E):  # pass 1: sum_j exp(e_ij - lse_i) (about 1) and with dot_ij
        offs_e = first + tl.arange(0, BLOCK_E)
        mask_e = offs_e[None, :] < degree[:, None]
        p = start[:, None] + offs_e[None, :]
        src = tl.load(col_ptr + p, mask=mask_e, other=0).to(tl.int64)
        z = s_dst[:, None] + tl.load(a_src_ptr + src * H + pid_h, mask=mask_e, other=0.0).to(ACC)
        u = tl.where(mask_e, tl.exp(tl.where(z > 0, z, z * NEGATIVE_SLOPE) - lse[:, None]), 0.0)
        total += u
        weighted += u * tl.load(dot_ptr + p * H + pid_h, mask=mask_e, other=0.0)
    # Dividing by the sum (about 1) cancels lse's rounding, common to a node's edges: where attention
    # is near one-hot, dot - delta cancels, and alpha must be as exact as the reference's softmax.
    norm = tl.sum(total, axis=1)
    norm = tl.where(norm > 0, norm, 1.0)  # [BLOCK_N]
    delta = tl.sum(weighted, axis=1) / norm  # delta_i = sum_j alpha_ij dot_ij = <g_i, out_i>
    grad = tl.zeros((BLOCK_N, BLOCK_E), dtype=ACC)
    for first in range(0, longest, BLOCK_E):  # pass 2: alpha, and dz = alpha (dot - delta) LeakyReLU'(z)
        offs_e = first + tl.arange(0, BLOCK_E)
        mask_e = offs_e[None, :] < degree[:, None]
        p = start[:, None] + offs_e[None, :]
        src = tl.load(col_ptr + p, mask=mask_e, other=0).to(tl.int64)
        z = s_dst[:, None] + tl.load(a_src_ptr + src * H + pid_h, mask=mask_e, other=0.0).to(ACC)
        u = tl.where(mask_e, tl.exp(tl.where(z > 0, z, z * NEGATIVE_SLOPE) - lse[:, None]), 0.0)
        alpha = u / norm[:, None]
        de = alpha * (tl.load(dot_ptr + p * H + pid_h, mask=mask_e, other=0.0) - delta[:, None])
        dz = tl.where(z > 0, de, de * NEGATIVE_SLOPE)  # torch's LeakyReLU' : slope where z <= 0
        tl.store(alpha_ptr + p * H + pid_h, alpha, mask=mask_e)
        tl.store(dz_ptr + p * H + pid_h, dz, mask=mask_e)
        grad += tl.where(mask_e, dz, 0.0)
    tl.store(grad_dst_ptr + offs_n * H + pid_h, tl.sum(grad, axis=1), mask=mask_n)


def gat_forward(rowptr, col, h, a_src, a_dst, negative_slope: float):
    """h [S, H, C], a_src [S, H], a_dst [N, H] -> out [N, H, C] in h's dtype, lse [N, H] in ACC."""
    N, (H, C) = rowptr.numel() - 1, h.shape[1:]
    out = outputs.empty((N, H, C), dtype=h.dtype, device=h.device)
    lse = outputs.empty((N, H), dtype=accumulator(h.dtype), device=h.device)
    if N == 0 or H == 0 or C == 0:
        return out, lse.fill_(0)
    blocks = row_blocks(h.device, C, N, col.numel())
    grid = (triton.cdiv(N, blocks["BLOCK_N"]), H, triton.cdiv(C, blocks["BLOCK_D"]))
    gat_aggregate_fwd_kernel[grid](rowptr, col, h, a_src, a_dst, out, lse, N, H, C,
                                   NEGATIVE_SLOPE=float(negative_slope), **arithmetic(h.dtype), **blocks)
    return out, lse


def gat_backward(rowptr, col, a_src, a_dst, lse, dot, negative_slope: float):
    """-> alpha [E, H], dz [E, H] (ACC) and grad_a_dst [N, H] (ACC), from lse [N, H] and dot [E, H]."""
    N, (E, H) = rowptr.numel() - 1, dot.shape
    alpha = outputs.empty((E, H), dtype=dot.dtype, device=dot.device)
    dz = outputs.empty((E, H), dtype=dot.dtype, device=dot.device)
    grad_dst = outputs.empty((N, H), dtype=dot.dtype, device=dot.device)
    if N == 0 or H == 0:
        return alpha, dz, grad_dst
    blocks = row_blocks(dot.device, 1, N, E)
    gat_aggregate_bwd_kernel[(triton.cdiv(N, blocks["BLOCK_N"]), H)](
        rowptr, col, a_src, a_dst, lse, dot, alpha, dz, grad_dst, N, H,
        NEGATIVE_SLOPE=float(negative_slope), ACC=arithmetic(dot.dtype)["ACC"], BLOCK_N=blocks["BLOCK_N"],
        BLOCK_E=blocks["BLOCK_E"])
    return alpha, dz, grad_dst
