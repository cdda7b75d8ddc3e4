"""Host-side pieces shared by the Triton and the CUDA backends of diffusion.ideal_denoiser,
diffusion.heun_step and diffusion.edm_output: the argument checks and the autograd Functions.

A backend supplies primitives with these contracts, and constants:
    ideal_forward(x [N, D], y [M, D], sigma [N]) -> out [N, D] (x's dtype), m [N], l [N] (ACC)
        the streaming softmax of `course.diffusion.ideal.streaming_forward`: out_i = sum_j p_ij y_j
        with p_ij = exp(logit_ij - m_i) / l_i, m the largest logit, l the sum of exp(logit - m)
    ideal_backward(x, y, sigma, m, l, grad [N, D]) -> grad_x [N, D] (x's dtype)
        `streaming_backward`: sum_j p_ij (<g_i, y_j> - delta_i) y_j / sigma_i^2
    heun_forward(x, denoised, denoised_next, noise [N, D], sigma, sigma_next, sigma_next_hat [N])
        -> [N, D]                                                  one fused step of EDM's Algorithm 2
    heun_backward(grad [N, D], sigma, sigma_next, sigma_next_hat) -> the four [N, D] gradients
    edm_forward(x, raw [N, D], sigma [N], sigma_data) -> c_skip x + c_out raw [N, D]
    edm_backward(grad [N, D], sigma, sigma_data) -> grad_x = c_skip g, grad_raw = c_out g
    LEVELS: the dtype of the levels the kernels read, given the rows' dtype (their arithmetic)
    BACKEND: its name in the registry; DEVICE: "cuda" for kernels that read device memory
Every [N, D] tensor reaches a primitive contiguous, every level [N] contiguous in LEVELS(dtype).
The dtypes a backend runs are declared once, in the registry (course/diffusion/ops.py), and checked here.
"""

import torch

from course.diffusion.edm import SIGMA_DATA, check_edm_output_args
from course.diffusion.ideal import check_gradients_only_for_x, check_ideal_denoiser_args
from course.diffusion.samplers import check_heun_step_args
from course.kernels.launch import check_backend, on_device  # noqa: F401  (re-exported)


def check_no_level_gradients(where: str, **levels):
    """The kernels differentiate the rows, not the noise levels: refuse, rather than leave silently
    without a gradient, a level that asks for one."""
    for name, t in levels.items():
        if isinstance(t, torch.Tensor) and t.requires_grad:
            raise ValueError(f"{where}: this backend differentiates the [N, D] inputs only; `{name}` "
                             "requires grad (use backend='reference', or detach it).")


def check_same_device(where: str, x, **others):
    """The kernels read every [N, D] or [M, D] input where x is: refuse one elsewhere, by name."""
    for name, t in others.items():
        if t.device != x.device:
            raise ValueError(f"{where}: `{name}` must be on x's device {x.device}; got {t.device}.")


def as_levels(prims, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A level [N] as the kernels read it: on the rows' device, contiguous, in LEVELS(rows' dtype)."""
    return t.detach().to(device=like.device, dtype=prims.LEVELS(like.dtype)).contiguous()


class IdealDenoiserFunction(torch.autograd.Function):
    """x [N, D] -> sum_j softmax_j(logit_ij) y_j [N, D]; saves m and l [N], never the [N, M] weights."""

    @staticmethod
    def forward(ctx, x, y, sigma, prims):
        x, y = x.contiguous(), y.contiguous()
        out, m, l = prims.ideal_forward(x, y, sigma)
        ctx.save_for_backward(x, y, sigma, m, l)
        ctx.prims = prims
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, y, sigma, m, l = ctx.saved_tensors
        grad_x = ctx.prims.ideal_backward(x, y, sigma, m, l, grad_out.contiguous())
        return grad_x, None, None, None


class HeunStepFunction(torch.autograd.Function):
    """x, denoised, denoised_next, noise [N, D] -> the next state [N, D], linear in all four."""

    @staticmethod
    def forward(ctx, x, denoised, denoised_next, noise, sigma, sigma_next, sigma_next_hat, prims):
        rows = (t.contiguous() for t in (x, denoised, denoised_next, noise))
        ctx.save_for_backward(sigma, sigma_next, sigma_next_hat)
        ctx.prims = prims
        return prims.heun_forward(*rows, sigma, sigma_next, sigma_next_hat)

    @staticmethod
    def backward(ctx, grad_out):
        grads = ctx.prims.heun_backward(grad_out.contiguous(), *ctx.saved_tensors)
        needed = (g if need else None for g, need in zip(grads, ctx.needs_input_grad))
        return (*needed, None, None, None, None)


class EdmOutputFunction(torch.autograd.Function):
    """x, raw [N, D] -> c_skip x + c_out raw [N, D]."""

    @staticmethod
    def forward(ctx, x, raw, sigma, sigma_data, prims):
        ctx.save_for_backward(sigma)
        ctx.sigma_data, ctx.prims = sigma_data, prims
        return prims.edm_forward(x.contiguous(), raw.contiguous(), sigma, sigma_data)

    @staticmethod
    def backward(ctx, grad_out):
        (sigma,) = ctx.saved_tensors
        grad_x, grad_raw = ctx.prims.edm_backward(grad_out.contiguous(), sigma, ctx.sigma_data)
        return (grad_x if ctx.needs_input_grad[0] else None, grad_raw if ctx.needs_input_grad[1] else None,
                None, None, None)


def ideal_denoiser_with(prims, x, y, sigma):
    """Check the arguments and run diffusion.ideal_denoiser with a backend's primitives."""
    where = "diffusion.ideal_denoiser"
    sigma = check_ideal_denoiser_args(where, x, y, sigma)
    check_gradients_only_for_x(where, y, sigma)
    check_same_device(where, x, y=y)
    check_backend(where, prims.BACKEND, "x", x)
    with on_device(where, prims, x):
        return IdealDenoiserFunction.apply(x, y, as_levels(prims, sigma, x), prims)


def heun_step_with(prims, x, denoised, denoised_next, noise, sigma, sigma_next, sigma_next_hat):
    """Check the arguments and run diffusion.heun_step with a backend's primitives."""
    where = "diffusion.heun_step"
    check_heun_step_args(where, x, denoised, denoised_next, noise, sigma, sigma_next, sigma_next_hat)
    check_no_level_gradients(where, sigma=sigma, sigma_next=sigma_next, sigma_next_hat=sigma_next_hat)
    check_same_device(where, x, denoised=denoised, denoised_next=denoised_next, noise=noise)
    check_backend(where, prims.BACKEND, "x", x)
    with on_device(where, prims, x):
        levels = (as_levels(prims, t, x) for t in (sigma, sigma_next, sigma_next_hat))
        return HeunStepFunction.apply(x, denoised, denoised_next, noise, *levels, prims)


def edm_output_with(prims, x, raw, sigma, sigma_data=SIGMA_DATA):
    """Check the arguments and run diffusion.edm_output with a backend's primitives."""
    where = "diffusion.edm_output"
    sigma = check_edm_output_args(where, x, raw, sigma, sigma_data)
    check_no_level_gradients(where, sigma=sigma)
    check_same_device(where, x, raw=raw)
    check_backend(where, prims.BACKEND, "x", x)
    with on_device(where, prims, x):
        return EdmOutputFunction.apply(x, raw, as_levels(prims, sigma, x), float(sigma_data), prims)
