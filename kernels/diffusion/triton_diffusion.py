"""diffusion.ideal_denoiser, diffusion.heun_step and diffusion.edm_output with Triton kernels: the
contracts of `course.diffusion.ideal`, `course.diffusion.samplers` and `course.diffusion.edm`.

The streaming softmax and its backward are in `triton_ideal`, the fused Heun step in `triton_heun`,
the fused preconditioning in `triton_edm`; `host` checks the arguments and holds the autograd Functions.
"""
from types import SimpleNamespace

from course.diffusion.edm import SIGMA_DATA
from course.kernels.diffusion import triton_edm, triton_heun, triton_ideal
from course.kernels.diffusion.host import edm_output_with, heun_step_with, ideal_denoiser_with

PRIMITIVES = SimpleNamespace(
    ideal_forward=triton_ideal.ideal_forward,
    ideal_backward=triton_ideal.ideal_backward,
    heun_forward=triton_heun.heun_forward,
    heun_backward=triton_heun.heun_backward,
    edm_forward=triton_edm.edm_forward,
    edm_backward=triton_edm.edm_backward,
    LEVELS=triton_ideal.accumulator,
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
