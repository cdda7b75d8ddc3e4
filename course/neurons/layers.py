"""The family's layers as modules, each over its op (backend "auto": the reference on a CPU, the kernels
where they run): a learnable rational activation, the B-spline KAN layer (which the mixture-of-experts
family's KAMoE gate imports), the PHM layer, and the quadratic neuron.

Shapes: x [N, I] -> [N, O]; the rational activation keeps x's shape.
"""
import functools

import torch
import torch.nn.functional as F
from torch import nn

from course.checks import check_int
from course.neurons import ops
from course.neurons.kan import ORDER, b_spline_basis, uniform_knots
from course.neurons.rational import DEGREES, fit_rational


@functools.lru_cache(maxsize=None)
def backend(op_name: str, device: str, dtype: torch.dtype):
    """The op's backend that `auto` picks for (device, dtype), resolved once."""
    return getattr(ops, op_name).resolve("auto", device, dtype).load()


def leaky_relu(x):
    """The paper's initial shape: leaky ReLU with slope 0.01 (Delfosse et al. 2024, section 2)."""
    return F.leaky_relu(x, 0.01)


@functools.lru_cache(maxsize=None)
def initial_coefficients(init, degrees: tuple[int, int]):
    """`fit_rational(init, degrees)`, fitted once per activation and degrees (a fit takes a fraction of a
    second; every module built with them copies the result)."""
    return fit_rational(init, degrees)


class RationalActivation(nn.Module):
    """R(x) = P(x) / (1 + |S(x)|) with learnable coefficients (Delfosse et al. 2024, section 2), initialised by
    `fit_rational` to approximate `init` on [-3, 3] (leaky ReLU by default)."""

    def __init__(self, init=leaky_relu, degrees: tuple[int, int] = DEGREES):
        super().__init__()
        numerator, denominator = initial_coefficients(init, tuple(degrees))
        self.numerator = nn.Parameter(numerator.float().clone())
        self.denominator = nn.Parameter(denominator.float().clone())

    def forward(self, x):
        return backend("rational", str(x.device), x.dtype)(x, self.numerator.to(x.dtype),
                                                           self.denominator.to(x.dtype))


class KANLayer(nn.Module):
    """The Kolmogorov-Arnold layer (Liu et al. 2024, eqs. 2.10-2.12): out_j = sum_i w_ij silu(x_i) +
    spline_ij(x_i), B-splines of `order` on a uniform grid of `grid_size` intervals over [-R, R] (w_s folded
    into the spline coefficients). Cubic splines run through the op `neurons.kan_linear`; other orders through
    Cox-de Boor's recursion."""

    def __init__(self, d_in: int, d_out: int, grid_size: int = 5, order: int = ORDER,
                 grid_range: float = 3.0, generator: torch.Generator | None = None):
        super().__init__()
        check_int("neurons.KANLayer", "d_in", d_in, low=1)
        check_int("neurons.KANLayer", "d_out", d_out, low=1)
        self.register_buffer("grid", uniform_knots(grid_size, order, grid_range))  # [G + 2 order + 1]
        self.order, self.grid_range = order, float(grid_range)
        self.base = nn.Parameter(torch.randn(d_in, d_out, generator=generator) / d_in ** 0.5)
        self.coef = nn.Parameter(0.1 * torch.randn(d_in, grid_size + order, d_out,
                                                   generator=generator) / d_in ** 0.5)

    def forward(self, x):
        """x [N, d_in] -> [N, d_out]"""
        if self.order == ORDER:
            return backend("kan_linear", str(x.device), x.dtype)(x, self.base, self.coef, self.grid_range)
        spline = torch.einsum("nic,ico->no", b_spline_basis(x, self.grid, self.order), self.coef)
        return F.silu(x) @ self.base + spline


class PHMLinear(nn.Module):
    """y = x W + b with W = sum_i A_i (x) F_i (Zhang et al. 2021, eq. 4): n^3 + I O / n weights."""

    def __init__(self, d_in: int, d_out: int, n: int, generator: torch.Generator | None = None):
        super().__init__()
        check_int("neurons.PHMLinear", "n", n, low=1)
        if d_in % n or d_out % n:
            raise ValueError(f"neurons.PHMLinear: n must divide both widths; got d_in={d_in}, d_out={d_out}, "
                             f"n={n}.")
        self.A = nn.Parameter(torch.randn(n, n, n, generator=generator) / n ** 0.5)
        self.F = nn.Parameter(torch.randn(n, d_in // n, d_out // n, generator=generator) / d_in ** 0.5)
        self.bias = nn.Parameter(torch.zeros(d_out))

    def forward(self, x):
        return backend("phm_linear", str(x.device), x.dtype)(x, self.A, self.F) + self.bias


class QuadraticLinear(nn.Module):
    """Quadratic neurons (Fan et al. 2023, "On Expressivity and Trainability of Quadratic Networks",
    arXiv:2110.06081, eq. 1): y = (x W_r + b_r) * (x W_g + b_g) + (x * x) W_b + c. With W_g = 0, b_g = 1,
    W_b = 0 it is a linear neuron: ReLinear's initialisation (section 4) starts there."""

    def __init__(self, d_in: int, d_out: int, generator: torch.Generator | None = None):
        super().__init__()
        scale = d_in ** -0.5
        self.r = nn.Linear(d_in, d_out)
        self.g = nn.Linear(d_in, d_out)
        self.b = nn.Linear(d_in, d_out)
        with torch.no_grad():
            self.r.weight.copy_(torch.randn(d_out, d_in, generator=generator) * scale)
            self.r.bias.zero_()
            self.g.weight.zero_()  # ReLinear: the quadratic terms start at zero, the neuron linear
            self.g.bias.fill_(1.0)
            self.b.weight.zero_()
            self.b.bias.zero_()

    def forward(self, x):
        return self.r(x) * self.g(x) + self.b(x * x)

    def quadratic_parameters(self):
        """W_g, b_g, W_b, b_b: the parameters ReLinear trains with a smaller learning rate."""
        return [*self.g.parameters(), *self.b.parameters()]

    def linear_parameters(self):
        return list(self.r.parameters())
