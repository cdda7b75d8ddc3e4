"""The B-spline KAN layer in Triton, forward and backward: the primitives `kan_forward` and `kan_backward`
of `course.kernels.neurons.host`.

Liu et al. 2024 ("KAN: Kolmogorov-Arnold Networks", arXiv:2404.19756, eq. 2.10), cubic B-splines on a
uniform grid of G intervals over [-R, R] (course/neurons/kan.py):

    y[b, o] = sum_i base[i, o] silu(x[b, i]) + sum_i sum_c coef[i, c, o] B_c(x[b, i]),
    B_c(x) = N(|x - m_c| / h),  N(r) = (4 - 6 r^2 + 3 r^3) / 6 (r < 1), (2 - r)^3 / 6 (1 <= r < 2), 0,

with h = 2 R / G and m_c the middle knot of spline c (c = 0 .. G + 2). The knots m_c and h come from
`course.neurons.kan.knots_for` in ACC, the reference's own values.

The silu term rides along as one more column: the extended basis E(x) = [B_0(x), ..., B_{G+2}(x), silu(x)]
meets the extended coefficients [coef[i]; base[i]] [G + 4, O] in the same tl.dot.

`kan_linear_fwd_kernel`: a program owns BLOCK_B rows and BLOCK_O outputs and walks the inputs BLOCK_I at
a time: it loads x[:, i-block], evaluates E on chip as a [BLOCK_B, BLOCK_I, BLOCK_C] tile (BLOCK_C the next
power of two >= G + 4, at least 16 for tl.dot, the extra columns 0) and adds tl.dot(E, [coef; base]) over
the BLOCK_I BLOCK_C terms. The [B, I, G + 3] basis never exists in memory. (BLOCK_I = 1 or 2 on a GPU, the
design of one input a step; the interpreter pays per operation, so on the CPU a step takes many inputs.)

`kan_linear_bwd_x_kernel`: a program owns BLOCK_B rows and BLOCK_I inputs; it walks the outputs for
gw = g [coef[i]; base[i]]^T [BLOCK_B, BLOCK_I BLOCK_C] (tl.dot), then
    grad x[b, i] = sum_c E'_c(x) gw[b, i, c],  E' = [B_c'(x), silu'(x)],  B_c'(x) = N'(r) sign(x - m_c) / h,
    N'(r) = -2 r + 3 r^2 / 2 (r < 1), -(2 - r)^2 / 2 (1 <= r < 2), 0,  silu'(x) = sig(x) (1 + x (1 - sig(x))).
`kan_linear_bwd_weights_kernel`: a program owns BLOCK_I inputs and BLOCK_O outputs and walks the rows:
    [grad coef[i]; grad base[i]] += E(x_i)^T g   (tl.dot, [BLOCK_I BLOCK_C, BLOCK_B] x [BLOCK_B, BLOCK_O]),
each sum in a fixed order (no atomics).

NaN: a NaN x gives a NaN basis (N is written with `where`s that let NaN through; tl.maximum would not),
so its row's outputs and every coefficient gradient of its inputs are NaN, as the reference's are; rows
and columns past the ends are set to 0 with `where`. Divisions are IEEE in the interpreter and float64
(div.full, 2 ulp, for float32 on a GPU). Products are IEEE (no TF32) in ACC: float32 for half
and single inputs (converted before tl.dot, so bfloat16 runs under the interpreter too), float64 for
float64; stores round to nearest (`to_storage`); offsets are int64.
"""
import torch
import triton
import triton.language as tl

from course import outputs
from course.kernels.launch import gpu_tiles
from course.kernels.rounding import arithmetic, to_storage
from course.neurons.kan import knots_for


@triton.jit
def extended_basis(x, middle, mask_spline, mask_base, mask_rows, h):
    """[B_0(x), ..., B_{G+2}(x), silu(x), 0, ...] [BLOCK_B, BLOCK_I, BLOCK_C] for x [BLOCK_B, BLOCK_I];
    0 on rows where `mask_rows` [BLOCK_B] is False; NaN where x is NaN."""
    r = tl.abs(x[:, :, None] - middle[None, None, :]) / h
    t = 2.0 - r
    spline = tl.where(r < 1.0, (4.0 - 6.0 * r * r + 3.0 * r * r * r) / 6.0,
                      tl.where(r >= 2.0, 0.0, t * t * t / 6.0))  # NaN >= 2 is False: NaN passes
    silu = x / (1.0 + tl.exp(-x))
    basis = tl.where(mask_spline[None, None, :], spline,
                     tl.where(mask_base[None, None, :], silu[:, :, None], 0.0))
    return tl.where(mask_rows[:, None, None], basis, 0.0)


