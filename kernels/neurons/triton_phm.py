"""The PHM layer in Triton, forward and backward: the primitives `phm_forward` and `phm_backward` of
`course.kernels.neurons.host`.

Zhang et al. 2021 ("Beyond Fully-Connected Layers with Quaternions", arXiv:2102.08597, eq. 4) and
Grassucci et al. 2022 (arXiv:2110.04176, eq. 4): W = sum_i A_i (x) F_i with A [n, n, n], F [n, K, Q],
K = I / n, Q = O / n. With x split into n blocks x_r [B, K] and y into n blocks y_p [B, Q], W's block
(r, p) is W_rp = sum_i A_i[r, p] F_i [K, Q] (course/neurons/phm.py), so

    y_p = sum_r x_r W_rp = sum_i sum_r A_i[r, p] (x_r F_i).

W [I, O] is never formed in memory. Each kernel forms the one tile of W_rp (or of a mixed gradient) it
multiplies next, on chip, from the n tiles of F (or of g) loaded together as one [BLOCK_N, ., .] tile
and summed with A's scalars (the reference's sum_i kron(A_i, F_i)), then runs one tl.dot: n products a
tile step instead of the n^2 of the formula's (x_r F_i) terms (the same sum; a weight tile costs
BLOCK_K BLOCK_Q multiply-adds, a product BLOCK_B times that).

`phm_linear_fwd_kernel`: a program owns BLOCK_B rows and BLOCK_Q columns q of one output block p, and
walks r and the K columns of x_r: acc += x_r[:, k-tile] (sum_i A_i[r, p] F_i[k-tile, q-tile]).
Backward, from g = dL/dy split into g_p [B, Q]:
    grad x_r = sum_p g_p W_rp^T          `phm_linear_bwd_x_kernel`: BLOCK_B rows x BLOCK_K columns of
                                          block r, walks p and the Q columns of g_p
    grad F_i = sum_r x_r^T (sum_p A_i[r, p] g_p)
                                          `phm_linear_bwd_f_kernel`: one i, a BLOCK_K x BLOCK_Q tile,
                                          walks the rows and r; the mixed g tile formed on chip
    grad A_i[r, p] = <x_r F_i, g_p>       `phm_linear_bwd_a_kernel`: one block of rows, one (i, r): the
                                          tile x_r F_i, then its inner products with the n blocks g_p,
                                          into a [row blocks, n, n, n] partial-sum buffer that the host
                                          sums over the row blocks (a fixed order, no atomics)
Every sum runs in a fixed order, so two runs give the same bits. A NaN in x makes its output row NaN and
the gradients of A and F NaN, as the reference's are; masked rows and columns load 0. Products are
IEEE (no TF32) in ACC: float32 for half and single inputs (converted before tl.dot), float64 for
float64; stores round to nearest (`to_storage`); offsets are int64.
"""
import torch
import triton
import triton.language as tl

from course import outputs
from course.kernels.launch import gpu_tiles
from course.kernels.rounding import arithmetic, to_storage


