"""The loss of an MLP on a grid of parameter points in Triton, the perturbation fused into each matmul.

Li et al. 2018, "Visualizing the Loss Landscape of Neural Nets" (arXiv:1712.09913), eq. 1: the loss
f(alpha, beta) = L(theta_0 + alpha d_1 + beta d_2), here on G grid points (alpha_g, beta_g) at once.
For the MLP of widths (I, H_1, ..., C) every layer l of the point g is

    W_l(g) = W_l + alpha_g D_l + beta_g E_l,      b_l(g) = b_l + alpha_g e_l + beta_g f_l
    H_l[g] = act(H_{l-1}[g] @ W_l(g)^T + b_l(g))  [G, N, H_l]         (act: ReLU, none on the last)

with (W_l, b_l), (D_l, e_l), (E_l, f_l) the layer's slices of theta, d1 and d2 (the layout of
`course.landscape.models`: W [out, in] row-major, then b [out]); H_0[g] = x for every g.

`grid_linear_fwd_kernel`, one launch a layer: a program owns BLOCK_G grid points, BLOCK_N examples
and BLOCK_O output units and walks the layer's inputs BLOCK_K at a time. Each step loads one tile of
W_l, D_l and E_l ([BLOCK_K, BLOCK_O], read as W^T) once, forms the BLOCK_G combined tiles W_l(g) on
chip (two fused multiply-adds a weight a point) and multiplies them into the BLOCK_G activation tiles
as one batched tl.dot, [BLOCK_G, BLOCK_N, BLOCK_K] x [BLOCK_G, BLOCK_K, BLOCK_O]. No [G, P] weights
exist anywhere, on chip only [BLOCK_G, BLOCK_K, BLOCK_O]; a weight is read G / BLOCK_G times in all
per block of examples, not G times. The launch grid puts (grid-point block, example block) on its
first axis (up to 2^31 - 1 programs) and the output blocks on its second, so that the programs in
flight share their tiles of W_l, D_l and E_l in the cache. The first layer reads x [N, I] once a tile
and broadcasts it over the program's grid points (x is shared by every g, read through its strides).
The bias and the ReLU are applied in the same program; the ReLU is a `where`, so NaN passes as in torch.

`grid_cross_entropy_fwd_kernel`: a program owns BLOCK_G grid points and walks the N examples BLOCK_N
at a time: for each row of logits [C] a stable logsumexp (its maximum first, then sum exp(z - max);
an infinite maximum is shifted by 0, as torch's logsumexp does, so an inf logit gives inf or NaN
where the reference does), minus the label's logit, summed in a fixed order (no atomics) and divided
by N. The loss [G] is stored in x's dtype, rounded to nearest (`course.kernels.rounding.to_storage`).

Arithmetic and storage. Weights and inputs are loaded in their dtype (float32 or bfloat16) and
converted to float32 before anything else, so a point's weights are combined exactly as the float64
reference combines the rounded inputs, up to float32's rounding; products are IEEE float32 (no TF32)
with float32 accumulation. The hidden activations between layers are stored in float32, not in x's
dtype: then the only bfloat16 rounding is the final store of the loss, which the reference's result
goes through too, and the bfloat16 losses are the float64 reference's rounded to nearest (RMS-relative
error 0 on the harness's cases; tests/landscape/test_kernels.py holds them to 1e-3, which a truncating
store, at 3e-3 to 5e-3, fails). Activations stored in bfloat16, as a bfloat16 torch forward (the point
loop) keeps them, put a relative error of 2^-9 on every hidden unit and are off by up to 3e-3 there:
noise on a surface whose differences near a minimum are often that small. (The op's bfloat16
tolerance is shared by all its backends, so the point loop's error sets it.) The cost is memory,
G N H_l float32 numbers a layer; the host bounds it by running the grid in chunks of grid points
(`CHUNK_ELEMENTS` activations a layer, 512 MB), so a 201 x 201 grid on a model with 1024-wide layers
and N = 256 needs about 1 GB of activations, not 42 GB a layer. Offsets are int64 (`pid.to(tl.int64)`).
"""
from types import SimpleNamespace

import torch
import triton
import triton.language as tl

from course import outputs
from course.kernels.launch import check_backend, gpu_tiles, on_device
from course.kernels.rounding import to_storage
from course.kernels.landscape.host import check_grid_kernel_inputs
from course.landscape.grid import check_grid_loss_args

CHUNK_ELEMENTS = 1 << 27  # activations [G_chunk, N, H] a layer buffer holds at most (512 MB in float32)
BACKEND = "triton"
PRIMITIVES = SimpleNamespace(BACKEND=BACKEND)  # what `on_device` reads: no DEVICE, Triton runs on both


