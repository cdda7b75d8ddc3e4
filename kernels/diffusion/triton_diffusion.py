"""diffusion.ideal_denoiser, diffusion.heun_step and diffusion.edm_output with Triton kernels: the
contracts of `course.diffusion.ideal`, `course.diffusion.samplers` and `course.diffusion.edm`.

The streaming softmax and its backward are the course's shared kernels (`course.kernels.triton_streaming`,
which hopfield.retrieve runs too) with norm weight h = 1/2 and temperature t_i = sigma_i^2; the fused
Heun step is in `triton_heun`, the fused preconditioning in `triton_edm`; `host` checks the arguments
and holds the autograd Functions.
"""
from types import SimpleNamespace

from course.diffusion.edm import SIGMA_DATA
from course.kernels import triton_streaming
from course.kernels.diffusion import triton_edm, triton_heun
from course.kernels.diffusion.host import edm_output_with, heun_step_with, ideal_denoiser_with
from course.streaming import SOFTMAX

NORM_WEIGHT = 0.5  # -|x - y|^2 / 2 sigma^2 = (x . y - |y|^2 / 2) / sigma^2 + a term of x alone


def ideal_forward(x, y, sigma):
    """x [N, D], y [M, D], sigma [N] in ACC -> out [N, D] (x's dtype), m [N] and l [N] (ACC): the shared
    streaming softmax at t = sigma^2 (computed in ACC, as the levels are)."""
    out, (m, l) = triton_streaming.streaming_forward(x, y, sigma * sigma, NORM_WEIGHT, SOFTMAX)
    return out, m, l


def ideal_backward(x, y, sigma, m, l, grad):
    """grad [N, D] = dL/d out -> dL/dx [N, D] in x's dtype, from the saved m and l."""
    grad_x, _ = triton_streaming.streaming_backward(x, y, sigma * sigma, NORM_WEIGHT, SOFTMAX, (m, l), grad,
                                                    need_y=False)
    return grad_x


PRIMITIVES = SimpleNamespace(
    ideal_forward=ideal_forward,
    ideal_backward=ideal_backward,
    heun_forward=triton_heun.heun_forward,
    heun_backward=triton_heun.heun_backward,
    edm_forward=triton_edm.edm_forward,
    edm_backward=triton_edm.edm_backward,
    LEVELS=triton_streaming.accumulator,
    BACKEND="triton",
)


def ideal_denoiser(x, y, sigma):
    """D(x; sigma) = sum_i softmax_i(-|x - y_i|^2 / 2 sigma^2) y_i (Karras et al. 2022, eq. 2) as one
    Triton streaming softmax. x [N, D], y [M, D], sigma [N] or a number -> [N, D]"""
    return ideal_denoiser_with(PRIMITIVES, x, y, sigma)


def heun_step(x, denoised, denoised_next, noise, sigma, sigma_next, sigma_next_hat):
    """One step of EDM's Algorithm 2 (Karras et al. 2022) as one fused Triton kernel. x, denoised,
    denoised_next, noise [N, D]; sigma, sigma_next, sigma_next_hat [N] -> [N, D]"""
    return heun_step_with(PRIMITIVES, x, denoised, denoised_next, noise, sigma, sigma_next, sigma_next_hat)


def edm_output(x, raw, sigma, sigma_data: float = SIGMA_DATA):
    """D = c_skip x + c_out F (Karras et al. 2022, eq. 7) as one fused Triton kernel. x, raw [N, D],
    sigma [N] -> [N, D]"""
    return edm_output_with(PRIMITIVES, x, raw, sigma, sigma_data)
