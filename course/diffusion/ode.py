"""The probability-flow ODE solved to high accuracy: the ground truth that samplers are measured against.

With sigma(t) = t and s(t) = 1 (Karras et al. 2022, eq. 4 with eq. 3) the ODE is
dx/dsigma = (x - D(x; sigma)) / sigma. In u = ln sigma it reads dx/du = x - D(x; e^u), smooth over the
many decades sigma crosses; classical Runge-Kutta (RK4) with many small steps in u, in float64, with
a denoiser known in closed form (`GaussianMixture.denoise`, the ideal denoiser of a training set),
solves it to far below any sampler's error: the error halves 16-fold when the steps double.
"""
import math

import torch

from course.checks import check_int, check_tensor

SIGMA_END = 1e-5  # the exact solution stops here: x(1e-5) is x(0) to about sigma^2


def solve_pf_ode(denoise, x, sigma_max: float, sigma_end: float = SIGMA_END, steps: int = 1000,
                 return_path: bool = False):
    """RK4 in u = ln sigma from sigma_max down to sigma_end; `denoise(x, sigma [N])` in float64.
    x [N, D] (noise at sigma_max) -> x at sigma_end [N, D] (and the states at every step, if asked)."""
    check_tensor("ode.solve_pf_ode", "x", x, ndim=2, kind="float")
    check_int("ode.solve_pf_ode", "steps", steps, low=1)
    if not 0 < sigma_end < sigma_max:
        raise ValueError(f"ode.solve_pf_ode: need 0 < sigma_end < sigma_max; got {sigma_end}, {sigma_max}.")
    x = x.double()
    u0, u1 = math.log(sigma_max), math.log(sigma_end)
    h = (u1 - u0) / steps

    def f(x, u):
        return x - denoise(x, torch.full((x.shape[0],), math.exp(u), dtype=x.dtype))

    path = [x]
    for k in range(steps):
        u = u0 + k * h
        k1 = f(x, u)
        k2 = f(x + h / 2 * k1, u + h / 2)
        k3 = f(x + h / 2 * k2, u + h / 2)
        k4 = f(x + h * k3, u + h)
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        if return_path:
            path.append(x)
    return (x, torch.stack(path)) if return_path else x


def rms_error(x, exact) -> float:
    """Root mean square over particles of the distance to the exact solution. [N, D] x2 -> float"""
    return float(((x.double() - exact.double()) ** 2).sum(1).mean().sqrt())