@triton.jit
def grid_linear_fwd_kernel(h_ptr, w0_ptr, d1_ptr, d2_ptr, b0_ptr, e1_ptr, e2_ptr, coords_ptr, out_ptr,
                           G, N, K, O, stride_hg, stride_hn, stride_hk, stride_cg, stride_cc,
                           SHARED_INPUT: tl.constexpr, RELU: tl.constexpr, BLOCK_G: tl.constexpr,
                           BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_O: tl.constexpr):
    """out[g, n, o] = act(sum_k h[g, n, k] (W0 + a_g D1 + b_g D2)[o, k] + (b0 + a_g e1 + b_g e2)[o])
    for a block of grid points g, examples n and output units o; h[g] = h[0] if SHARED_INPUT."""
    pid_gn = tl.program_id(0)  # (grid-point block, example block), the examples fastest
    pid_o = tl.program_id(1)  # the slowest: programs in flight share their tiles of W^T
    pid_g = pid_gn // tl.cdiv(N, BLOCK_N)
    pid_n = pid_gn % tl.cdiv(N, BLOCK_N)
    offs_g = pid_g.to(tl.int64) * BLOCK_G + tl.arange(0, BLOCK_G)
    mask_g = offs_g < G
    offs_n = pid_n.to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_n = offs_n < N
    offs_o = pid_o.to(tl.int64) * BLOCK_O + tl.arange(0, BLOCK_O)
    mask_o = offs_o < O
    alpha = tl.load(coords_ptr + offs_g * stride_cg, mask=mask_g, other=0.0).to(tl.float32)  # [BLOCK_G]
    beta = tl.load(coords_ptr + offs_g * stride_cg + stride_cc, mask=mask_g, other=0.0).to(tl.float32)
    a = alpha[:, None, None]
    b = beta[:, None, None]
    acc = tl.zeros((BLOCK_G, BLOCK_N, BLOCK_O), dtype=tl.float32)
    for start in range(0, K, BLOCK_K):
        offs_k = start + tl.arange(0, BLOCK_K).to(tl.int64)
        mask_k = offs_k < K
        offs_w = offs_o[None, :] * K + offs_k[:, None]  # [BLOCK_K, BLOCK_O]: the tile of W^T
        mask_w = mask_k[:, None] & mask_o[None, :]
        w0 = tl.load(w0_ptr + offs_w, mask=mask_w, other=0.0).to(tl.float32)
        d1 = tl.load(d1_ptr + offs_w, mask=mask_w, other=0.0).to(tl.float32)
        d2 = tl.load(d2_ptr + offs_w, mask=mask_w, other=0.0).to(tl.float32)
        w = w0[None, :, :] + a * d1[None, :, :] + b * d2[None, :, :]  # [BLOCK_G, BLOCK_K, BLOCK_O]
        if SHARED_INPUT:  # x [N, K]: one tile, the same for every grid point
            x = tl.load(h_ptr + offs_n[:, None] * stride_hn + offs_k[None, :] * stride_hk,
                        mask=mask_n[:, None] & mask_k[None, :], other=0.0).to(tl.float32)
            h = tl.broadcast_to(x[None, :, :], (BLOCK_G, BLOCK_N, BLOCK_K))
        else:
            offs_h = (offs_g[:, None, None] * stride_hg + offs_n[None, :, None] * stride_hn
                      + offs_k[None, None, :] * stride_hk)
            mask_h = mask_g[:, None, None] & mask_n[None, :, None] & mask_k[None, None, :]
            h = tl.load(h_ptr + offs_h, mask=mask_h, other=0.0).to(tl.float32)
        acc = tl.dot(h, w, acc, input_precision="ieee")  # [BLOCK_G, BLOCK_N, BLOCK_O]
    b0 = tl.load(b0_ptr + offs_o, mask=mask_o, other=0.0).to(tl.float32)
    e1 = tl.load(e1_ptr + offs_o, mask=mask_o, other=0.0).to(tl.float32)
    e2 = tl.load(e2_ptr + offs_o, mask=mask_o, other=0.0).to(tl.float32)
    bias = b0[None, :] + alpha[:, None] * e1[None, :] + beta[:, None] * e2[None, :]  # [BLOCK_G, BLOCK_O]
    acc += bias[:, None, :]
    if RELU:
        acc = tl.where(acc < 0.0, 0.0, acc)  # NaN < 0 is false: NaN passes, as torch.relu's does
    offs_out = offs_g[:, None, None] * N * O + offs_n[None, :, None] * O + offs_o[None, None, :]
    mask_out = mask_g[:, None, None] & mask_n[None, :, None] & mask_o[None, None, :]
    tl.store(out_ptr + offs_out, to_storage(acc, out_ptr.dtype.element_ty), mask=mask_out)


