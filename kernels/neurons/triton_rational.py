"""The safe rational activation in Triton, forward and backward: the primitives `rational_forward` and
`rational_backward` of `course.kernels.neurons.host`.

Molina et al. 2020 ("Padé Activation Units", arXiv:1907.06732, eq. 2, the safe form) and Delfosse et al.
2024 (arXiv:2102.09407, section 2), elementwise with the coefficients shared by every element:

    R(x) = P(x) / Q(x),  P(x) = a_0 + a_1 x + ... + a_m x^m,  Q(x) = 1 + |S(x)|,  S(x) = b_1 x + ... + b_n x^n

`rational_fwd_kernel`: a program owns BLOCK elements of the flattened x and evaluates P and S / x by
Horner's rule, in the reference's order (`course.neurons.rational.horner`), the coefficients loaded as
scalars (the degrees are compile-time constants, at most MAX_COEFFICIENTS - 1 and MAX_COEFFICIENTS).

`rational_bwd_kernel` (derivatives in course/neurons/rational.py, with s = sign(S)):
    grad x   = g (P' Q - P s S') / Q^2          elementwise, P' and S' by Horner's rule beside P and S
    grad a_k = sum over elements of g x^k / Q
    grad b_j = sum over elements of -g P s x^j / Q^2
A program sums its block's terms (tl.sum, a fixed tree) into one row of a [programs, m + 1] and a
[programs, n] partial-sum buffer in ACC; the host sums the rows (torch.sum over the first axis: a fixed
order, no atomics), so two runs give the same bits. A NaN element makes its gradients and the
coefficients' sums NaN, as the reference's do; elements past the end add exactly 0 (`where`, not a
product).

Arithmetic in ACC (float32 for half and single inputs, float64 for float64); divisions round to nearest
as torch's do (`divide`); stores round to nearest (`course.kernels.rounding.to_storage`).
"""
import torch
import triton
import triton.language as tl

from course import outputs
from course.kernels.launch import elementwise_block
from course.kernels.rounding import arithmetic, to_storage

MAX_COEFFICIENTS = 8  # m + 1 <= 8 numerator and n <= 8 denominator coefficients (compile-time unrolled)


@triton.jit
def divide(a, b, ACC: tl.constexpr):
    """a / b rounded to nearest, as torch divides (Triton's float32 `/` is div.full.f32, 2 ulp)."""
    if ACC == tl.float64:
        return a / b
    else:
        return tl.div_rn(a, b)


@triton.jit
def horner_with_slope(c_ptr, x, DEGREE: tl.constexpr, ACC: tl.constexpr):
    """(c_0 + c_1 x + ... + c_DEGREE x^DEGREE, its derivative) by Horner's rule, highest first."""
    value = tl.zeros_like(x) + tl.load(c_ptr + DEGREE).to(ACC)
    slope = tl.zeros_like(x)
    for j in tl.static_range(DEGREE):
        slope = slope * x + value
        value = value * x + tl.load(c_ptr + (DEGREE - 1 - j)).to(ACC)
    return value, slope


@triton.jit
def rational_fwd_kernel(x_ptr, a_ptr, b_ptr, y_ptr, E, M1: tl.constexpr, N: tl.constexpr,
                        ACC: tl.constexpr, BLOCK: tl.constexpr):
    """y = P(x) / (1 + |x (b_1 + b_2 x + ... + b_n x^(n-1))|) for BLOCK elements."""
    pid_e = tl.program_id(0)
    offs_e = pid_e.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask_e = offs_e < E
    x = tl.load(x_ptr + offs_e, mask=mask_e, other=0.0).to(ACC)
    p, _ = horner_with_slope(a_ptr, x, M1 - 1, ACC)
    if N > 0:
        h, _ = horner_with_slope(b_ptr, x, N - 1, ACC)
        q = 1.0 + tl.abs(x * h)
        y = divide(p, q, ACC)
    else:
        y = p
    tl.store(y_ptr + offs_e, to_storage(y, y_ptr.dtype.element_ty), mask=mask_e)


