"""neurons.rational, neurons.kan_linear and neurons.phm_linear with CUDA kernels: the contracts of
`course.neurons.rational.rational`, `course.neurons.kan.kan_linear` and `course.neurons.phm.phm_linear`,
forward and backward (the primitives of `course.kernels.neurons.host`).

The kernels: `neurons_rational.cu` (the safe rational activation of Molina et al. 2020,
arXiv:1907.06732, eq. 2, by Horner's rule; the coefficients' gradients as per-block partial sums),
`neurons_kan.cu` (the cubic B-spline KAN layer of Liu et al. 2024, arXiv:2404.19756, eq. 2.10: the four
nonzero splines of each input evaluated in shared memory and contracted with coef, no [B, I, G + 3]
basis), `neurons_phm.cu` (the PHM layer of Zhang et al. 2021, arXiv:2102.08597, eq. 4:
y_p = sum_i (sum_r A_i[r, p] x_r) F_i, W never formed). `neurons_binding.cpp` exposes them to PyTorch;
`host` checks the arguments and holds the autograd Functions. The extension is compiled by
`torch.utils.cpp_extension` on first use, which needs a CUDA build of PyTorch, nvcc and a GPU.
float32, float16 and bfloat16 tensors, float32 arithmetic; every sum runs in a fixed order
(deterministic gradients, no atomics).
"""
import functools
from pathlib import Path
from types import SimpleNamespace

import torch

from course import outputs
from course.kernels.build import cuda_extension
from course.kernels.neurons.host import kan_linear_with, phm_linear_with, rational_with
from course.neurons.kan import check_kan_linear_args
from course.neurons.phm import check_phm_args
from course.neurons.rational import check_rational_args

HERE = Path(__file__).parent
SOURCES = ("neurons_binding.cpp", "neurons_rational.cu", "neurons_kan.cu", "neurons_phm.cu")

MAX_NUMERATOR_DEGREE = 15  # kMaxNumerator - 1 in neurons_kernels.h: the gradients' sums sit in registers
MAX_DENOMINATOR_DEGREE = 16  # kMaxDenominator
LANES = 32  # kKanLanes, kPhmLanes: output columns a block
MAX_GRID_Y = 65535  # the launch grid's y holds the output tiles (and the KAN coefficient-row tiles)


@functools.cache
def extension():
    """Compile (once, cached by PyTorch) and load the extension."""
    return cuda_extension("course_neurons_cuda", HERE, SOURCES)


def _stream() -> int:
    return torch.cuda.current_stream().cuda_stream


def _empty(like: torch.Tensor, shape=None, dtype=None) -> torch.Tensor:
    shape = tuple(like.shape) if shape is None else shape
    return outputs.empty(shape, dtype=like.dtype if dtype is None else dtype, device=like.device)