@triton.jit
def grid_cross_entropy_fwd_kernel(logits_ptr, labels_ptr, loss_ptr, G, N, C, stride_l,
                                  BLOCK_G: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr):
    """loss[g] = mean_n (logsumexp_c logits[g, n, c] - logits[g, n, labels[n]]) for a block of g."""
    pid_g = tl.program_id(0)
    offs_g = pid_g.to(tl.int64) * BLOCK_G + tl.arange(0, BLOCK_G)
    mask_g = offs_g < G
    total = tl.zeros((BLOCK_G,), dtype=tl.float32)
    for start in range(0, N, BLOCK_N):
        offs_n = start + tl.arange(0, BLOCK_N).to(tl.int64)
        mask_n = offs_n < N
        mask_gn = mask_g[:, None] & mask_n[None, :]
        rows = offs_g[:, None] * N * C + offs_n[None, :] * C  # [BLOCK_G, BLOCK_N]: each row's start
        top = tl.full((BLOCK_G, BLOCK_N), float("-inf"), dtype=tl.float32)
        for first in range(0, C, BLOCK_C):  # sweep 1: each row's largest logit
            offs_c = first + tl.arange(0, BLOCK_C).to(tl.int64)
            mask = mask_gn[:, :, None] & (offs_c < C)[None, None, :]
            z = tl.load(logits_ptr + rows[:, :, None] + offs_c[None, None, :], mask=mask,
                        other=float("-inf")).to(tl.float32)
            top = tl.maximum(top, tl.max(z, axis=2))
        shift = tl.where(tl.abs(top) == float("inf"), 0.0, top)  # torch's logsumexp: no inf - inf
        sum_exp = tl.zeros((BLOCK_G, BLOCK_N), dtype=tl.float32)
        for first in range(0, C, BLOCK_C):  # sweep 2: sum of exp(z - shift)
            offs_c = first + tl.arange(0, BLOCK_C).to(tl.int64)
            mask = mask_gn[:, :, None] & (offs_c < C)[None, None, :]
            z = tl.load(logits_ptr + rows[:, :, None] + offs_c[None, None, :], mask=mask,
                        other=float("-inf")).to(tl.float32)
            sum_exp += tl.sum(tl.exp(z - shift[:, :, None]), axis=2)
        label = tl.load(labels_ptr + offs_n * stride_l, mask=mask_n, other=0).to(tl.int64)  # [BLOCK_N]
        picked = tl.load(logits_ptr + rows + label[None, :], mask=mask_gn, other=0.0).to(tl.float32)
        sum_exp = tl.where(mask_gn, sum_exp, 1.0)  # rows past N or G: no log(0)
        nll = tl.log(sum_exp) + shift - picked  # [BLOCK_G, BLOCK_N]
        total += tl.sum(tl.where(mask_gn, nll, 0.0), axis=1)
    loss = total / N
    tl.store(loss_ptr + offs_g, to_storage(loss, loss_ptr.dtype.element_ty), mask=mask_g)