@triton.jit
def rational_bwd_kernel(x_ptr, a_ptr, b_ptr, g_ptr, grad_x_ptr, partial_a_ptr, partial_b_ptr, E,
                        M1: tl.constexpr, N: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr):
    """grad x for BLOCK elements; this block's sums of the coefficients' gradient terms into row pid_e of
    partial_a [programs, M1] and partial_b [programs, N]."""
    pid_e = tl.program_id(0)
    offs_e = pid_e.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask_e = offs_e < E
    x = tl.load(x_ptr + offs_e, mask=mask_e, other=0.0).to(ACC)
    g = tl.load(g_ptr + offs_e, mask=mask_e, other=0.0).to(ACC)
    p, dp = horner_with_slope(a_ptr, x, M1 - 1, ACC)
    if N > 0:
        h, dh = horner_with_slope(b_ptr, x, N - 1, ACC)
        s_val = x * h  # S(x)
        ds = h + x * dh  # S'(x)
        q = 1.0 + tl.abs(s_val)
        sign = tl.where(s_val > 0, 1.0, tl.where(s_val < 0, -1.0, tl.where(s_val == 0, 0.0, s_val)))
        g_p = divide(g, q, ACC)  # dL/dP = g / Q
        g_q = -divide(divide(g * p, q, ACC), q, ACC)  # dL/dQ = -g P / Q^2
        g_s = g_q * sign  # dL/dS
        grad_x = g_p * dp + g_s * ds
    else:
        g_p = g
        grad_x = g * dp
    tl.store(grad_x_ptr + offs_e, to_storage(grad_x, grad_x_ptr.dtype.element_ty), mask=mask_e)
    row = pid_e.to(tl.int64)
    power = tl.where(mask_e, g_p, 0.0)  # g x^k / Q, k = 0, 1, ...
    for k in tl.static_range(M1):
        tl.store(partial_a_ptr + row * M1 + k, tl.sum(power, axis=0))
        power = power * x
    if N > 0:
        power = tl.where(mask_e, g_s * x, 0.0)  # dL/dS x^j, j = 1, 2, ...
        for j in tl.static_range(N):
            tl.store(partial_b_ptr + row * N + j, tl.sum(power, axis=0))
            power = power * x


def check_degrees(numerator, denominator):
    """The kernels unroll the polynomials: m + 1 and n at most MAX_COEFFICIENTS."""
    for name, t in (("numerator", numerator), ("denominator", denominator)):
        if t.numel() > MAX_COEFFICIENTS:
            raise ValueError(f"neurons.rational (triton): `{name}` may hold at most {MAX_COEFFICIENTS} "
                             f"coefficients (the kernels unroll Horner's rule: m + 1 <= {MAX_COEFFICIENTS}, "
                             f"n <= {MAX_COEFFICIENTS}); got {t.numel()}.")


def accumulator(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def rational_forward(x, numerator, denominator):
    """x [E], numerator [m + 1], denominator [n] (contiguous, x's dtype) -> y [E]."""
    check_degrees(numerator, denominator)
    y = outputs.empty(tuple(x.shape), dtype=x.dtype, device=x.device)
    if x.numel() == 0:
        return y
    BLOCK = elementwise_block(x.device)
    b = denominator if denominator.numel() else numerator  # never read when n = 0
    rational_fwd_kernel[(triton.cdiv(x.numel(), BLOCK),)](
        x, numerator, b, y, x.numel(), M1=numerator.numel(), N=denominator.numel(), **arithmetic(x.dtype),
        BLOCK=BLOCK)
    return y


def rational_backward(x, numerator, denominator, grad):
    """x [E], coefficients, grad [E] = dL/dy -> grad x [E], grad numerator [m + 1], grad denominator [n];
    the coefficients' gradients are the per-block partial sums summed over the blocks in a fixed order."""
    check_degrees(numerator, denominator)
    M1, N = numerator.numel(), denominator.numel()
    grad_x = outputs.empty(tuple(x.shape), dtype=x.dtype, device=x.device)
    BLOCK = elementwise_block(x.device)
    programs = triton.cdiv(x.numel(), BLOCK)
    acc = accumulator(x.dtype)
    partial_a = outputs.empty((programs, M1), dtype=acc, device=x.device)
    partial_b = outputs.empty((programs, N), dtype=acc, device=x.device)
    if programs:
        rational_bwd_kernel[(programs,)](
            x, numerator, denominator if N else numerator, grad, grad_x, partial_a,
            partial_b if N else partial_a, x.numel(), M1=M1, N=N, **arithmetic(x.dtype), BLOCK=BLOCK)
    return grad_x, partial_a.sum(0).to(x.dtype), partial_b.sum(0).to(x.dtype)