@triton.jit
def phm_linear_fwd_kernel(x_ptr, a_ptr, f_ptr, y_ptr, B, n, K, Q, ACC: tl.constexpr, BLOCK_B: tl.constexpr,
                          BLOCK_K: tl.constexpr, BLOCK_Q: tl.constexpr, BLOCK_N: tl.constexpr):
    """y_p[b, q] = sum_r x_r[b, :] W_rp[:, q] for BLOCK_B rows and BLOCK_Q columns of the block p."""
    pid_b = tl.program_id(0)
    pid_q = tl.program_id(1)  # (column block, output block p), the columns fastest
    q_blocks = (Q + BLOCK_Q - 1) // BLOCK_Q  # (tl.cdiv is a nested jit call: milliseconds interpreted)
    p = (pid_q // q_blocks).to(tl.int64)
    offs_b = pid_b.to(tl.int64) * BLOCK_B + tl.arange(0, BLOCK_B)
    mask_b = offs_b < B
    offs_q = (pid_q % q_blocks).to(tl.int64) * BLOCK_Q + tl.arange(0, BLOCK_Q)
    mask_q = offs_q < Q
    offs_n = tl.arange(0, BLOCK_N).to(tl.int64)  # the index i of A_i and F_i
    mask_n = offs_n < n
    I = n * K
    acc = tl.full((BLOCK_B, BLOCK_Q), 0.0, ACC)
    for r in range(0, n):
        a = tl.load(a_ptr + (offs_n * n + r) * n + p, mask=mask_n, other=0.0).to(ACC)  # A_i[r, p] [BLOCK_N]
        for start in range(0, K, BLOCK_K):
            offs_k = start + tl.arange(0, BLOCK_K).to(tl.int64)
            mask_k = offs_k < K
            x = tl.load(x_ptr + offs_b[:, None] * I + r * K + offs_k[None, :],
                        mask=mask_b[:, None] & mask_k[None, :], other=0.0).to(ACC)  # [BLOCK_B, BLOCK_K]
            offs_f = (offs_n[:, None, None] * K + offs_k[None, :, None]) * Q + offs_q[None, None, :]
            mask_f = mask_n[:, None, None] & mask_k[None, :, None] & mask_q[None, None, :]
            f = tl.load(f_ptr + offs_f, mask=mask_f,
                        other=0.0).to(ACC)  # F_i tiles [BLOCK_N, BLOCK_K, BLOCK_Q]
            w = tl.sum(a[:, None, None] * f, axis=0)  # the tile of W_rp = sum_i A_i[r, p] F_i
            acc = tl.dot(x, w, acc, input_precision="ieee")
    tl.store(y_ptr + offs_b[:, None] * (n * Q) + p * Q + offs_q[None, :],
             to_storage(acc, y_ptr.dtype.element_ty), mask=mask_b[:, None] & mask_q[None, :])


@triton.jit
def phm_linear_bwd_x_kernel(g_ptr, a_ptr, f_ptr, grad_x_ptr, B, n, K, Q, ACC: tl.constexpr,
                            BLOCK_B: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_Q: tl.constexpr,
                            BLOCK_N: tl.constexpr):
    """grad x_r[b, k] = sum_p g_p[b, :] W_rp[k, :] for BLOCK_B rows and BLOCK_K columns of the block r."""
    pid_b = tl.program_id(0)
    pid_k = tl.program_id(1)  # (column block, input block r), the columns fastest
    k_blocks = (K + BLOCK_K - 1) // BLOCK_K
    r = (pid_k // k_blocks).to(tl.int64)
    offs_b = pid_b.to(tl.int64) * BLOCK_B + tl.arange(0, BLOCK_B)
    mask_b = offs_b < B
    offs_k = (pid_k % k_blocks).to(tl.int64) * BLOCK_K + tl.arange(0, BLOCK_K)
    mask_k = offs_k < K
    offs_n = tl.arange(0, BLOCK_N).to(tl.int64)  # the index i of A_i and F_i
    mask_n = offs_n < n
    O = n * Q
    acc = tl.full((BLOCK_B, BLOCK_K), 0.0, ACC)
    for p in range(0, n):
        a = tl.load(a_ptr + (offs_n * n + r) * n + p, mask=mask_n, other=0.0).to(ACC)  # A_i[r, p] [BLOCK_N]
        for start in range(0, Q, BLOCK_Q):
            offs_q = start + tl.arange(0, BLOCK_Q).to(tl.int64)
            mask_q = offs_q < Q
            g = tl.load(g_ptr + offs_b[:, None] * O + p * Q + offs_q[None, :],
                        mask=mask_b[:, None] & mask_q[None, :], other=0.0).to(ACC)  # [BLOCK_B, BLOCK_Q]
            offs_f = (offs_n[:, None, None] * K + offs_k[None, :, None]) * Q + offs_q[None, None, :]
            mask_f = mask_n[:, None, None] & mask_k[None, :, None] & mask_q[None, None, :]
            f = tl.load(f_ptr + offs_f, mask=mask_f,
                        other=0.0).to(ACC)  # [BLOCK_N, BLOCK_K, BLOCK_Q]
            w = tl.sum(a[:, None, None] * f, axis=0)  # the tile of W_rp
            acc = tl.dot(g, tl.trans(w), acc, input_precision="ieee")
    tl.store(grad_x_ptr + offs_b[:, None] * (n * K) + r * K + offs_k[None, :],
             to_storage(acc, grad_x_ptr.dtype.element_ty), mask=mask_b[:, None] & mask_k[None, :])


@triton.jit
def phm_linear_bwd_f_kernel(x_ptr, g_ptr, a_ptr, grad_f_ptr, B, n, K, Q, ACC: tl.constexpr,
                            BLOCK_B: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_Q: tl.constexpr,
                            BLOCK_N: tl.constexpr):
    """grad F_i[k, q] = sum_r sum_b x_r[b, k] (sum_p A_i[r, p] g_p[b, q]) for one i and a BLOCK_K x BLOCK_Q
    tile, over all rows in a fixed order."""
    pid_i = tl.program_id(0).to(tl.int64)
    pid_kq = tl.program_id(1)
    q_blocks = (Q + BLOCK_Q - 1) // BLOCK_Q  # (tl.cdiv is a nested jit call: milliseconds interpreted)
    offs_k = (pid_kq // q_blocks).to(tl.int64) * BLOCK_K + tl.arange(0, BLOCK_K)
    mask_k = offs_k < K
    offs_q = (pid_kq % q_blocks).to(tl.int64) * BLOCK_Q + tl.arange(0, BLOCK_Q)
    mask_q = offs_q < Q
    offs_n = tl.arange(0, BLOCK_N).to(tl.int64)  # the index p of the output blocks
    mask_n = offs_n < n
    I, O = n * K, n * Q
    acc = tl.full((BLOCK_K, BLOCK_Q), 0.0, ACC)
    for start in range(0, B, BLOCK_B):
        offs_b = start + tl.arange(0, BLOCK_B).to(tl.int64)
        mask_b = offs_b < B
        g = tl.load(g_ptr + offs_b[:, None, None] * O + offs_n[None, :, None] * Q + offs_q[None, None, :],
                    mask=mask_b[:, None, None] & mask_n[None, :, None] & mask_q[None, None, :],
                    other=0.0).to(ACC)  # g_p tiles [BLOCK_B, BLOCK_N, BLOCK_Q]
        for r in range(0, n):
            a = tl.load(a_ptr + (pid_i * n + r) * n + offs_n, mask=mask_n, other=0.0).to(ACC)  # A_i[r, p]
            mixed = tl.sum(a[None, :, None] * g, axis=1)  # sum_p A_i[r, p] g_p [BLOCK_B, BLOCK_Q]
            x = tl.load(x_ptr + offs_b[:, None] * I + r * K + offs_k[None, :],
                        mask=mask_b[:, None] & mask_k[None, :], other=0.0).to(ACC)  # [BLOCK_B, BLOCK_K]
            acc = tl.dot(tl.trans(x), mixed, acc, input_precision="ieee")
    tl.store(grad_f_ptr + (pid_i * K + offs_k[:, None]) * Q + offs_q[None, :],
             to_storage(acc, grad_f_ptr.dtype.element_ty), mask=mask_k[:, None] & mask_q[None, :])


@triton.jit
def phm_linear_bwd_a_kernel(x_ptr, f_ptr, g_ptr, partial_ptr, B, n, K, Q, ACC: tl.constexpr,
                            BLOCK_B: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_Q: tl.constexpr,
                            BLOCK_N: tl.constexpr):
    """partial[pid_b, i, r, p] = <x_r F_i, g_p> over BLOCK_B rows, for one (i, r) and every p."""
    pid_b = tl.program_id(0)
    pid_ir = tl.program_id(1).to(tl.int64)
    i = pid_ir // n
    r = pid_ir % n
    offs_b = pid_b.to(tl.int64) * BLOCK_B + tl.arange(0, BLOCK_B)
    mask_b = offs_b < B
    offs_n = tl.arange(0, BLOCK_N).to(tl.int64)  # the index p of the output blocks
    mask_n = offs_n < n
    I, O = n * K, n * Q
    sums = tl.full((BLOCK_N,), 0.0, ACC)  # [p]
    for first in range(0, Q, BLOCK_Q):
        offs_q = first + tl.arange(0, BLOCK_Q).to(tl.int64)
        mask_q = offs_q < Q
        product = tl.full((BLOCK_B, BLOCK_Q), 0.0, ACC)  # x_r F_i
        for start in range(0, K, BLOCK_K):
            offs_k = start + tl.arange(0, BLOCK_K).to(tl.int64)
            mask_k = offs_k < K
            x = tl.load(x_ptr + offs_b[:, None] * I + r * K + offs_k[None, :],
                        mask=mask_b[:, None] & mask_k[None, :], other=0.0).to(ACC)
            f = tl.load(f_ptr + (i * K + offs_k[:, None]) * Q + offs_q[None, :],
                        mask=mask_k[:, None] & mask_q[None, :], other=0.0).to(ACC)
            product = tl.dot(x, f, product, input_precision="ieee")
        g = tl.load(g_ptr + offs_b[:, None, None] * O + offs_n[None, :, None] * Q + offs_q[None, None, :],
                    mask=mask_b[:, None, None] & mask_n[None, :, None] & mask_q[None, None, :],
                    other=0.0).to(ACC)  # g_p tiles [BLOCK_B, BLOCK_N, BLOCK_Q]
        sums += tl.sum(tl.sum(product[:, None, :] * g, axis=2), axis=0)
    tl.store(partial_ptr + (pid_b.to(tl.int64) * n * n + pid_ir) * n + offs_n, sums, mask=mask_n)


def phm_blocks(device: torch.device, dtype: torch.dtype, B: int, n: int, K: int, Q: int) -> dict:
    """BLOCK_B rows, BLOCK_K columns of an input block, BLOCK_Q of an output block (16 or more each, as
    tl.dot wants), BLOCK_N >= n rule matrices (the F_i or g_p tiles a step loads together).

    On a GPU 64 x 64 tiles (32 in float64) and 32 columns a step (16 where n > 4, so that the n tiles of F
    stay within 8192 numbers); the interpreter pays per program and per operation, hardly per element, so
    on the CPU the tiles are as large as the sizes allow (up to 128 rows, 256 columns).
    """
    size = lambda m, cap: max(16, min(cap, triton.next_power_of_2(max(m, 1))))  # noqa: E731
    BLOCK_N = triton.next_power_of_2(n)
    if gpu_tiles(device):
        tile = 32 if dtype == torch.float64 else 64
        return dict(BLOCK_B=tile, BLOCK_K=size(K, 32 if n <= 4 else 16), BLOCK_Q=size(Q, tile),
                    BLOCK_N=BLOCK_N)
    return dict(BLOCK_B=size(B, 128), BLOCK_K=size(K, 256), BLOCK_Q=size(Q, 256), BLOCK_N=BLOCK_N)


def accumulator(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def phm_forward(x, A, F):
    """x [B, I], A [n, n, n], F [n, I / n, O / n] (contiguous, x's dtype) -> y [B, O]."""
    B, (n, K, Q) = x.shape[0], F.shape
    y = outputs.empty((B, n * Q), dtype=x.dtype, device=x.device)
    if B == 0 or Q == 0:
        return y
    blocks = phm_blocks(x.device, x.dtype, B, n, K, Q)
    grid = (triton.cdiv(B, blocks["BLOCK_B"]), n * triton.cdiv(Q, blocks["BLOCK_Q"]))
    phm_linear_fwd_kernel[grid](x, A, F, y, B, n, K, Q, **arithmetic(x.dtype), **blocks)
    return y


def phm_backward(x, A, F, grad):
    """grad [B, O] = dL/dy (contiguous) -> grad x [B, I], grad A [n, n, n], grad F [n, I / n, O / n]."""
    B, (n, K, Q) = x.shape[0], F.shape
    grad_x = outputs.empty((B, n * K), dtype=x.dtype, device=x.device)
    grad_f = outputs.empty((n, K, Q), dtype=x.dtype, device=x.device)
    blocks = phm_blocks(x.device, x.dtype, B, n, K, Q)
    row_blocks = triton.cdiv(B, blocks["BLOCK_B"])
    partial = outputs.empty((row_blocks, n, n, n), dtype=accumulator(x.dtype), device=x.device)
    ACC = arithmetic(x.dtype)
    if B and K:
        grid = (row_blocks, n * triton.cdiv(K, blocks["BLOCK_K"]))
        phm_linear_bwd_x_kernel[grid](grad, A, F, grad_x, B, n, K, Q, **ACC, **blocks)
    if K and Q:
        grid = (n, triton.cdiv(K, blocks["BLOCK_K"]) * triton.cdiv(Q, blocks["BLOCK_Q"]))
        phm_linear_bwd_f_kernel[grid](x, grad, A, grad_f, B, n, K, Q, **ACC, **blocks)
    if B:
        phm_linear_bwd_a_kernel[(row_blocks, n * n)](x, F, grad, partial, B, n, K, Q, **ACC, **blocks,
)
    return grad_x, partial.sum(0).to(x.dtype), grad_f