@triton.jit
def extended_coef(base_ptr, coef_ptr, offs_i, mask_i, offs_c, mask_spline, mask_base, offs_o, mask_o, C, O,
                  ACC: tl.constexpr):
    """[coef[i]; base[i]] [BLOCK_I, BLOCK_C, BLOCK_O]: rows c < C of coef, row C of base, 0 past it."""
    offs_ic = offs_i[:, None, None] * C + offs_c[None, :, None]
    mask_io = mask_i[:, None, None] & mask_o[None, None, :]
    coef = tl.load(coef_ptr + offs_ic * O + offs_o[None, None, :], mask=mask_io & mask_spline[None, :, None],
                   other=0.0).to(ACC)
    base = tl.load(base_ptr + offs_i[:, None, None] * O + offs_c[None, :, None] * 0 + offs_o[None, None, :],
                   mask=mask_io & mask_base[None, :, None], other=0.0).to(ACC)
    return coef + base


@triton.jit
def kan_linear_fwd_kernel(x_ptr, base_ptr, coef_ptr, middle_ptr, h_ptr, y_ptr, B, I, O, C,
                          ACC: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_I: tl.constexpr,
                          BLOCK_C: tl.constexpr, BLOCK_O: tl.constexpr):
    """y[b, o] for BLOCK_B rows and BLOCK_O outputs, walking the inputs BLOCK_I at a time: their extended
    basis [B_c(x_i), silu(x_i)] formed on chip, [BLOCK_B, BLOCK_I BLOCK_C], times their [coef[i]; base[i]]
    tiles, [BLOCK_I BLOCK_C, BLOCK_O], one tl.dot."""
    pid_b = tl.program_id(0)
    pid_o = tl.program_id(1)
    offs_b = pid_b.to(tl.int64) * BLOCK_B + tl.arange(0, BLOCK_B)
    mask_b = offs_b < B
    offs_o = pid_o.to(tl.int64) * BLOCK_O + tl.arange(0, BLOCK_O)
    mask_o = offs_o < O
    offs_c = tl.arange(0, BLOCK_C).to(tl.int64)
    mask_spline = offs_c < C  # the columns of the G + 3 splines
    mask_base = offs_c == C  # the column of silu
    middle = tl.load(middle_ptr + offs_c, mask=mask_spline, other=0.0).to(ACC)  # m_c [BLOCK_C]
    h = tl.load(h_ptr).to(ACC)
    acc = tl.full((BLOCK_B, BLOCK_O), 0.0, ACC)
    for start in range(0, I, BLOCK_I):
        offs_i = start + tl.arange(0, BLOCK_I).to(tl.int64)
        mask_i = offs_i < I
        x = tl.load(x_ptr + offs_b[:, None] * I + offs_i[None, :], mask=mask_b[:, None] & mask_i[None, :],
                    other=0.0).to(ACC)  # [BLOCK_B, BLOCK_I]
        basis = extended_basis(x, middle, mask_spline, mask_base, mask_b, h)
        w = extended_coef(base_ptr, coef_ptr, offs_i, mask_i, offs_c, mask_spline, mask_base, offs_o, mask_o,
                          C, O, ACC)
        acc = tl.dot(tl.reshape(basis, (BLOCK_B, BLOCK_I * BLOCK_C)),
                     tl.reshape(w, (BLOCK_I * BLOCK_C, BLOCK_O)), acc, input_precision="ieee")
    tl.store(y_ptr + offs_b[:, None] * O + offs_o[None, :], to_storage(acc, y_ptr.dtype.element_ty),
             mask=mask_b[:, None] & mask_o[None, :])


