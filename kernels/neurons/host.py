"""Host-side pieces shared by the Triton and the CUDA backends of neurons.rational, neurons.kan_linear and
neurons.phm_linear: the argument checks, the autograd Functions, and the contracts of the primitives.

A backend supplies primitives with these contracts (every tensor contiguous, in the op's dtype unless
said; ACC is float32 for half and single inputs, float64 for float64):
    rational_forward(x [E], numerator [m + 1], denominator [n]) -> y [E]
        y = P(x) / (1 + |S(x)|), Horner's rule for P and S (course.neurons.rational)
    rational_backward(x [E], numerator, denominator, grad [E]) -> grad_x [E], grad_numerator [m + 1],
        grad_denominator [n]; the coefficients' gradients are sums over all E elements, reduced per block
        into partial sums and those summed in a fixed order (deterministic), returned in the op's dtype
    kan_forward(x [B, I], base [I, O], coef [I, G + 3, O], grid_range) -> y [B, O]
        silu(x) @ base + sum_i basis_i(x) @ coef[i], the cubic basis on a uniform grid over
        [-grid_range, grid_range] evaluated on chip (course.neurons.kan): no [B, I, G + 3] tensor
    kan_backward(x, base, coef, grid_range, grad [B, O]) -> grad_x [B, I], grad_base [I, O],
        grad_coef [I, G + 3, O]
    phm_forward(x [B, I], A [n, n, n], F [n, I / n, O / n]) -> y [B, O]
        y_p = sum_i sum_r A_i[r, p] (x_r F_i) (course.neurons.phm): W = sum_i A_i (x) F_i never formed
    phm_backward(x, A, F, grad [B, O]) -> grad_x [B, I], grad_A [n, n, n], grad_F [n, I / n, O / n]
    BACKEND: its name in the registry; DEVICE: "cuda" for kernels that read device memory
The dtypes a backend runs are declared once, in the registry (course/neurons/ops.py), and checked here.
"""
import torch

from course.kernels.launch import check_backend, on_device
from course.neurons.kan import check_kan_linear_args
from course.neurons.phm import check_phm_args
from course.neurons.rational import check_rational_args


class RationalFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, numerator, denominator, prims):
        flat = x.contiguous().reshape(-1)
        a, b = numerator.contiguous(), denominator.contiguous()
        ctx.save_for_backward(flat, a, b)
        ctx.prims, ctx.shape = prims, x.shape
        return prims.rational_forward(flat, a, b).reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        flat, a, b = ctx.saved_tensors
        grad_x, grad_a, grad_b = ctx.prims.rational_backward(flat, a, b, grad.contiguous().reshape(-1))
        return grad_x.reshape(ctx.shape), grad_a, grad_b, None


class KanLinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, base, coef, grid_range, prims):
        x, base, coef = x.contiguous(), base.contiguous(), coef.contiguous()
        ctx.save_for_backward(x, base, coef)
        ctx.grid_range, ctx.prims = grid_range, prims
        return prims.kan_forward(x, base, coef, grid_range)

    @staticmethod
    def backward(ctx, grad):
        x, base, coef = ctx.saved_tensors
        grads = ctx.prims.kan_backward(x, base, coef, ctx.grid_range, grad.contiguous())
        return (*grads, None, None)


class PhmLinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, A, F, prims):
        x, A, F = x.contiguous(), A.contiguous(), F.contiguous()
        ctx.save_for_backward(x, A, F)
        ctx.prims = prims
        return prims.phm_forward(x, A, F)

    @staticmethod
    def backward(ctx, grad):
        x, A, F = ctx.saved_tensors
        return (*ctx.prims.phm_backward(x, A, F, grad.contiguous()), None)


def rational_with(prims, x, numerator, denominator):
    where = "neurons.rational"
    check_rational_args(where, x, numerator, denominator)
    check_backend(where, prims.BACKEND, "x", x)
    with on_device(where, prims, x):
        return RationalFunction.apply(x, numerator, denominator, prims)


def kan_linear_with(prims, x, base, coef, grid_range=1.0):
    where = "neurons.kan_linear"
    check_kan_linear_args(where, x, base, coef, grid_range)
    check_backend(where, prims.BACKEND, "x", x)
    with on_device(where, prims, x):
        return KanLinearFunction.apply(x, base, coef, float(grid_range), prims)


def phm_linear_with(prims, x, A, F):
    where = "neurons.phm_linear"
    check_phm_args(where, x, A, F)
    check_backend(where, prims.BACKEND, "x", x)
    with on_device(where, prims, x):
        return PhmLinearFunction.apply(x, A, F, prims)
