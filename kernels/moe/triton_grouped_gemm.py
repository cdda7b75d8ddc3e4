"""Grouped GEMM in Triton: every expert's matrix product over its own block of rows, without padding.

MegaBlocks (Gale et al. 2022, section 5) and ScatterMoE (Tan et al. 2024) run all the experts of an MoE
layer as one *grouped* matrix product over the layout that dispatch produces: expert e owns the
contiguous rows offsets[e] .. offsets[e] + counts[e] of x [S, D]. No expert is padded to a common size
and no token is dropped to fit one; the only waste is the last, partial row tile of each expert.

The host cuts the rows into tiles (`course.moe.experts.expert_tiles`): each expert's rows into tiles
of BLOCK_M rows that never straddle two experts, described by tile -> expert, tile -> first row and
tile -> end row. Two kernels then do every product of the experts' forward and backward pass:

- `expert_mlp_fwd_kernel`, the row-grouped product out[rows] = epilogue(a[rows] @ W_e): one program per
  (row tile, column tile) looks up its tile's expert and rows, and runs tl.dot over K in steps of
  BLOCK_K. With the ReLU epilogue it is the first layer h = ReLU(x W1_e), without it the second,
  y = h W2_e. The backward's data gradients are the same product with transposed weights (a strided
  view, nothing copied): grad_h = (grad_y W2_e^T) * (h > 0) with the "relu_grad" epilogue, and
  grad_x = grad_h W1_e^T.
- `expert_mlp_bwd_kernel`, the weight gradient grad_W_e = A_e^T B_e (grad_W1_e = x_e^T grad_h_e,
  grad_W2_e = h_e^T grad_y_e): one program per (expert, output tile) loops over the expert's rows in
  steps of BLOCK_M. An empty expert loops zero times and writes its zero gradient.

Products accumulate in fp32; fp32 operands use IEEE products (no TF32), so the kernels match the
reference to rounding.
"""
import triton
import triton.language as tl

from course.kernels.rounding import to_storage


@triton.jit
def expert_mlp_fwd_kernel(a_ptr, w_ptr, gate_ptr, out_ptr, tile_expert_ptr, tile_start_ptr,
                          tile_end_ptr, K, N, stride_we, stride_wk, stride_wn,
                          EPILOGUE: tl.constexpr, DOT_PRECISION: tl.constexpr,
                          BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """out[rows] = epilogue(a[rows] @ W_e) for one (row tile, column tile).

    a [S, K] and out [S, N] row-major; W [E, K, N] at any strides; gate [S, N] is h for "relu_grad".
    """
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    expert = tl.load(tile_expert_ptr + pid_m)
    row_start = tl.load(tile_start_ptr + pid_m)
    row_end = tl.load(tile_end_ptr + pid_m)
    offs_m = row_start + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_m = offs_m < row_end
    mask_n = offs_n < N
    w_ptr += expert * stride_we  # this tile's expert: the one weight matrix all its rows use
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k_start in range(0, K, BLOCK_K):
        offs_k = k_start + tl.arange(0, BLOCK_K)
        mask_k = offs_k < K
        a = tl.load(a_ptr + offs_m[:, None] * K + offs_k[None, :],
                    mask=mask_m[:, None] & mask_k[None, :], other=0.0)  # [BLOCK_M, BLOCK_K]
        w = tl.load(w_ptr + offs_k[:, None] * stride_wk + offs_n[None, :] * stride_wn,
                    mask=mask_k[:, None] & mask_n[None, :], other=0.0)  # [BLOCK_K, BLOCK_N]
        acc = tl.dot(a, w, acc, input_precision=DOT_PRECISION)
    offs_out = offs_m[:, None] * N + offs_n[None, :]
    mask_out = mask_m[:, None] & mask_n[None, :]
    if EPILOGUE == "relu":  # written as torch.relu is: a NaN passes (tl.maximum would drop it)
        acc = tl.where(acc < 0, 0.0, acc)
    if EPILOGUE == "relu_grad":  # the gradient passes unless ReLU's output was <= 0, as in torch
        h = tl.load(gate_ptr + offs_out, mask=mask_out, other=0.0)
        acc = tl.where(h <= 0, 0.0, acc)
    tl.store(out_ptr + offs_out, to_storage(acc, out_ptr.dtype.element_ty), mask=mask_out)


@triton.jit
def expert_mlp_bwd_kernel(a_ptr, b_ptr, grad_w_ptr, offsets_ptr, K, N, DOT_PRECISION: tl.constexpr,
                          BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_N: tl.constexpr):
    """grad_w[e] = a[rows of e]^T @ b[rows of e] for one (expert, K tile, N tile).

    a [S, K], b [S, N] row-major, offsets [E + 1] first row of each expert then S, grad_w [E, K, N].
    """
    pid_e = tl.program_id(0)
    pid_k = tl.program_id(1)
    pid_n = tl.program_id(2)
    row_start = tl.load(offsets_ptr + pid_e)
    row_end = tl.load(offsets_ptr + pid_e + 1)
    offs_k = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_k = offs_k < K
    mask_n = offs_n < N
    acc = tl.zeros((BLOCK_K, BLOCK_N), dtype=tl.float32)
    for m_start in range(row_start, row_end, BLOCK_M):  # the expert's rows; none for an empty one
        offs_m = m_start + tl.arange(0, BLOCK_M)
        mask_m = offs_m < row_end
        a_t = tl.load(a_ptr + offs_m[None, :] * K + offs_k[:, None],
                      mask=mask_k[:, None] & mask_m[None, :], other=0.0)  # [BLOCK_K, BLOCK_M]
        b = tl.load(b_ptr + offs_m[:, None] * N + offs_n[None, :],
                    mask=mask_m[:, None] & mask_n[None, :], other=0.0)  # [BLOCK_M, BLOCK_N]
        acc = tl.dot(a_t, b, acc, input_precision=DOT_PRECISION)
    grad_w_ptr += pid_e.to(tl.int64) * K * N
    tl.store(grad_w_ptr + offs_k[:, None] * N + offs_n[None, :], to_storage(acc, grad_w_ptr.dtype.element_ty),
             mask=mask_k[:, None] & mask_n[None, :])
