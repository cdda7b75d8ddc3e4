"""The ideal denoiser of a training set in Triton: a streaming softmax over the training points (flash
attention's loop), forward and backward with respect to the queries.

For queries x [N, D] at levels sigma [N] and training points y [M, D] (Karras et al. 2022, eq. 2):
    logit_ij = (x_i . y_j - |y_j|^2 / 2) / sigma_i^2     (-|x_i - y_j|^2 / 2 sigma_i^2 up to a constant of i)
    out_i    = sum_j p_ij y_j,   p_ij = exp(logit_ij - m_i) / l_i
the algorithm of `course.diffusion.ideal.streaming_forward` and `streaming_backward`, block for block.

`ideal_denoiser_fwd_kernel`: one program per block of BLOCK_N queries and block of BLOCK_D output
columns walks the M points BLOCK_M at a time. Each step computes a [BLOCK_N, BLOCK_M] tile of logits
(tl.dot over D in steps of BLOCK_D), and keeps a running maximum m, a running sum l of exp(logit - m)
and a running weighted sum of the points, both rescaled by exp(m_old - m_new) when a block raises the
maximum. The [N, M] weights never exist. It saves m and l apart, [N] each: flash attention's single
lse = m + log l would cost the float32 weights a relative error of eps |m|, up to 1e-4 here.

`ideal_denoiser_bwd_kernel`, with g = dL/d out and p rebuilt from m and l:
    delta_i  = sum_j p_ij <g_i, y_j>                       first sweep over the points
    grad x_i = sum_j p_ij (<g_i, y_j> - delta_i) y_j / sigma_i^2     second sweep
delta is <g_i, out_i> in exact arithmetic; it is summed from the same products <g_i, y_j> as the
second sweep, so that one-hot weights (small sigma) give exactly 0, as the true gradient is.

Products are IEEE (no TF32) in ACC: float32 for half and single inputs (converted before tl.dot, so
bfloat16 runs under the interpreter too), float64 for float64. Offsets are int64 (`.to(tl.int64)`).
A program recomputes the logits over all of D for its block of columns: with D <= BLOCK_D (every D up
to 128 on a GPU) there is one block of columns and nothing is recomputed.
"""
import torch
import triton
import triton.language as tl

from course import outputs
from course.kernels.rounding import to_storage


@triton.jit
def logits_block(x_ptr, g_ptr, y_ptr, offs_n, mask_n, offs_m, mask_m, D, s2, WITH_G: tl.constexpr,
                 ACC: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr):
    """(x_i . y_j - |y_j|^2 / 2) / sigma_i^2 [BLOCK_N, BLOCK_M] (-inf past M) and, if WITH_G, <g_i, y_j>."""
    dots = tl.zeros((BLOCK_N, BLOCK_M), dtype=ACC)
    g_dots = tl.zeros((BLOCK_N, BLOCK_M), dtype=ACC)
    norms = tl.zeros((BLOCK_M,), dtype=ACC)  # |y_j|^2
    for start in range(0, D, BLOCK_D):
        offs_d = start + tl.arange(0, BLOCK_D)
        mask_d = offs_d < D
        y = tl.load(y_ptr + offs_m[:, None] * D + offs_d[None, :], mask=mask_m[:, None] & mask_d[None, :],
                    other=0.0).to(ACC)  # [BLOCK_M, BLOCK_D]
        mask_x = mask_n[:, None] & mask_d[None, :]
        x = tl.load(x_ptr + offs_n[:, None] * D + offs_d[None, :], mask=mask_x, other=0.0).to(ACC)
        dots = tl.dot(x, tl.trans(y), dots, input_precision="ieee")
        norms += tl.sum(y * y, axis=1)
        if WITH_G:
            g = tl.load(g_ptr + offs_n[:, None] * D + offs_d[None, :], mask=mask_x, other=0.0).to(ACC)
            g_dots = tl.dot(g, tl.trans(y), g_dots, input_precision="ieee")
    logits = (dots - 0.5 * norms[None, :]) / s2[:, None]
    return tl.where(mask_m[None, :], logits, float("-inf")), g_dots


