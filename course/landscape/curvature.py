"""Curvature of the loss: Hessian-vector products, and the top Hessian eigenvalue (the sharpness).

The Hessian H = d^2 L / d theta^2 of a network is [P, P], too large to form; every estimate here
uses only products H v. Pearlmutter 1994 ("Fast exact multiplication by the Hessian"): H v is the
gradient of the scalar g(theta) . v, a second backward pass through the first (`hvp`, the reference:
"reverse-over-reverse", double backward), at the cost of about two gradients. The same product is the
directional derivative of the gradient along v, one forward-mode pass through the backward pass
(`hvp_forward_over_reverse`: torch.func's jvp of grad). `hessian_operator` keeps the gradient's graph
for repeated products at one theta (as PyHessian does), so each product is one backward pass.

The sharpness, the largest eigenvalue lambda_max of H, is what the edge-of-stability analysis compares
with 2 / eta (Cohen et al. 2021; Rosenfeld and Risteski 2023, "Outliers with Opposing Signals"):
`top_eigenvalue` finds it by power iteration on v <- H v / |H v|, and `lanczos` by the Lanczos
tridiagonalisation, whose extreme Ritz values converge in far fewer products.
"""
import warnings

import torch
from torch.func import grad, jvp

from course.checks import check_int, check_shape, check_tensor
from course.landscape.models import check_widths, mlp_loss, parameter_count
from course.registry import check_backend


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
    """H v [P] of the mean cross-entropy at theta [P]: the gradient of g(theta) . v (double backward)."""
    widths = check_hvp_args("landscape.hvp", x, labels, theta, v, widths)
    with torch.enable_grad():
        t = theta.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(mlp_loss(t, x, labels, widths), t, create_graph=True)
        (hv,) = torch.autograd.grad(g @ v, t)
    return hv


def hvp_forward_over_reverse(x, labels, theta, v, widths) -> torch.Tensor:
    """H v [P] as the directional derivative of the gradient along v (torch.func's jvp of grad)."""
    widths = check_hvp_args("landscape.hvp", x, labels, theta, v, widths)
    gradient = grad(lambda t: mlp_loss(t, x, labels, widths))
    return jvp(gradient, (theta,), (v,))[1]


def hvp_pyhessian(x, labels, theta, v, widths) -> torch.Tensor:
    """H v by PyHessian (PyPI), the peer a user would pick: its `hessian` object keeps the gradient's
    graph (`gradsH`) and `hessian_vector_product` differentiates it again along v per call."""
    from pyhessian.hessian import hessian as PyHessian
    from pyhessian.utils import hessian_vector_product

    from course.landscape.models import load, mlp

    widths = check_hvp_args("landscape.hvp", x, labels, theta, v, widths)
    check_backend("landscape.hvp", "pyhessian", "x", x)
    model = load(mlp(widths).to(device=x.device, dtype=x.dtype), theta)
    with torch.enable_grad(), warnings.catch_warnings():
        # PyHessian calls backward(create_graph=True), which warns of a reference cycle: harmless here,
        # the model is this call's own
        warnings.filterwarnings("ignore", message="Using backward\\(\\) with create_graph=True")
        h = PyHessian(model, torch.nn.functional.cross_entropy, data=(x, labels), cuda=x.is_cuda)
        vs = [part.reshape(p.shape) for part, p in zip(torch.split(v, [p.numel() for p in h.params]),
                                                      h.params)]
        hv = hessian_vector_product(h.gradsH, h.params, vs)
    return torch.cat([t.detach().reshape(-1) for t in hv])


def hessian_operator(x, labels, theta, widths):
    """v -> H v at theta [P]: the gradient's graph is built once and kept, so each product is one
    backward pass through it (the loop of every eigenvalue estimate)."""
    widths = check_hvp_args("landscape.hessian_operator", x, labels, theta, theta, widths)
    t = theta.detach().requires_grad_(True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(mlp_loss(t, x, labels, widths), t, create_graph=True)

    def product(v: torch.Tensor) -> torch.Tensor:
        check_tensor("landscape.hessian_operator", "v", v, ndim=1, kind="float")
        check_shape("landscape.hessian_operator", "v", v, tuple(theta.shape), "[P]")
        (hv,) = torch.autograd.grad(g, t, grad_outputs=v.to(g.dtype), retain_graph=True)
        return hv

    return product


def top_eigenvalue(operator, size: int, iterations: int = 50, tol: float = 1e-4, seed: int = 0,
                   dtype=torch.float32) -> tuple[float, int]:
    """(lambda_max, products used): power iteration v <- H v / |H v| from a seeded random v, stopped
    when the Rayleigh quotient v . H v changes by less than `tol` (relative).

    Power iteration finds the eigenvalue of largest magnitude; near a minimum that is lambda_max."""
    check_int("landscape.top_eigenvalue", "size", size, low=1)
    check_int("landscape.top_eigenvalue", "iterations", iterations, low=1)
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(size, generator=g, dtype=dtype)
    value, _, products = power_iteration(operator, v, iterations, tol)
    return value, products


def power_iteration(operator, start: torch.Tensor, iterations: int = 50, tol: float = 1e-4):
    """(Rayleigh quotient, last unit vector [P], products used) of power iteration from `start` [P]:
    `top_eigenvalue` from a random start, `sharpness_trace` warm-started from the previous point's."""
    check_tensor("landscape.power_iteration", "start", start, ndim=1, kind="float")
    check_int("landscape.power_iteration", "iterations", iterations, low=1)
    if not start.norm() > 0:
        raise ValueError("landscape.power_iteration: `start` must be a non-zero finite vector; "
                         f"got norm {float(start.norm())}.")
    v = start / start.norm()
    value = float("nan")
    for i in range(1, iterations + 1):
        hv = operator(v)
        new = float(v @ hv)
        norm = hv.norm()
        if norm == 0:
            return 0.0, v, i
        v = hv / norm
        if abs(new - value) <= tol * abs(new):
            return new, v, i
        value = new
    return value, v, iterations


def sharpness_trace(x, labels, thetas, widths, iterations: int = 20, tol: float = 1e-3,
                    seed: int = 0) -> torch.Tensor:
    """The sharpness lambda_max [T] at each of the parameter points thetas [T, P] (a training
    trajectory), by power iteration on `hessian_operator`, each point warm-started from the previous
    point's top eigenvector: along a trajectory it moves little, so a few products a point suffice.

    The edge-of-stability trace of Cohen et al. 2021 (arXiv:2103.00065): under gradient descent at
    step size eta, the trace rises (progressive sharpening) to about 2 / eta and hovers there."""
    check_tensor("landscape.sharpness_trace", "thetas", thetas, ndim=2, kind="float")
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(thetas.shape[1], generator=g, dtype=thetas.dtype)
    values = []
    for theta in thetas:
        value, v, _ = power_iteration(hessian_operator(x, labels, theta, widths), v,
                                      iterations, tol)
        values.append(value)
    return torch.tensor(values, dtype=torch.float64)


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
