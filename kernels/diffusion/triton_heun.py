"""One step of EDM's stochastic sampler (Karras et al. 2022, Algorithm 2) as one fused Triton kernel,
forward and backward: the contract of `course.diffusion.samplers.heun_step`.

Per row i, from x at sigma to sigma' = sigma_next, then the next step's churn up to sigma_next_hat:
    d = (x - D) / sigma,  x_E = x + (sigma' - sigma) d                          (Euler, line 5)
    d' = (x_E - D') / sigma',  x_H = x + (sigma' - sigma) (d + d') / 2           (Heun, lines 6-8)
    out = (x_H if sigma' > 0 else x_E) + sqrt(sigma_next_hat^2 - sigma'^2) noise  (line 4 of the next step)
`heun_step_fwd_kernel` reads the four [N, D] inputs once and writes the output once (the reference
makes a tensor of each intermediate). The output is linear in x, D, D' and the noise with
coefficients of the row's levels; `heun_step_bwd_kernel` writes the four gradients from dL/d out = g by
the chain rule, in the reference's order of operations (autograd's through its graph):
    g_H = g on a Heun step (else 0),  g_s = g_H / 2 (sigma' - sigma)         dL/d(d + d')
    g_diff = g_s / sigma'  = -grad D',    g_E = g on a last step (else 0) + g_diff    dL/d x_E
    g_xd = (g_s + g_E (sigma' - sigma)) / sigma  = -grad D,   grad x = g_H + g_E + g_xd,
    grad noise = sqrt(sigma_next_hat^2 - sigma'^2) g.
The order matters where the true gradient is 0: on a last step grad x = g (1 - sigma / sigma) = 0,
which the reference rounds to a few ulp of g in float32; a coefficient sigma' / sigma computed
first would give exactly 0, and an RMS-relative error of 1 against the reference. For the same reason
divisions and the square root round to nearest, as torch's do (`divide`, `churn_scale`).
One program per BLOCK elements of the flattened rows (each reads its row's levels): any D, even 1.
Arithmetic in ACC (float32, float64 for float64); stores round to nearest.
"""
import triton
import triton.language as tl

from course import outputs
from course.kernels.launch import elementwise_block
from course.kernels.rounding import arithmetic, to_storage


@triton.jit
def divide(a, b, ACC: tl.constexpr):
    """a / b rounded to nearest, as torch divides (Triton's float32 `/` is div.full.f32, 2 ulp)."""
    if ACC == tl.float64:
        return a / b
    else:
        return tl.div_rn(a, b)


@triton.jit
def churn_scale(sn, sh, ACC: tl.constexpr):
    """sqrt(max(sigma_next_hat^2 - sigma_next^2, 0)), rounded to nearest (Triton's float32 sqrt is not).
    As (sh - sn)(sh + sn): a GPU compiler contracts sh * sh - sn * sn into one fma, whose rounding error
    of sn^2 leaves a churn of ~2e-4 sn where sh == sn (no churn); the product is exactly 0 there."""
    v = tl.maximum((sh - sn) * (sh + sn), 0.0)
    if ACC == tl.float64:
        return tl.sqrt(v)
    else:
        return tl.sqrt_rn(v)


@triton.jit
def heun_step_fwd_kernel(x_ptr, denoised_ptr, denoised_next_ptr, noise_ptr, sigma_ptr, sigma_next_ptr,
                         sigma_next_hat_ptr, out_ptr, total, D, ACC: tl.constexpr, BLOCK: tl.constexpr):
    """out = Heun's (or, where sigma_next = 0, Euler's) step plus the churn noise, for BLOCK elements."""
    pid_nd = tl.program_id(0)
    offs_nd = pid_nd.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)  # elements of the [N, D] rows
    mask_nd = offs_nd < total
    row = offs_nd // D
    s = tl.load(sigma_ptr + row, mask=mask_nd, other=1.0).to(ACC)
    sn = tl.load(sigma_next_ptr + row, mask=mask_nd, other=0.0).to(ACC)
    sh = tl.load(sigma_next_hat_ptr + row, mask=mask_nd, other=0.0).to(ACC)
    x = tl.load(x_ptr + offs_nd, mask=mask_nd, other=0.0).to(ACC)
    den = tl.load(denoised_ptr + offs_nd, mask=mask_nd, other=0.0).to(ACC)
    den2 = tl.load(denoised_next_ptr + offs_nd, mask=mask_nd, other=0.0).to(ACC)
    eps = tl.load(noise_ptr + offs_nd, mask=mask_nd, other=0.0).to(ACC)
    d = divide(x - den, s, ACC)
    euler = x + (sn - s) * d
    d_next = divide(euler - den2, tl.where(sn > 0, sn, 1.0), ACC)
    heun = x + (sn - s) * (d + d_next) * 0.5  # exact, as / 2 is in IEEE arithmetic
    out = tl.where(sn > 0, heun, euler) + churn_scale(sn, sh, ACC) * eps
    tl.store(out_ptr + offs_nd, to_storage(out, out_ptr.dtype.element_ty), mask=mask_nd)


