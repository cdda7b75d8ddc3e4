"""The course's streaming softmax / sparsemax over stored rows with CUDA kernels: the contract of
`course.streaming` (its `forward` and `backward`), shared by the CUDA backends of hopfield.retrieve,
hopfield.sparse_retrieve (h = 0, t_i = 1 / beta) and diffusion.ideal_denoiser (h = 1/2, t_i = sigma_i^2).

For queries x [N, D] and stored rows y [M, D], logit_ij = (x_i . y_j - h |y_j|^2) / t_i and
out_i = sum_j p_ij y_j, p_i = softmax(logit_i) (Ramsauer et al. 2020, eq. 3; Karras et al. 2022, eq. 2)
or sparsemax(logit_i) (Martins & Astudillo 2016, eq. 2). The kernels (`streaming_softmax.cu`: the forward, the
sparsemax threshold by a bitonic sort of each row on chip, the queries' gradient in two sweeps, the
stored rows' gradient) implement the algorithm of `kernels/triton_streaming.py` in CUDA C++;
`streaming_binding.cpp` exposes them to PyTorch. The extension is compiled by `torch.utils.cpp_extension`
on first use, which needs a CUDA build of PyTorch, nvcc and a GPU. The kernels compute in float32:
float32, float16 and bfloat16 rows; temperatures and statistics are float32 [N].

A family's CUDA module uses the primitives below as they are (`PRIMITIVE_FIELDS` into its PRIMITIVES)
and names this module in its `CUDA_MODULES`, so that the CPU emulator's fixture (tests/conftest.py)
emulates this extension too.
"""
import functools
from pathlib import Path

import torch

from course import outputs
from course.kernels.build import cuda_extension
from course.streaming import MAX_SPARSE_ROWS, SOFTMAX, SPARSEMAX, WEIGHTINGS

HERE = Path(__file__).parent
SOURCES = ("streaming_binding.cpp", "streaming_softmax.cu")


@functools.cache
def extension():
    """Compile (once, cached by PyTorch) and load the extension."""
    return cuda_extension("course_streaming_cuda", HERE, SOURCES)


def _stream() -> int:
    return torch.cuda.current_stream().cuda_stream


def _levels(N: int, like: torch.Tensor) -> torch.Tensor:
    """A float32 [N] output on like's device."""
    return outputs.empty((N,), dtype=torch.float32, device=like.device)


def _check_weighting(weighting: str):
    if weighting not in WEIGHTINGS:
        raise ValueError(f"cuda_streaming: `weighting` must be one of {WEIGHTINGS}; got {weighting!r}.")


def streaming_forward(x, y, temperature, norm_weight: float, weighting: str):
    """x [N, D], y [M, D] contiguous in one dtype, temperature [N] float32 contiguous -> out [N, D] in x's
    dtype and the statistics: (m [N], l [N]) float32 for "softmax", (tau [N],) for "sparsemax"
    (M <= MAX_SPARSE_ROWS)."""
    _check_weighting(weighting)
    N, M = x.shape[0], y.shape[0]
    out = outputs.empty(tuple(x.shape), dtype=x.dtype, device=x.device)
    h = float(norm_weight)
    if weighting == SOFTMAX:
        m, l = _levels(N, x), _levels(N, x)
        extension().streaming_forward(x, y, temperature, h, False, m, l, out, _stream())
        return out, (m, l)
    if M > MAX_SPARSE_ROWS:
        raise ValueError(f"cuda_streaming: sparsemax sorts one row of logits on chip, so M may be at most "
                         f"{MAX_SPARSE_ROWS}; got M = {M}.")
    tau = _levels(N, x)
    extension().sparsemax_threshold(x, y, temperature, h, tau, _stream())
    extension().streaming_forward(x, y, temperature, h, True, tau, tau, out, _stream())
    return out, (tau,)


def streaming_backward(x, y, temperature, norm_weight: float, weighting: str, stats, grad, need_y: bool):
    """The gradients from grad [N, D] = dL/d out, the statistics of `streaming_forward`: grad_x [N, D] in
    x's dtype and grad_y [M, D] in y's dtype, or None unless need_y (then the stored rows' kernel does not
    run)."""
    _check_weighting(weighting)
    stat0, stat1 = (stats[0], stats[1]) if weighting == SOFTMAX else (stats[0], stats[0])
    sparse, h = weighting == SPARSEMAX, float(norm_weight)
    grad_x = outputs.empty(tuple(x.shape), dtype=x.dtype, device=x.device)
    delta = _levels(x.shape[0], x)  # written by the queries' kernel, read by the stored rows'
    extension().streaming_backward_x(x, y, temperature, h, sparse, stat0, stat1, grad, grad_x, delta,
                                     _stream())
    if not need_y:
        return grad_x, None
    grad_y = outputs.empty(tuple(y.shape), dtype=y.dtype, device=y.device)
    extension().streaming_backward_y(x, y, temperature, h, sparse, stat0, stat1, delta, grad, grad_y,
                                     _stream())
    return grad_x, grad_y


# The fields a family's PRIMITIVES (kernels/hopfield/host.py's contract) takes from this module.
PRIMITIVE_FIELDS = dict(streaming_forward=streaming_forward, streaming_backward=streaming_backward,
                        LEVELS=lambda dtype: torch.float32, BACKEND="cuda", DEVICE="cuda")