@triton.jit
def kan_linear_bwd_x_kernel(x_ptr, base_ptr, coef_ptr, middle_ptr, h_ptr, g_ptr, grad_x_ptr, B, I, O, C,
                            ACC: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_I: tl.constexpr,
                            BLOCK_C: tl.constexpr, BLOCK_O: tl.constexpr):
    """grad x for BLOCK_B rows and BLOCK_I inputs, over all O: gw = g [coef[i]; base[i]]^T (tl.dot,
    [BLOCK_B, BLOCK_I BLOCK_C]), then grad x[b, i] = sum_c [B_c'(x), silu'(x)]_c gw[b, i, c]."""
    pid_b = tl.program_id(0)
    pid_i = tl.program_id(1)
    offs_b = pid_b.to(tl.int64) * BLOCK_B + tl.arange(0, BLOCK_B)
    mask_b = offs_b < B
    offs_i = pid_i.to(tl.int64) * BLOCK_I + tl.arange(0, BLOCK_I)
    mask_i = offs_i < I
    offs_c = tl.arange(0, BLOCK_C).to(tl.int64)
    mask_spline = offs_c < C
    mask_base = offs_c == C
    middle = tl.load(middle_ptr + offs_c, mask=mask_spline, other=0.0).to(ACC)
    h = tl.load(h_ptr).to(ACC)
    gw = tl.full((BLOCK_B, BLOCK_I * BLOCK_C), 0.0, ACC)  # sum_o g[b, o] [coef[i]; base[i]][c, o]
    for start in range(0, O, BLOCK_O):
        offs_o = start + tl.arange(0, BLOCK_O).to(tl.int64)
        mask_o = offs_o < O
        g = tl.load(g_ptr + offs_b[:, None] * O + offs_o[None, :], mask=mask_b[:, None] & mask_o[None, :],
                    other=0.0).to(ACC)  # [BLOCK_B, BLOCK_O]
        w = extended_coef(base_ptr, coef_ptr, offs_i, mask_i, offs_c, mask_spline, mask_base, offs_o, mask_o,
                          C, O, ACC)
        gw = tl.dot(g, tl.trans(tl.reshape(w, (BLOCK_I * BLOCK_C, BLOCK_O))), gw, input_precision="ieee")
    mask_bi = mask_b[:, None] & mask_i[None, :]
    x = tl.load(x_ptr + offs_b[:, None] * I + offs_i[None, :], mask=mask_bi, other=0.0).to(ACC)
    d = (x[:, :, None] - middle[None, None, :]) / h  # [BLOCK_B, BLOCK_I, BLOCK_C]
    r = tl.abs(d)
    t = 2.0 - r
    slope = tl.where(r < 1.0, -2.0 * r + 1.5 * r * r, tl.where(r >= 2.0, 0.0, -0.5 * t * t))  # N'(r)
    slope = tl.where(d < 0.0, -slope, slope) / h  # dB_c/dx (N'(0) = 0: the sign at d = 0 is moot)
    sig = 1.0 / (1.0 + tl.exp(-x))
    silu_slope = sig * (1.0 + x * (1.0 - sig))
    slope = tl.where(mask_spline[None, None, :], slope,
                     tl.where(mask_base[None, None, :], silu_slope[:, :, None], 0.0))
    grad = tl.sum(slope * tl.reshape(gw, (BLOCK_B, BLOCK_I, BLOCK_C)), axis=2)  # [BLOCK_B, BLOCK_I]
    tl.store(grad_x_ptr + offs_b[:, None] * I + offs_i[None, :],
             to_storage(grad, grad_x_ptr.dtype.element_ty), mask=mask_bi)


@triton.jit
def kan_linear_bwd_weights_kernel(x_ptr, middle_ptr, h_ptr, g_ptr, grad_base_ptr, grad_coef_ptr, B, I, O, C,
                                  ACC: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_I: tl.constexpr,
                                  BLOCK_C: tl.constexpr, BLOCK_O: tl.constexpr):
    """[grad coef[i]; grad base[i]] = [B_c(x_i), silu(x_i)]^T g for BLOCK_I inputs and BLOCK_O outputs,
    one tl.dot a block of rows, the rows in a fixed order."""
    pid_i = tl.program_id(0)
    pid_o = tl.program_id(1)
    offs_i = pid_i.to(tl.int64) * BLOCK_I + tl.arange(0, BLOCK_I)
    mask_i = offs_i < I
    offs_o = pid_o.to(tl.int64) * BLOCK_O + tl.arange(0, BLOCK_O)
    mask_o = offs_o < O
    offs_c = tl.arange(0, BLOCK_C).to(tl.int64)
    mask_spline = offs_c < C
    mask_base = offs_c == C
    middle = tl.load(middle_ptr + offs_c, mask=mask_spline, other=0.0).to(ACC)
    h = tl.load(h_ptr).to(ACC)
    acc = tl.full((BLOCK_I * BLOCK_C, BLOCK_O), 0.0, ACC)
    for start in range(0, B, BLOCK_B):
        offs_b = start + tl.arange(0, BLOCK_B).to(tl.int64)
        mask_b = offs_b < B
        x = tl.load(x_ptr + offs_b[:, None] * I + offs_i[None, :], mask=mask_b[:, None] & mask_i[None, :],
                    other=0.0).to(ACC)  # [BLOCK_B, BLOCK_I]
        g = tl.load(g_ptr + offs_b[:, None] * O + offs_o[None, :], mask=mask_b[:, None] & mask_o[None, :],
                    other=0.0).to(ACC)  # [BLOCK_B, BLOCK_O]
        basis = extended_basis(x, middle, mask_spline, mask_base, mask_b, h)  # [BLOCK_B, BLOCK_I, BLOCK_C]
        acc = tl.dot(tl.trans(tl.reshape(basis, (BLOCK_B, BLOCK_I * BLOCK_C))), g, acc,
                     input_precision="ieee")
    out = tl.reshape(to_storage(acc, grad_coef_ptr.dtype.element_ty), (BLOCK_I, BLOCK_C, BLOCK_O))
    mask_io = mask_i[:, None, None] & mask_o[None, None, :]  # rows c < C: grad coef[i]; row C: grad base[i]
    offs_coef = (offs_i[:, None, None] * C + offs_c[None, :, None]) * O + offs_o[None, None, :]
    tl.store(grad_coef_ptr + offs_coef, out, mask=mask_io & mask_spline[None, :, None])
    offs_base = offs_i[:, None, None] * O + offs_c[None, :, None] * 0 + offs_o[None, None, :]
    tl.store(grad_base_ptr + offs_base, out, mask=mask_io & mask_base[None, :, None])