@triton.jit
def heun_step_bwd_kernel(grad_ptr, sigma_ptr, sigma_next_ptr, sigma_next_hat_ptr, grad_x_ptr,
                         grad_denoised_ptr, grad_denoised_next_ptr, grad_noise_ptr, total, D,
                         ACC: tl.constexpr, BLOCK: tl.constexpr):
    """The gradients of x, D, D' and the noise from dL/d out, in the reference's order, for BLOCK elements."""
    pid_nd = tl.program_id(0)
    offs_nd = pid_nd.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)  # elements of the [N, D] rows
    mask_nd = offs_nd < total
    row = offs_nd // D
    s = tl.load(sigma_ptr + row, mask=mask_nd, other=1.0).to(ACC)
    sn = tl.load(sigma_next_ptr + row, mask=mask_nd, other=0.0).to(ACC)
    sh = tl.load(sigma_next_hat_ptr + row, mask=mask_nd, other=0.0).to(ACC)
    g = tl.load(grad_ptr + offs_nd, mask=mask_nd, other=0.0).to(ACC)
    heun = sn > 0
    g_heun = tl.where(heun, g, 0.0)
    g_slopes = g_heun * 0.5 * (sn - s)  # dL/d(d + d') on a Heun step
    g_diff = divide(g_slopes, tl.where(heun, sn, 1.0), ACC)  # dL/d(x_E - D')
    g_euler = tl.where(heun, 0.0, g) + g_diff
    g_scaled = divide(g_slopes + g_euler * (sn - s), s, ACC)  # dL/d(x - D)
    tl.store(grad_x_ptr + offs_nd, to_storage(g_heun + g_euler + g_scaled, grad_x_ptr.dtype.element_ty),
             mask=mask_nd)
    tl.store(grad_denoised_ptr + offs_nd, to_storage(-g_scaled, grad_denoised_ptr.dtype.element_ty),
             mask=mask_nd)
    tl.store(grad_denoised_next_ptr + offs_nd, to_storage(-g_diff, grad_denoised_next_ptr.dtype.element_ty),
             mask=mask_nd)
    grad_noise = churn_scale(sn, sh, ACC) * g
    tl.store(grad_noise_ptr + offs_nd, to_storage(grad_noise, grad_noise_ptr.dtype.element_ty), mask=mask_nd)


def heun_forward(x, denoised, denoised_next, noise, sigma, sigma_next, sigma_next_hat):
    """[N, D] inputs (contiguous), levels [N] in ACC -> the next state [N, D] in x's dtype."""
    out = outputs.empty(tuple(x.shape), dtype=x.dtype, device=x.device)
    if x.numel() == 0:
        return out
    BLOCK = elementwise_block(x.device)
    heun_step_fwd_kernel[(triton.cdiv(x.numel(), BLOCK),)](
        x, denoised, denoised_next, noise, sigma, sigma_next, sigma_next_hat, out, x.numel(), x.shape[1],
        **arithmetic(x.dtype), BLOCK=BLOCK)
    return out


def heun_backward(grad, sigma, sigma_next, sigma_next_hat):
    """grad [N, D] = dL/d out (contiguous) -> the gradients of x, denoised, denoised_next and noise."""
    grads = tuple(outputs.empty(tuple(grad.shape), dtype=grad.dtype, device=grad.device) for _ in range(4))
    if grad.numel() == 0:
        return grads
    BLOCK = elementwise_block(grad.device)
    heun_step_bwd_kernel[(triton.cdiv(grad.numel(), BLOCK),)](
        grad, sigma, sigma_next, sigma_next_hat, *grads, grad.numel(), grad.shape[1],
        **arithmetic(grad.dtype), BLOCK=BLOCK)
    return grads
