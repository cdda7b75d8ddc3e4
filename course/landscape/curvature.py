"""Curvature of the loss: Hessian-vector products, and the top Hessian eigenvalue (the sharpness).

The Hessian H = d^2 L / d theta^2 of a network is [P, P], too large to form; every estimate here
uses only products H v. Pearlmutter 1994 ("Fast exact multiplication by the Hessian"): H v is the
directional derivative of the gradient along v, one forward-mode pass through the backward pass
(`hvp`: torch.func's jvp of grad, "forward-over-reverse"), at the cost of about two gradients. The
textbook alternative differentiates the scalar g . v a second time (`hvp_double_backward`).

The sharpness, the largest eigenvalue lambda_max of H, is what the edge-of-stability analysis compares
with 2 / eta (Cohen et al. 2021; Rosenfeld and Risteski 2023, "Outliers with Opposing Signals"):
`top_eigenvalue` finds it by power iteration on v <- H v / |H v|, and `lanczos` by the Lanczos
tridiagonalisation, whose extreme Ritz values converge in far fewer products.
"""
import torch
from torch.func import grad, jvp

from course.checks import check_int, check_shape, check_tensor
from course.landscape.models import check_widths, mlp_loss, parameter_count


def check_hvp_args(where: str, x, labels, theta, v, widths) -> tuple:
    """The op's argument checks, shared by every backend; returns widths as a tuple."""
    widths = check_widths(where, widths)
    check_tensor(where, "x", x, ndim=2, kind="float")
    check_tensor(where, "labels", labels, ndim=1, kind="int")
    for name, t in (("theta", theta), ("v", v)):
        check_tensor(where, name, t, ndim=1, kind="float")
        check_shape(where, name, t, (parameter_count(widths),), "[P]")
        if t.dtype != x.dtype:
            raise TypeError(f"{where}: `{name}` must have x's dtype {x.dtype}; got {t.dtype}.")
    if x.shape[1] != widths[0]:
        raise ValueError(f"{where}: `x` [N, I] must have I = widths[0] = {widths[0]} features; "
                         f"got shape {tuple(x.shape)}.")
    check_shape(where, "labels", labels, (x.shape[0],), "[N]")
    if x.shape[0] == 0:
        raise ValueError(f"{where}: `x` must hold at least one example; got shape (0, I).")
    if labels.min() < 0 or labels.max() >= widths[-1]:
        raise ValueError(f"{where}: `labels` must be in [0, C) = [0, {widths[-1]}); got values from "
                         f"{labels.min().item()} to {labels.max().item()}.")
    return widths


def hvp(x, labels, theta, v, widths) -> torch.Tensor:
    """H v [P] of the mean cross-entropy at theta [P], by forward-over-reverse (jvp of grad)."""
    widths = check_hvp_args("landscape.hvp", x, labels, theta, v, widths)
    gradient = grad(lambda t: mlp_loss(t, x, labels, widths))
    return jvp(gradient, (theta,), (v,))[1]


def hvp_double_backward(x, labels, theta, v, widths) -> torch.Tensor:
    """H v [P] by differentiating g(theta) . v a second time (reverse-over-reverse)."""
    widths = check_hvp_args("landscape.hvp_double_backward", x, labels, theta, v, widths)
    with torch.enable_grad():
        t = theta.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(mlp_loss(t, x, labels, widths), t, create_graph=True)
        (hv,) = torch.autograd.grad(g @ v, t, create_graph=v.requires_grad or theta.requires_grad)
    return hv


def hessian_operator(x, labels, theta, widths, backend: str = "auto"):
    """v -> H v at theta, through the op (`backend` as the registry chooses)."""
    from course.landscape.ops import hvp as hvp_op

    return lambda v: hvp_op(x, labels, theta, v, widths, backend=backend)


def top_eigenvalue(operator, size: int, iterations: int = 50, tol: float = 1e-4, seed: int = 0,
                   dtype=torch.float32) -> tuple[float, int]:
    """(lambda_max, products used): power iteration v <- H v / |H v| from a seeded random v, stopped
    when the Rayleigh quotient v . H v changes by less than `tol` (relative).

    Power iteration finds the eigenvalue of largest magnitude; near a minimum that is lambda_max."""
    check_int("landscape.top_eigenvalue", "size", size, low=1)
    check_int("landscape.top_eigenvalue", "iterations", iterations, low=1)
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(size, generator=g, dtype=dtype)
    v = v / v.norm()
    value = float("nan")
    for i in range(1, iterations + 1):
        hv = operator(v)
        new = float(v @ hv)
        norm = hv.norm()
        if norm == 0:
            return 0.0, i
        v = hv / norm
        if abs(new - value) <= tol * abs(new):
            return new, i
        value = new
    return value, iterations


def lanczos(operator, size: int, steps: int = 20, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    """The Ritz values [k] (ascending) of `steps` Lanczos iterations with full reorthogonalisation:
    the extreme ones approximate H's extreme eigenvalues (Golub and Van Loan, section 10.1)."""
    check_int("landscape.lanczos", "size", size, low=1)
    check_int("landscape.lanczos", "steps", steps, low=1)
    steps = min(steps, size)
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(size, generator=g, dtype=dtype)
    Q = [q / q.norm()]
    alphas, betas = [], []
    for j in range(steps):
        w = operator(Q[j])
        alphas.append(float(Q[j] @ w))
        basis = torch.stack(Q)  # [j+1, P]
        w = w - basis.T @ (basis @ w)  # full reorthogonalisation (twice is enough)
        w = w - basis.T @ (basis @ w)
        beta = float(w.norm())
        if j == steps - 1 or beta < 1e-10:
            break
        betas.append(beta)
        Q.append(w / beta)
    k = len(alphas)
    T = torch.diag(torch.tensor(alphas, dtype=torch.float64))
    if k > 1:
        off = torch.tensor(betas[:k - 1], dtype=torch.float64)
        T += torch.diag(off, 1) + torch.diag(off, -1)
    return torch.linalg.eigvalsh(T)