def _tiles(size: int) -> int:
    return -(-size // LANES)


def rational_forward(x, numerator, denominator):
    """y [E] = P(x) / (1 + |S(x)|), a thread an element."""
    y = _empty(x)
    extension().rational_forward(x, numerator, denominator, y, _stream())
    return y


def rational_backward(x, numerator, denominator, grad):
    """-> grad_x [E], grad_numerator [m + 1], grad_denominator [n] in x's dtype; the coefficients'
    gradients are the sums of the kernel's float32 per-block partials [blocks, m + 1 + n]."""
    m1, n = numerator.numel(), denominator.numel()
    grad_x = _empty(x)
    if x.numel() == 0:
        partial = torch.zeros((1, m1 + n), dtype=torch.float32, device=x.device)
    else:
        blocks = extension().rational_backward_rows(x.numel())
        partial = outputs.empty((blocks, m1 + n), dtype=torch.float32, device=x.device)
        extension().rational_backward(x, numerator, denominator, grad, grad_x, partial, _stream())
    total = partial.sum(0).to(x.dtype)
    return grad_x, total[:m1].clone(), total[m1:].clone()


def kan_forward(x, base, coef, grid_range):
    """y [B, O] = silu(x) base + sum_i basis_i(x) coef[i], the basis on chip."""
    y = _empty(x, (x.shape[0], base.shape[1]))
    extension().kan_forward(x, base, coef, float(grid_range), y, _stream())
    return y


def kan_backward(x, base, coef, grid_range, grad):
    """-> grad_x [B, I], grad_base [I, O], grad_coef [I, G + 3, O] in x's dtype."""
    grad_x, grad_base, grad_coef = _empty(x), _empty(base), _empty(coef)
    extension().kan_backward(x, base, coef, float(grid_range), grad, grad_x, grad_base, grad_coef, _stream())
    return grad_x, grad_base, grad_coef


def phm_forward(x, A, F):
    """y [B, O] = x (sum_i A_i (x) F_i), W never formed."""
    y = _empty(x, (x.shape[0], F.shape[0] * F.shape[2]))
    extension().phm_forward(x, A, F, y, _stream())
    return y


def phm_backward(x, A, F, grad):
    """-> grad_x [B, I], grad_A [n, n, n], grad_F [n, I / n, O / n] in x's dtype, through the float32
    workspace grad_W = x^T grad [I, O]."""
    grad_x, grad_A, grad_F = _empty(x), _empty(A), _empty(F)
    grad_W = torch.empty((x.shape[1], grad.shape[1]), dtype=torch.float32, device=x.device)
    extension().phm_backward(x, A, F, grad, grad_x, grad_A, grad_F, grad_W, _stream())
    return grad_x, grad_A, grad_F


PRIMITIVES = SimpleNamespace(rational_forward=rational_forward, rational_backward=rational_backward,
                             kan_forward=kan_forward, kan_backward=kan_backward,
                             phm_forward=phm_forward, phm_backward=phm_backward,
                             BACKEND="cuda", DEVICE="cuda")


def check_rational_kernel_limits(where: str, numerator, denominator):
    """The degrees whose gradient sums the kernel's registers hold, named."""
    m, n = numerator.numel() - 1, denominator.numel()
    if m > MAX_NUMERATOR_DEGREE or n > MAX_DENOMINATOR_DEGREE:
        raise ValueError(f"{where} (cuda backend): the degrees (m, n) may be at most "
                         f"({MAX_NUMERATOR_DEGREE}, {MAX_DENOMINATOR_DEGREE}) (the coefficients' gradient "
                         "sums are held in registers); "
                         f"got ({m}, {n}). Use backend='reference'.")


def check_grid_limit(where: str, name: str, tiles: int):
    if tiles > MAX_GRID_Y:
        raise ValueError(f"{where} (cuda backend): {name} needs {tiles} tiles on the launch grid's y, at "
                         f"most {MAX_GRID_Y}. Use backend='reference'.")


def rational(x, numerator, denominator):
    """R(x) = P(x) / (1 + |b_1 x + ... + b_n x^n|) (Molina et al. 2020, arXiv:1907.06732, eq. 2, safe
    form), a CUDA thread an element; the coefficients' gradients summed per block, then over the blocks
    in a fixed order. x [...], numerator [m + 1], denominator [n] -> x's shape"""
    check_rational_args("neurons.rational", x, numerator, denominator)
    check_rational_kernel_limits("neurons.rational", numerator, denominator)
    return rational_with(PRIMITIVES, x, numerator, denominator)


def kan_linear(x, base, coef, grid_range: float = 1.0):
    """out_o = sum_i w_io silu(x_i) + sum_i sum_c c_ioc B_c(x_i) (Liu et al. 2024, arXiv:2404.19756,
    eq. 2.10), the four nonzero cubic splines of each input evaluated on chip. x [B, I], base [I, O],
    coef [I, G + 3, O] -> [B, O]"""
    where = "neurons.kan_linear"
    check_kan_linear_args(where, x, base, coef, grid_range)
    check_grid_limit(where, "the outputs O", _tiles(base.shape[1]))
    check_grid_limit(where, "the coefficient rows G + 4", -(-(coef.shape[1] + 1) // 8))
    return kan_linear_with(PRIMITIVES, x, base, coef, grid_range)


def phm_linear(x, A, F):
    """y = x (sum_i A_i (x) F_i) (Zhang et al. 2021, arXiv:2102.08597, eq. 4), W never formed.
    x [B, I], A [n, n, n], F [n, I / n, O / n] -> [B, O]"""
    where = "neurons.phm_linear"
    check_phm_args(where, x, A, F)
    n, In, On = F.shape
    check_grid_limit(where, "n times the tiles of O / n", n * _tiles(On))
    check_grid_limit(where, "n times the tiles of I / n", n * _tiles(In))
    check_grid_limit(where, "the tiles of O", _tiles(n * On))
    return phm_linear_with(PRIMITIVES, x, A, F)