@triton.jit
def ideal_denoiser_fwd_kernel(x_ptr, y_ptr, sigma_ptr, out_ptr, m_ptr, l_ptr, N, M, D, ACC: tl.constexpr,
                              BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr):
    """out[i, cols] = sum_j p_ij y[j, cols] for a block of queries i and of columns; m_i and l_i."""
    pid_n = tl.program_id(0)
    pid_d = tl.program_id(1)
    offs_n = pid_n.to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_n = offs_n < N
    offs_d = pid_d.to(tl.int64) * BLOCK_D + tl.arange(0, BLOCK_D)  # this program's output columns
    mask_d = offs_d < D
    sigma = tl.load(sigma_ptr + offs_n, mask=mask_n, other=1.0).to(ACC)
    s2 = sigma * sigma
    m = tl.full((BLOCK_N,), float("-inf"), dtype=ACC)  # running maximum of the logits
    l = tl.zeros((BLOCK_N,), dtype=ACC)  # running sum of exp(logit - m)
    acc = tl.zeros((BLOCK_N, BLOCK_D), dtype=ACC)  # running sum of exp(logit - m) y_j
    for start in range(0, M, BLOCK_M):
        offs_m = start + tl.arange(0, BLOCK_M).to(tl.int64)
        mask_m = offs_m < M
        logits, _ = logits_block(x_ptr, x_ptr, y_ptr, offs_n, mask_n, offs_m, mask_m, D, s2, False, ACC,
                                 BLOCK_N, BLOCK_M, BLOCK_D)
        m_new = tl.maximum(m, tl.max(logits, axis=1))  # -inf only in a row of NaN logits
        shift = tl.where(m_new == float("-inf"), 0.0, m_new)  # no -inf - -inf
        rescale = tl.exp(m - shift)  # 0 on the first block (m = -inf)
        p = tl.exp(logits - shift[:, None])  # [BLOCK_N, BLOCK_M], 0 past M
        l = l * rescale + tl.sum(p, axis=1)
        values = tl.load(y_ptr + offs_m[:, None] * D + offs_d[None, :],
                         mask=mask_m[:, None] & mask_d[None, :], other=0.0).to(ACC)  # [BLOCK_M, BLOCK_D]
        acc = tl.dot(p, values, acc * rescale[:, None], input_precision="ieee")
        m = m_new
    out = acc / l[:, None]
    tl.store(out_ptr + offs_n[:, None] * D + offs_d[None, :], to_storage(out, out_ptr.dtype.element_ty),
             mask=mask_n[:, None] & mask_d[None, :])
    first_block = tl.full((BLOCK_N,), pid_d, tl.int32) == 0  # one program of the columns writes m, l
    tl.store(m_ptr + offs_n, m, mask=mask_n & first_block)
    tl.store(l_ptr + offs_n, l, mask=mask_n & first_block)


@triton.jit
def ideal_denoiser_bwd_kernel(x_ptr, y_ptr, sigma_ptr, m_ptr, l_ptr, g_ptr, grad_x_ptr, N, M, D,
                              ACC: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr,
                              BLOCK_D: tl.constexpr):
    """grad_x[i, cols] = sum_j p_ij (<g_i, y_j> - delta_i) y[j, cols] / sigma_i^2, two sweeps over j."""
    pid_n = tl.program_id(0)
    pid_d = tl.program_id(1)
    offs_n = pid_n.to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_n = offs_n < N
    offs_d = pid_d.to(tl.int64) * BLOCK_D + tl.arange(0, BLOCK_D)
    mask_d = offs_d < D
    sigma = tl.load(sigma_ptr + offs_n, mask=mask_n, other=1.0).to(ACC)
    s2 = sigma * sigma
    m = tl.load(m_ptr + offs_n, mask=mask_n, other=0.0)
    m = tl.where(m == float("-inf"), 0.0, m)  # a row of NaN logits: NaN weights, not -inf - -inf
    l = tl.load(l_ptr + offs_n, mask=mask_n, other=1.0)
    delta = tl.zeros((BLOCK_N,), dtype=ACC)
    for start in range(0, M, BLOCK_M):  # sweep 1: delta_i = sum_j p_ij <g_i, y_j>
        offs_m = start + tl.arange(0, BLOCK_M).to(tl.int64)
        mask_m = offs_m < M
        logits, g_dots = logits_block(x_ptr, g_ptr, y_ptr, offs_n, mask_n, offs_m, mask_m, D, s2, True, ACC,
                                      BLOCK_N, BLOCK_M, BLOCK_D)
        p = tl.exp(logits - m[:, None]) / l[:, None]
        delta += tl.sum(p * g_dots, axis=1)
    acc = tl.zeros((BLOCK_N, BLOCK_D), dtype=ACC)
    for start in range(0, M, BLOCK_M):  # sweep 2: sum_j p_ij (<g_i, y_j> - delta_i) y_j
        offs_m = start + tl.arange(0, BLOCK_M).to(tl.int64)
        mask_m = offs_m < M
        logits, g_dots = logits_block(x_ptr, g_ptr, y_ptr, offs_n, mask_n, offs_m, mask_m, D, s2, True, ACC,
                                      BLOCK_N, BLOCK_M, BLOCK_D)
        p = tl.exp(logits - m[:, None]) / l[:, None]
        values = tl.load(y_ptr + offs_m[:, None] * D + offs_d[None, :],
                         mask=mask_m[:, None] & mask_d[None, :], other=0.0).to(ACC)
        acc = tl.dot(p * (g_dots - delta[:, None]), values, acc, input_precision="ieee")
    grad = acc / s2[:, None]
    tl.store(grad_x_ptr + offs_n[:, None] * D + offs_d[None, :],
             to_storage(grad, grad_x_ptr.dtype.element_ty), mask=mask_n[:, None] & mask_d[None, :])