def linear_blocks(device: torch.device, G: int, N: int, K: int, O: int) -> dict:
    """BLOCK_G grid points, BLOCK_N examples, BLOCK_O output units a program, BLOCK_K inputs a step.

    On a GPU a program of 8 warps holds 4 grid points of a 32 x 64 output tile, 16 inputs a step
    (tl.dot wants 16 or more on its three matrix sides): some 70 float32 registers a thread. The
    interpreter pays per program and per operation, hardly per element, so on the CPU the tiles are as
    large as the sizes allow (up to 128 examples, 256 units and inputs), and as many grid points as
    keep a tile within 2^18 numbers.
    """
    size = lambda n, cap: max(16, min(cap, triton.next_power_of_2(max(n, 1))))  # noqa: E731
    if gpu_tiles(device):
        return dict(BLOCK_G=4, BLOCK_N=32, BLOCK_K=16, BLOCK_O=64, num_warps=8)
    BLOCK_N, BLOCK_K, BLOCK_O = size(N, 128), size(K, 256), size(O, 256)
    most = max(1, (1 << 18) // max(BLOCK_N * BLOCK_K, BLOCK_K * BLOCK_O, BLOCK_N * BLOCK_O))
    BLOCK_G = min(1 << (most.bit_length() - 1), triton.next_power_of_2(max(G, 1)))  # a power of 2
    return dict(BLOCK_G=BLOCK_G, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K, BLOCK_O=BLOCK_O)


def cross_entropy_blocks(device: torch.device, G: int, N: int, C: int) -> dict:
    """BLOCK_G grid points a program, BLOCK_N examples and BLOCK_C classes a step (larger on the CPU)."""
    BLOCK_C = min(64 if gpu_tiles(device) else 256, triton.next_power_of_2(max(C, 1)))
    if gpu_tiles(device):
        return dict(BLOCK_G=1, BLOCK_N=max(1, 2048 // BLOCK_C), BLOCK_C=BLOCK_C)
    BLOCK_N = min(128, triton.next_power_of_2(N))
    most = max(1, (1 << 16) // (BLOCK_N * BLOCK_C))
    return dict(BLOCK_G=min(triton.next_power_of_2(max(G, 1)), 1 << (most.bit_length() - 1)),
                BLOCK_N=BLOCK_N, BLOCK_C=BLOCK_C)


def grid_linear(h, layer_params, coords, relu: bool, G: int) -> torch.Tensor:
    """One layer at G grid points: h [G, N, K] or x [N, K] (shared by every point), layer_params the
    layer's (W, b) slices of theta, d1, d2, coords [G, 2] -> [G, N, O] in float32."""
    (w0, b0), (w1, b1), (w2, b2) = layer_params
    O, K = w0.shape
    shared = h.dim() == 2
    N = h.shape[-2]
    stride_hg = 0 if shared else h.stride(0)
    stride_hn, stride_hk = h.stride(-2), h.stride(-1)
    out = outputs.empty((G, N, O), dtype=torch.float32, device=h.device)
    blocks = linear_blocks(h.device, G, N, K, O)
    grid = (triton.cdiv(G, blocks["BLOCK_G"]) * triton.cdiv(N, blocks["BLOCK_N"]),  # up to 2^31 - 1
            triton.cdiv(O, blocks["BLOCK_O"]))
    grid_linear_fwd_kernel[grid](h, w0, w1, w2, b0, b1, b2, coords, out, G, N, K, O, stride_hg, stride_hn,
                                 stride_hk, coords.stride(0), coords.stride(1), SHARED_INPUT=shared,
                                 RELU=relu, **blocks)
    return out


def grid_cross_entropy(logits, labels, loss):
    """logits [G, N, C] (float32), labels [N] -> loss [G] written in place (its own dtype)."""
    G, N, C = logits.shape
    blocks = cross_entropy_blocks(logits.device, G, N, C)
    grid_cross_entropy_fwd_kernel[(triton.cdiv(G, blocks["BLOCK_G"]),)](logits, labels, loss, G, N, C,
                                                                          labels.stride(0), **blocks)
    return loss


def layer_slices(theta, widths) -> list:
    """[(W_l [out, in], b_l [out])]: contiguous views into a contiguous theta [P]."""
    layers, at = [], 0
    for a, b in zip(widths, widths[1:]):
        layers.append((theta[at:at + a * b].view(b, a), theta[at + a * b:at + a * b + b]))
        at += a * b + b
    return layers


def chunk_size(G: int, N: int, widths) -> int:
    """Grid points a pass holds: as many as keep each layer's [G_chunk, N, H] within CHUNK_ELEMENTS."""
    return max(1, min(G, CHUNK_ELEMENTS // (N * max(widths[1:]))))


def grid_loss_forward(x, labels, theta, d1, d2, coords, widths) -> torch.Tensor:
    """x [N, I] (any strides), labels [N], contiguous theta, d1, d2 [P], coords [G, 2] in x's dtype ->
    the mean cross-entropy at each grid point [G] in x's dtype, chunk by chunk of grid points."""
    G, N = coords.shape[0], x.shape[0]
    loss = outputs.empty((G,), dtype=x.dtype, device=x.device)
    layers = list(zip(*(layer_slices(t, widths) for t in (theta, d1, d2))))  # per layer: 3 (W, b)
    step = chunk_size(G, N, widths)
    for start in range(0, G, step):
        part = coords[start:start + step]
        h = x
        for i, layer_params in enumerate(layers):
            h = grid_linear(h, layer_params, part, relu=i < len(layers) - 1, G=part.shape[0])
        grid_cross_entropy(h, labels, loss[start:start + step])
    return loss


def grid_loss(x, labels, theta, d1, d2, coords, widths) -> torch.Tensor:
    """Mean cross-entropy of the MLP of `widths` at each grid point theta + alpha_g d1 + beta_g d2
    (Li et al. 2018, eq. 1), the perturbation fused into each layer's Triton matmul.

    x [N, I], labels [N], theta/d1/d2 [P], coords [G, 2] -> losses [G] (x's dtype).
    """
    where = "landscape.grid_loss"
    widths = check_grid_loss_args(where, x, labels, theta, d1, d2, coords, widths)
    check_grid_kernel_inputs(where, BACKEND, x, labels, theta, d1, d2, coords)
    check_backend(where, BACKEND, "x", x)
    with on_device(where, PRIMITIVES, x):
        # theta, d1, d2 are [P] and coords [G, 2]: contiguous and in x's dtype (as the reference rounds
        # the coordinates) for a copy of at most P numbers; x and labels are read through their strides
        flat = (t.contiguous() for t in (theta, d1, d2))
        return grid_loss_forward(x, labels, *flat, coords.to(x.dtype), widths)
