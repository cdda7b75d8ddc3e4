"""diffusion.ideal_denoiser, diffusion.heun_step and diffusion.edm_output with CUDA kernels: the
contracts of `course.diffusion.ideal`, `course.diffusion.samplers` and `course.diffusion.edm`.

The ideal denoiser is one run of the course's shared streaming softmax (`kernels/streaming_softmax.cu`, loaded
by `course.kernels.cuda_streaming`, which the Hopfield retrieval ops run too) with norm weight h = 1/2 and the
temperature t_i = sigma_i^2; this family's own kernels (`diffusion_steps.cu`: the fused Heun step and
preconditioning) implement the algorithms of the Triton backend in CUDA C++; `diffusion_binding.cpp` exposes
them to PyTorch and `host` checks the arguments and holds the autograd Functions. The extensions are compiled
by `torch.utils.cpp_extension` on first use, which needs a CUDA build of PyTorch, nvcc and a GPU. The kernels
compute in float32: float32, float16 and bfloat16 tensors.
"""
import functools
from pathlib import Path
from types import SimpleNamespace

import torch

from course import outputs
from course.diffusion.edm import SIGMA_DATA
from course.kernels import cuda_streaming
from course.kernels.build import cuda_extension
from course.kernels.diffusion.host import edm_output_with, heun_step_with, ideal_denoiser_with
from course.streaming import SOFTMAX

HERE = Path(__file__).parent
SOURCES = ("diffusion_binding.cpp", "diffusion_steps.cu")
# The CUDA extension modules these backends launch through besides their own (the CPU emulator's fixture
# emulates them): the ideal denoiser's streaming softmax.
CUDA_MODULES = ("course.kernels.cuda_streaming",)
IDEAL_NORM_WEIGHT = 0.5  # -|x - y|^2 / 2 sigma^2 = (x . y - |y|^2 / 2) / sigma^2 + a term of x alone


@functools.cache
def extension():
    """Compile (once, cached by PyTorch) and load the extension."""
    return cuda_extension("course_diffusion_cuda", HERE, SOURCES)


def _stream() -> int:
    return torch.cuda.current_stream().cuda_stream


def like(t: torch.Tensor) -> torch.Tensor:
    """An output of t's shape, dtype and device."""
    return outputs.empty(tuple(t.shape), dtype=t.dtype, device=t.device)


def ideal_forward(x, y, sigma):
    """x [N, D], y [M, D], sigma [N] float32 -> out [N, D] (x's dtype), m [N] and l [N] float32: the
    shared streaming softmax with t_i = sigma_i^2 and h = 1/2."""
    out, (m, l) = cuda_streaming.streaming_forward(x, y, sigma * sigma, IDEAL_NORM_WEIGHT, SOFTMAX)
    return out, m, l


def ideal_backward(x, y, sigma, m, l, grad):
    """grad [N, D] = dL/d out -> dL/dx [N, D] in x's dtype (the stored points get no gradient)."""
    grad_x, _ = cuda_streaming.streaming_backward(x, y, sigma * sigma, IDEAL_NORM_WEIGHT, SOFTMAX, (m, l),
                                                  grad, need_y=False)
    return grad_x


def heun_forward(x, denoised, denoised_next, noise, sigma, sigma_next, sigma_next_hat):
    """[N, D] rows, float32 levels [N] -> the next state [N, D] in x's dtype."""
    return extension().heun_forward(x, denoised, denoised_next, noise, sigma, sigma_next, sigma_next_hat,
                                    like(x), _stream())


def heun_backward(grad, sigma, sigma_next, sigma_next_hat):
    """grad [N, D] -> the gradients of x, denoised, denoised_next and noise."""
    grads = tuple(like(grad) for _ in range(4))
    extension().heun_backward(grad, sigma, sigma_next, sigma_next_hat, *grads, _stream())
    return grads


def edm_forward(x, raw, sigma, sigma_data: float):
    """x, raw [N, D], sigma [N] float32 -> c_skip x + c_out raw [N, D]."""
    return extension().edm_forward(x, raw, sigma, like(x), sigma_data, _stream())


def edm_backward(grad, sigma, sigma_data: float):
    """grad [N, D] -> the gradients of x and raw."""
    grad_x, grad_raw = like(grad), like(grad)
    extension().edm_backward(grad, sigma, grad_x, grad_raw, sigma_data, _stream())
    return grad_x, grad_raw


PRIMITIVES = SimpleNamespace(ideal_forward=ideal_forward, ideal_backward=ideal_backward,
                             heun_forward=heun_forward, heun_backward=heun_backward,
                             edm_forward=edm_forward, edm_backward=edm_backward,
                             LEVELS=lambda dtype: torch.float32, BACKEND="cuda", DEVICE="cuda")


def ideal_denoiser(x, y, sigma):
    """D(x; sigma) = sum_i softmax_i(-|x - y_i|^2 / 2 sigma^2) y_i (Karras et al. 2022, eq. 2) as one
    CUDA streaming softmax. x [N, D], y [M, D], sigma [N] or a number -> [N, D]"""
    return ideal_denoiser_with(PRIMITIVES, x, y, sigma)


def heun_step(x, denoised, denoised_next, noise, sigma, sigma_next, sigma_next_hat):
    """One step of EDM's Algorithm 2 (Karras et al. 2022) as one fused CUDA kernel. x, denoised,
    denoised_next, noise [N, D]; sigma, sigma_next, sigma_next_hat [N] -> [N, D]"""
    return heun_step_with(PRIMITIVES, x, denoised, denoised_next, noise, sigma, sigma_next, sigma_next_hat)


def edm_output(x, raw, sigma, sigma_data: float = SIGMA_DATA):
    """D = c_skip x + c_out F (Karras et al. 2022, eq. 7) as one fused CUDA kernel. x, raw [N, D],
    sigma [N] -> [N, D]"""
    return edm_output_with(PRIMITIVES, x, raw, sigma, sigma_data)