def accumulator(dtype: torch.dtype) -> torch.dtype:
    """The kernels' arithmetic: float64 for float64 tensors, float32 for every other dtype."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def arithmetic(dtype: torch.dtype) -> dict:
    """ACC, the kernels' arithmetic type for tensors of `dtype`."""
    return dict(ACC=tl.float64 if dtype == torch.float64 else tl.float32)


def ideal_blocks(device: torch.device, dtype: torch.dtype, N: int, M: int, D: int) -> dict:
    """BLOCK_N queries and BLOCK_D output columns per program, BLOCK_M points a step (tl.dot wants 16+).

    On a GPU a program holds 64 x 64 tiles (32 x 32 in float64) and up to 128 columns. The interpreter
    pays per program and per operation, hardly per element, so on the CPU the tiles are as large as
    the sizes allow (up to 128 queries, 256 points, 256 columns).
    """
    width = max(16, triton.next_power_of_2(max(D, 1)))
    if device.type == "cuda":
        tile = 32 if dtype == torch.float64 else 64
        return dict(BLOCK_N=tile, BLOCK_M=tile, BLOCK_D=min(128, width))
    return dict(BLOCK_N=max(16, min(128, triton.next_power_of_2(max(N, 1)))),
                BLOCK_M=max(16, min(256, triton.next_power_of_2(M))), BLOCK_D=min(256, width))


def ideal_forward(x, y, sigma):
    """x [N, D], y [M, D], sigma [N] in ACC -> out [N, D] (x's dtype), m [N] and l [N] (ACC)."""
    (N, D), M = x.shape, y.shape[0]
    out = outputs.empty((N, D), dtype=x.dtype, device=x.device)
    m = outputs.empty((N,), dtype=accumulator(x.dtype), device=x.device)
    l = outputs.empty((N,), dtype=accumulator(x.dtype), device=x.device)
    if N == 0 or D == 0:
        return out, m.fill_(0), l.fill_(1)
    blocks = ideal_blocks(x.device, x.dtype, N, M, D)
    grid = (triton.cdiv(N, blocks["BLOCK_N"]), triton.cdiv(D, blocks["BLOCK_D"]))
    ideal_denoiser_fwd_kernel[grid](x, y, sigma, out, m, l, N, M, D, **arithmetic(x.dtype), **blocks)
    return out, m, l


def ideal_backward(x, y, sigma, m, l, grad):
    """grad [N, D] = dL/d out -> dL/dx [N, D] in x's dtype, from the saved m and l."""
    (N, D), M = x.shape, y.shape[0]
    grad_x = outputs.empty((N, D), dtype=x.dtype, device=x.device)
    if N == 0 or D == 0:
        return grad_x
    blocks = ideal_blocks(x.device, x.dtype, N, M, D)
    grid = (triton.cdiv(N, blocks["BLOCK_N"]), triton.cdiv(D, blocks["BLOCK_D"]))
    ideal_denoiser_bwd_kernel[grid](x, y, sigma, m, l, grad, grad_x, N, M, D, **arithmetic(x.dtype),
                                    **blocks)
    return grad_x
