"""neurons.rational, neurons.kan_linear and neurons.phm_linear with Triton kernels: the contracts of
`course.neurons.rational.rational`, `course.neurons.kan.kan_linear` and `course.neurons.phm.phm_linear`,
forward and backward.

The kernels are in `triton_rational` (Horner's rule, the coefficients' gradients reduced per block),
`triton_kan` (the cubic basis evaluated and contracted on chip) and `triton_phm` (the Kronecker-
structured matmul, W never formed); `host` checks the arguments and holds the autograd Functions.
"""
from types import SimpleNamespace

from course.kernels.neurons import triton_kan, triton_phm, triton_rational
from course.kernels.neurons.host import kan_linear_with, phm_linear_with, rational_with

PRIMITIVES = SimpleNamespace(
    rational_forward=triton_rational.rational_forward,
    rational_backward=triton_rational.rational_backward,
    kan_forward=triton_kan.kan_forward,
    kan_backward=triton_kan.kan_backward,
    phm_forward=triton_phm.phm_forward,
    phm_backward=triton_phm.phm_backward,
    BACKEND="triton",
)


def rational(x, numerator, denominator):
    """R(x) = P(x) / (1 + |b_1 x + ... + b_n x^n|) (Molina et al. 2020, arXiv:1907.06732, eq. 2, safe form)
    as one fused Triton kernel, elementwise. x [...], numerator [m + 1], denominator [n] -> x's shape"""
    return rational_with(PRIMITIVES, x, numerator, denominator)


def kan_linear(x, base, coef, grid_range: float = 1.0):
    """out_o = sum_i w_io silu(x_i) + sum_i sum_c c_ioc B_c(x_i) (Liu et al. 2024, arXiv:2404.19756,
    eq. 2.10), the cubic basis formed on chip. x [B, I], base [I, O], coef [I, G + 3, O] -> [B, O]"""
    return kan_linear_with(PRIMITIVES, x, base, coef, grid_range)


def phm_linear(x, A, F):
    """y = x (sum_i A_i (x) F_i) (Zhang et al. 2021, arXiv:2102.08597, eq. 4), W never formed.
    x [B, I], A [n, n, n], F [n, I / n, O / n] -> [B, O]"""
    return phm_linear_with(PRIMITIVES, x, A, F)
