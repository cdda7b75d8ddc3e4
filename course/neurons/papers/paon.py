"""Padé neurons (Paons): each neuron a ratio of polynomials of its inputs, with no separate activation.

Keleş and Tekalp 2024, "PAON: A New Neuron Model using Padé Approximants" (arXiv:2403.11791), the Paon
model of its method section. A McCulloch-Pitts neuron is linear, y = b + sum_i w_i x_i, with the
nonlinearity left to a pointwise activation. A Padé neuron is nonlinear by itself: a Padé approximant
[m/n], a polynomial of degree m over one of degree n, in its inputs' powers,

    y_o = P_o(x) / (1 + |S_o(x)|),   P_o(x) = b_o + sum_{k=1..m} sum_i A[k, i, o] x_i^k,
                                     S_o(x) = sum_{k=1..n} sum_i C[k, i, o] x_i^k,

the polynomial feature maps x^k taken elementwise (the paper's PadéConv convolves each power of the feature
maps; here a dense layer, the same computation on vectors). The denominator is the safe form of Padé
activation units (`course.neurons.rational`): 1 + |S| >= 1, so a Paon has no pole for any weights. The
model contains the others as special cases: m = 1, n = 0 is the linear neuron (A[1] = W), n = 0 a
generative (polynomial) neuron, a diagonal A and C with one input the Padé activation unit of a single
input. A Paon layer of I inputs and O outputs holds (m + n) I O + O parameters.

The toy (`paon_experiment`, a reproduction): function approximation with one hidden layer of HIDDEN Paons
and a linear read-out, against a standard net (linear + ReLU, then linear) widened to the smallest width
whose parameter count is at least the Paon net's (equal parameter count; the standard net is never the
smaller). Two targets, chosen before any run: 1-D, sin(3x) exp(-x^2 / 4) + 0.3 x on [-2, 2]; 2-D,
sin(pi x_1) cos(pi x_2) on [-1, 1]^2. Both nets train STEPS steps of Adam with a linearly decaying rate
on 256 random points; the error is the relative MSE on held-out points. The paper's 8x8 -> 16x16
super-resolution is not run here.
"""
import functools
import math

import torch
from torch import nn

from course.checks import check_int, check_tensor
from course.claims import REPRODUCTION, Claim
from course.metrics import parameter_count, relative_mse
from course.train import DecayingAdam, fit, one_thread, seeded

DEGREES = (3, 2)  # (m, n): the Padé approximant's orders
HIDDEN, STEPS, LR, TRAIN_POINTS = 8, 400, 0.02, 256


def polynomial_features(x, degree: int):
    """The elementwise powers x^1 .. x^degree. x [N, I] -> [degree, N, I] (degree 0: [0, N, I])."""
    check_tensor("neurons.paon.polynomial_features", "x", x, ndim=2, kind="float")
    check_int("neurons.paon.polynomial_features", "degree", degree, low=0)
    if degree == 0:
        return x.new_zeros((0, *x.shape))
    return torch.stack([x ** k for k in range(1, degree + 1)])


def check_pade_args(where: str, x, numerator, bias, denominator):
    check_tensor(where, "x", x, ndim=2, kind="float")
    check_tensor(where, "numerator", numerator, ndim=3, kind="float")
    check_tensor(where, "bias", bias, ndim=1, kind="float")
    check_tensor(where, "denominator", denominator, ndim=3, kind="float")
    m, inputs, outputs = numerator.shape
    if m == 0:
        raise ValueError(f"{where}: `numerator` must hold A[1..m] with m >= 1, shape [m, I, O]; got shape "
                         f"{tuple(numerator.shape)}.")
    if inputs != x.shape[1]:
        raise ValueError(f"{where}: `numerator` must have I = x.shape[1] = {x.shape[1]} inputs, shape "
                         f"[m, I, O]; got shape {tuple(numerator.shape)}.")
    if tuple(bias.shape) != (outputs,):
        raise ValueError(f"{where}: `bias` must have shape [O] = ({outputs},); got {tuple(bias.shape)}.")
    if tuple(denominator.shape[1:]) != (inputs, outputs):
        raise ValueError(f"{where}: `denominator` must have shape [n, I, O] = [n, {inputs}, {outputs}]; got "
                         f"{tuple(denominator.shape)}.")


