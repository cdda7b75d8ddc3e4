"""The experts of an MoE layer as Triton grouped GEMMs: the same contract as `course.moe.experts`.

Forward, two row-grouped products over the tile map (MegaBlocks, Gale et al. 2022; ScatterMoE, Tan et
al. 2024): h = ReLU(x W1_e) with the ReLU fused as an epilogue, then y = h W2_e. Backward, two more
row-grouped products with transposed weights, grad_h = (grad_y W2_e^T) * (h > 0) and
grad_x = grad_h W1_e^T, and two per-expert weight gradients, grad_W2_e = h_e^T grad_y_e and
grad_W1_e = x_e^T grad_h_e (the autograd Function is `host.ExpertMLPFunction`). The kernels are in
`triton_grouped_gemm`.
"""
from types import SimpleNamespace

import torch
import triton

from course import outputs
from course.kernels.moe.host import expert_mlp_with
from course.kernels.moe.triton_grouped_gemm import expert_mlp_bwd_kernel, expert_mlp_fwd_kernel
from course.moe.experts import ExpertTiles

BLOCK_M = 32  # rows per tile: an expert wastes at most BLOCK_M - 1 rows of work in its last tile
BLOCK_N = 64
BLOCK_K = 32


def dot_precision(dtype: torch.dtype) -> str | None:
    """IEEE fp32 products for fp32 operands (TF32 would cost ~1e-3 of accuracy); the default otherwise."""
    return "ieee" if dtype == torch.float32 else None


def grouped_matmul(a, w, tiles: ExpertTiles, epilogue: str = "none", gate=None):
    """Row-grouped product out[rows of e] = epilogue(a[rows of e] @ w[e]).

    a [S, K] grouped by expert, w [E, K, N] (any strides: a transposed view is fine), gate [S, N]
    (h, for the "relu_grad" epilogue) -> out [S, N].
    """
    S, K = a.shape
    N = w.shape[2]
    out = outputs.empty((S, N), dtype=a.dtype, device=a.device)
    n_tiles = tiles.expert.numel()
    if n_tiles == 0 or N == 0:
        return out
    grid = (n_tiles, triton.cdiv(N, BLOCK_N))
    expert_mlp_fwd_kernel[grid](a, w, gate if gate is not None else a, out, tiles.expert, tiles.start,
                                tiles.end, K, N, *w.stride(), EPILOGUE=epilogue,
                                DOT_PRECISION=dot_precision(a.dtype), BLOCK_M=BLOCK_M,
                                BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K)
    return out


def grouped_weight_grad(a, b, offsets):
    """Per-expert product grad_w[e] = a[rows of e]^T @ b[rows of e].

    a [S, K], b [S, N] grouped by expert, offsets [E + 1] -> grad_w [E, K, N] (zero for an empty expert).
    """
    E, K, N = offsets.numel() - 1, a.shape[1], b.shape[1]
    grad_w = outputs.empty((E, K, N), dtype=a.dtype, device=a.device)
    if grad_w.numel() == 0:
        return grad_w
    grid = (E, triton.cdiv(K, BLOCK_K), triton.cdiv(N, BLOCK_N))
    expert_mlp_bwd_kernel[grid](a, b, grad_w, offsets, K, N, DOT_PRECISION=dot_precision(a.dtype),
                                BLOCK_M=BLOCK_M, BLOCK_K=BLOCK_K, BLOCK_N=BLOCK_N)
    return grad_w


# The dtypes are declared in the registry (course/moe/ops.py): the tiles accumulate in float32, so
# float64 is not offered, and under the interpreter bfloat16 is refused (its tl.dot multiplies bit
# patterns, triton-lang/triton#11584) rather than silently wrong.
PRIMITIVES = SimpleNamespace(grouped_matmul=grouped_matmul, grouped_weight_grad=grouped_weight_grad,
                             TILE_M=BLOCK_M, BACKEND="triton")


def expert_mlp(x, counts, w1, w2):
    """Shazeer et al. 2017 experts, ReLU(x W1_e) W2_e, as Triton grouped GEMMs (MegaBlocks, no padding).

    x [S, D] grouped by expert, counts [E], w1 [E, D, H], w2 [E, H, D] -> [S, D].
    """
    return expert_mlp_with(PRIMITIVES, x, counts, w1, w2)