def kan_blocks(device: torch.device, dtype: torch.dtype, B: int, I: int, O: int, C: int) -> dict:
    """BLOCK_B rows, BLOCK_O outputs, BLOCK_C >= G + 4 columns of the extended basis (the G + 3 splines and
    silu; tl.dot wants 16 or more on each side), BLOCK_I inputs a step (a product of BLOCK_I BLOCK_C terms).

    On a GPU, 64 x 64 output tiles (32 x 32 in float64) and 32 // BLOCK_C inputs a step (2 for G <= 12,
    else 1: the [BLOCK_B, BLOCK_I, BLOCK_C] basis stays small). The interpreter pays per program and per
    operation, hardly per element, so on the CPU the tiles are as large as the sizes allow (up to 128
    rows, 256 outputs, 512 basis columns a step).
    """
    size = lambda n, cap: max(16, min(cap, triton.next_power_of_2(max(n, 1))))  # noqa: E731
    BLOCK_C = size(C + 1, 1 << 30)
    inputs = triton.next_power_of_2(max(I, 1))
    if gpu_tiles(device):
        tile = 32 if dtype == torch.float64 else 64
        return dict(BLOCK_B=tile, BLOCK_O=tile, BLOCK_C=BLOCK_C, BLOCK_I=min(inputs, max(1, 32 // BLOCK_C)))
    return dict(BLOCK_B=size(B, 128), BLOCK_O=size(O, 256), BLOCK_C=BLOCK_C,
                BLOCK_I=min(inputs, max(1, 512 // BLOCK_C)))


def grid_of(coef, grid_range: float, dtype: torch.dtype, device):
    """The G + 3 splines' middle knots m_c [G + 3] and the spacing h [1], in ACC: the reference's values."""
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    knots = knots_for(coef, grid_range, acc, device)  # [G + 7]
    return knots[2:-2].contiguous(), (knots[1] - knots[0]).reshape(1)


def kan_forward(x, base, coef, grid_range):
    """x [B, I], base [I, O], coef [I, G + 3, O] (contiguous, x's dtype) -> y [B, O]."""
    (B, I), O, C = x.shape, base.shape[1], coef.shape[1]
    y = outputs.empty((B, O), dtype=x.dtype, device=x.device)
    if B == 0 or O == 0:
        return y
    middle, h = grid_of(coef, grid_range, x.dtype, x.device)
    blocks = kan_blocks(x.device, x.dtype, B, I, O, C)
    grid = (triton.cdiv(B, blocks["BLOCK_B"]), triton.cdiv(O, blocks["BLOCK_O"]))
    kan_linear_fwd_kernel[grid](x, base, coef, middle, h, y, B, I, O, C, **arithmetic(x.dtype), **blocks)
    return y


def kan_backward(x, base, coef, grid_range, grad):
    """grad [B, O] = dL/dy (contiguous) -> grad x [B, I], grad base [I, O], grad coef [I, G + 3, O]."""
    (B, I), O, C = x.shape, base.shape[1], coef.shape[1]
    grad_x = outputs.empty((B, I), dtype=x.dtype, device=x.device)
    grad_base = outputs.empty((I, O), dtype=x.dtype, device=x.device)
    grad_coef = outputs.empty((I, C, O), dtype=x.dtype, device=x.device)
    middle, h = grid_of(coef, grid_range, x.dtype, x.device)
    blocks = kan_blocks(x.device, x.dtype, B, I, O, C)
    if B and I:
        grid = (triton.cdiv(B, blocks["BLOCK_B"]), triton.cdiv(I, blocks["BLOCK_I"]))
        kan_linear_bwd_x_kernel[grid](x, base, coef, middle, h, grad, grad_x, B, I, O, C,
                                      **arithmetic(x.dtype), **blocks)
    if I and O:
        grid = (triton.cdiv(I, blocks["BLOCK_I"]), triton.cdiv(O, blocks["BLOCK_O"]))
        kan_linear_bwd_weights_kernel[grid](x, middle, h, grad, grad_base, grad_coef, B, I, O, C,
                                            **arithmetic(x.dtype), **blocks)
    return grad_x, grad_base, grad_coef
