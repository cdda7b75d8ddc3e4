"""Rational activations: a learnable ratio of polynomials in place of a fixed nonlinearity.

Molina et al. 2020 ("Padé Activation Units", arXiv:1907.06732, eq. 2 and its "safe" form) and Delfosse et al.
2024 ("Adaptive Rational Activations to Boost Deep Reinforcement Learning", arXiv:2102.09407, section 2):

    R(x) = P(x) / Q(x),   P(x) = a_0 + a_1 x + ... + a_m x^m,   Q(x) = 1 + |b_1 x + ... + b_n x^n|

The absolute value keeps Q >= 1, so R has no pole anywhere, whatever the coefficients: the denominator
cannot vanish by construction. Both polynomials are evaluated by Horner's rule, P(x) = a_0 + x (a_1 +
x (a_2 + ...)), one multiply-add a degree. The coefficients are shared by every element of the tensor (one
activation per layer), initialised to approximate a known activation (leaky ReLU in the paper) by
`fit_rational`, and then learned with the network.

Derivatives (for the kernels' backward), with S(x) = sum_j b_j x^j and s = sign(S):
    dR/dx   = (P'(x) Q(x) - P(x) s S'(x)) / Q(x)^2
    dR/da_k = x^k / Q(x)
    dR/db_j = -P(x) s x^j / Q(x)^2

`rational` is the op `neurons.rational`'s reference; `rational_powers` is what a user writes without the
course (a stack of powers x^k, autograd's backward), the peer row of the benchmark.
"""
import torch

from course.checks import check_int, check_tensor
from course.precision import accumulating
from course.train import one_thread

DEGREES = (5, 4)  # (m, n): the degrees of Padé Activation Units and of the adaptive rational activations


def check_rational_args(where: str, x, numerator, denominator):
    """The op's argument checks, shared by every backend."""
    check_tensor(where, "x", x, kind="float")
    check_tensor(where, "numerator", numerator, ndim=1, kind="float")
    check_tensor(where, "denominator", denominator, ndim=1, kind="float")
    if numerator.numel() == 0:
        raise ValueError(f"{where}: `numerator` must hold a_0..a_m, at least one coefficient (degree m >= 0); "
                         "got none.")
    for name, t in (("numerator", numerator), ("denominator", denominator)):
        if t.dtype != x.dtype:
            raise TypeError(f"{where}: `{name}` must have x's dtype {x.dtype}; got {t.dtype}.")
        if t.device != x.device:
            raise ValueError(f"{where}: `{name}` must be on x's device {x.device}; got {t.device}.")


def horner(coefficients, x):
    """c_0 + c_1 x + ... + c_k x^k by Horner's rule; coefficients [k + 1] -> x's shape."""
    out = torch.zeros_like(x) + coefficients[-1]
    for c in coefficients.flip(0)[1:]:
        out = out * x + c
    return out


def safe_denominator(x, denominator):
    """Q(x) = 1 + |b_1 x + ... + b_n x^n| >= 1 (n = 0: Q = 1)."""
    if denominator.numel() == 0:
        return torch.ones_like(x)
    return 1 + (x * horner(denominator, x)).abs()


def rational(x, numerator, denominator):
    """R(x) = P(x) / (1 + |S(x)|), elementwise (Molina et al. 2020, the safe Padé activation unit).
    x [...], numerator a_0..a_m [m + 1], denominator b_1..b_n [n] -> x's shape"""
    check_rational_args("neurons.rational", x, numerator, denominator)
    xa, a, b = accumulating(x), accumulating(numerator), accumulating(denominator)
    return (horner(a, xa) / safe_denominator(xa, b)).to(x.dtype)


def rational_powers(x, numerator, denominator):
    """The same as a user writes it: the powers x^0..x^m stacked, two dot products, autograd. -> x's shape"""
    check_rational_args("neurons.rational_powers", x, numerator, denominator)
    xa, a, b = accumulating(x), accumulating(numerator), accumulating(denominator)
    m, n = a.numel() - 1, b.numel()
    powers = torch.stack([xa ** k for k in range(max(m, n) + 1)], dim=-1)  # [..., max(m, n) + 1]
    p = powers[..., :m + 1] @ a
    q = 1 + (powers[..., 1:n + 1] @ b).abs() if n else torch.ones_like(xa)
    return (p / q).to(x.dtype)


def fit_rational(fn, degrees: tuple[int, int] = DEGREES, lo: float = -3.0, hi: float = 3.0,
                 points: int = 2001, steps: int = 300, dtype=torch.float64):
    """Coefficients (numerator [m + 1], denominator [n]) of a rational that approximates fn on [lo, hi].

    First the linear least-squares problem P(x) - fn(x) (1 + S(x)) = 0 at `points` points (the classical
    linearised Padé fit), then `steps` of L-BFGS on the safe form's squared error, which the absolute value
    makes different from the linear one where S < 0. -> (numerator, denominator) in `dtype`"""
    m, n = degrees
    check_int("neurons.fit_rational", "m", m, low=0)
    check_int("neurons.fit_rational", "n", n, low=0)
    with one_thread():  # the same coefficients in every process, whatever its thread count
        return _fit(fn, m, n, lo, hi, points, steps, dtype)


def _fit(fn, m: int, n: int, lo: float, hi: float, points: int, steps: int, dtype):
    x = torch.linspace(lo, hi, points, dtype=dtype)
    y = fn(x)
    columns = torch.stack([x ** k for k in range(m + 1)] + [-y * x ** j for j in range(1, n + 1)], 1)
    # the normal equations, their sums by torch's own reductions and a tiny solve: LAPACK's least squares
    # on the tall matrix differs in the last bits with the BLAS's thread state, and training magnifies that
    gram = (columns[:, :, None] * columns[:, None, :]).sum(0)  # [m + n + 1, m + n + 1]
    solution = torch.linalg.solve(gram, (columns * y[:, None]).sum(0))
    a = solution[:m + 1].clone().requires_grad_()
    b = solution[m + 1:].clone().requires_grad_()
    optimizer = torch.optim.LBFGS([a, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = ((horner(a, x) / safe_denominator(x, b) - y) ** 2).mean()
        loss.backward()
        return loss

    optimizer.step(closure)
    return a.detach(), b.detach()