def pade_neuron(x, numerator, bias, denominator):
    """A layer of Padé neurons: P(x) / (1 + |S(x)|) over the inputs' powers (the module docstring).
    x [N, I], numerator A [m, I, O], bias b [O], denominator C [n, I, O] (n may be 0) -> [N, O]"""
    check_pade_args("neurons.paon.pade_neuron", x, numerator, bias, denominator)
    m, n = numerator.shape[0], denominator.shape[0]
    powers = polynomial_features(x, max(m, n))  # [K, N, I]
    p = torch.einsum("kni,kio->no", powers[:m], numerator) + bias
    if n == 0:
        return p
    return p / (1 + torch.einsum("kni,kio->no", powers[:n], denominator).abs())


def pade_parameters(d_in: int, d_out: int, degrees: tuple[int, int] = DEGREES) -> int:
    """(m + n) I O + O: the parameter count of a PadeLinear layer."""
    m, n = degrees
    return (m + n) * d_in * d_out + d_out


class PadeLinear(nn.Module):
    """A dense layer of Padé neurons of orders `degrees` = (m, n): [N, d_in] -> [N, d_out].

    Initialisation: A[k] and C[k] uniform in +-1 / (k sqrt(d_in)) (the k-th power's weights shrink with k,
    so the layer starts near a linear one of PyTorch's default scale), b uniform in +-1 / sqrt(d_in)."""

    def __init__(self, d_in: int, d_out: int, degrees: tuple[int, int] = DEGREES,
                 generator: torch.Generator | None = None):
        super().__init__()
        check_int("neurons.paon.PadeLinear", "d_in", d_in, low=1)
        check_int("neurons.paon.PadeLinear", "d_out", d_out, low=1)
        m, n = degrees
        check_int("neurons.paon.PadeLinear", "m", m, low=1)
        check_int("neurons.paon.PadeLinear", "n", n, low=0)
        bound = d_in ** -0.5

        def uniform(*shape):
            return (2 * torch.rand(*shape, generator=generator) - 1) * bound

        def per_power(degree):
            return (uniform(degree, d_in, d_out) / torch.arange(1, degree + 1).view(-1, 1, 1))

        self.numerator = nn.Parameter(per_power(m))
        self.bias = nn.Parameter(uniform(d_out))
        self.denominator = nn.Parameter(per_power(n))

    @classmethod
    def from_linear(cls, linear: nn.Linear, degrees: tuple[int, int] = DEGREES) -> "PadeLinear":
        """The Padé layer that computes `linear` exactly: A[1] = W^T, b = linear's bias, every other
        coefficient 0 (the linear neuron is the Paon of orders [1/0])."""
        layer = cls(linear.in_features, linear.out_features, degrees)
        with torch.no_grad():
            layer.numerator.zero_()
            layer.numerator[0] = linear.weight.T
            layer.bias.copy_(linear.bias if linear.bias is not None else torch.zeros(linear.out_features))
            layer.denominator.zero_()
        return layer

    def forward(self, x):
        return pade_neuron(x, self.numerator, self.bias, self.denominator)


def paon_net(d_in: int, hidden: int = HIDDEN, degrees: tuple[int, int] = DEGREES) -> nn.Sequential:
    """d_in -> `hidden` Padé neurons -> a linear read-out to 1. x [N, d_in] -> [N, 1]"""
    return nn.Sequential(PadeLinear(d_in, hidden, degrees), nn.Linear(hidden, 1))


def relu_net(d_in: int, width: int) -> nn.Sequential:
    """The standard neuron: d_in -> Linear(width) -> ReLU -> Linear(1). x [N, d_in] -> [N, 1]"""
    check_int("neurons.paon.relu_net", "width", width, low=1)
    return nn.Sequential(nn.Linear(d_in, width), nn.ReLU(), nn.Linear(width, 1))


def relu_parameters(d_in: int, width: int) -> int:
    return (d_in + 2) * width + 1


def matched_width(d_in: int, parameters: int) -> int:
    """The smallest width whose `relu_net(d_in, width)` has at least `parameters` parameters."""
    check_int("neurons.paon.matched_width", "d_in", d_in, low=1)
    check_int("neurons.paon.matched_width", "parameters", parameters, low=1)
    return max(1, math.ceil((parameters - 1) / (d_in + 2)))


def bump_1d(x):
    """sin(3x) exp(-x^2 / 4) + 0.3 x. [N, 1] -> [N, 1]"""
    return torch.sin(3 * x) * torch.exp(-x ** 2 / 4) + 0.3 * x


def wave_2d(x):
    """sin(pi x_1) cos(pi x_2). [N, 2] -> [N, 1]"""
    return torch.sin(math.pi * x[:, :1]) * torch.cos(math.pi * x[:, 1:])


def approximation_tasks(seed: int, points: int = TRAIN_POINTS) -> dict:
    """name -> (x_train, y_train, x_test, y_test): '1d' (uniform on [-2, 2], tested on a 401-point grid) and
    '2d' (uniform on [-1, 1]^2, tested on 1024 other uniform points)."""
    check_int("neurons.paon.approximation_tasks", "points", points, low=2)
    g = torch.Generator().manual_seed(seed)
    x1 = 4 * torch.rand(points, 1, generator=g) - 2
    x1_test = torch.linspace(-2, 2, 401)[:, None]
    x2 = 2 * torch.rand(points, 2, generator=g) - 1
    x2_test = 2 * torch.rand(1024, 2, generator=g) - 1
    return {"1d": (x1, bump_1d(x1), x1_test, bump_1d(x1_test)),
            "2d": (x2, wave_2d(x2), x2_test, wave_2d(x2_test))}


def train_and_test(model: nn.Module, task, seed: int, steps: int = STEPS, lr: float = LR) -> float:
    """Adam with a decaying rate on the relative MSE of the training points -> the test relative MSE."""
    x, y, x_test, y_test = task
    variance = y.var(correction=0)
    fit(model.parameters(), lambda: (model(x) - y).pow(2).mean() / variance, steps, lr, seed=seed,
        optimizer=DecayingAdam, total=steps, desc="paon")
    with torch.no_grad():
        return relative_mse(model(x_test), y_test)


@functools.lru_cache(maxsize=3)
@one_thread()
def paon_experiment(seed: int) -> dict:
    """The Paon net against the standard net of equal parameter count on the 1-D and 2-D targets."""
    check_int("neurons.paon.paon_experiment", "seed", seed, low=0)
    out = {}
    for name, task in approximation_tasks(seed).items():
        d_in = task[0].shape[1]
        with seeded(seed):
            paon = paon_net(d_in)
        width = matched_width(d_in, parameter_count(paon))
        with seeded(seed):
            standard = relu_net(d_in, width)
        out[f"paon_{name}_mse"] = train_and_test(paon, task, seed)
        out[f"relu_{name}_mse"] = train_and_test(standard, task, seed)
        out[f"paon_{name}_parameters"] = float(parameter_count(paon))
        out[f"relu_{name}_parameters"] = float(parameter_count(standard))
        out[f"relu_{name}_width"] = float(width)
        out[f"paon_over_relu_{name}"] = out[f"paon_{name}_mse"] / out[f"relu_{name}_mse"]
    out["parameter_gap"] = min(out[f"relu_{k}_parameters"] - out[f"paon_{k}_parameters"]
                               for k in ("1d", "2d"))
    out["parameter_excess"] = max(out[f"relu_{k}_parameters"] / out[f"paon_{k}_parameters"] - 1
                                  for k in ("1d", "2d"))
    return out


CLAIM = Claim(
    paper="Keleş and Tekalp 2024",
    citation="PAON: A New Neuron Model using Padé Approximants (arXiv:2403.11791), the Paon model and its "
             "comparison with standard neurons",
    statement="a network of Padé neurons approximates functions better than the same network of standard "
              "neurons (linear + ReLU) at an equal parameter count",
    kind=REPRODUCTION,
    experiment=paon_experiment,
    thresholds=("paon_over_relu_1d <= 0.5", "paon_over_relu_2d <= 1", "parameter_gap >= 0",
                "parameter_excess <= 0.05"),
    summary=lambda m: (
        f"test relative MSE, 1-D: {m['paon_1d_mse']:.2g} with {HIDDEN} Paons ({m['paon_1d_parameters']:.0f} "
        f"parameters) against {m['relu_1d_mse']:.2g} with {m['relu_1d_width']:.0f} ReLU units "
        f"({m['relu_1d_parameters']:.0f}), ratio {m['paon_over_relu_1d']:.2f}; 2-D: {m['paon_2d_mse']:.2g} "
        f"against {m['relu_2d_mse']:.2g} ({m['paon_2d_parameters']:.0f} and {m['relu_2d_parameters']:.0f} "
        f"parameters), ratio {m['paon_over_relu_2d']:.2f}"),
    held_on=(),
    note="Half of it holds: on the 1-D target the Paons' test error is 17-60x below the standard net's on "
         "seeds 0-2 (ratio 0.016-0.056), but on the 2-D target sin(pi x_1) cos(pi x_2) it is 5-77% above it "
         "(ratio 1.05-1.77), so the claim as stated (better on both) is not reproduced. A Paon's numerator "
         "and denominator are sums of one-input polynomials (elementwise powers, no cross terms), so the "
         "product of two inputs a separable 2-D target needs must come from the division and the read-out; "
         "one layer of 8 Paons does that worse than 24 ReLU units. The setup and thresholds were fixed on "
         "trial seeds before seeds 0-2 were run, and are left as they are.",
)
