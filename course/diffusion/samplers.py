"""EDM's samplers as short pure functions: Euler, Heun, and their stochastic form with churn.

Karras, Aittala, Aila and Laine 2022 (arXiv:2206.00364), Algorithm 1 (deterministic, second order,
for any schedule sigma(t) and scaling s(t)) and Algorithm 2 (stochastic: churn adds noise to climb
from sigma_i to sigma_hat_i = (1 + gamma_i) sigma_i before each step). With sigma(t) = t and s(t) = 1
the probability-flow ODE is dx/dsigma = (x - D(x; sigma)) / sigma (eq. 4 with eq. 3), and a step
from sigma to sigma' is

    d = (x - D(x; sigma)) / sigma,  x' = x + (sigma' - sigma) d                     (Euler)
    d' = (x' - D(x'; sigma')) / sigma',  x' = x + (sigma' - sigma) (d + d') / 2     (Heun, if sigma' > 0)

Each sampler takes a denoiser `denoiser(x, sigma)` (sigma a tensor [N]), the start x [N, ...] (noise
at sigmas[0]) and the decreasing levels `sigmas` ending in 0, in k-diffusion's style, and calls
`callback(dict)` after every step (what the trajectory widget draws). Heun takes 2 N - 1 denoiser
evaluations for N steps (the last step, to sigma = 0, is Euler's); Euler N.
"""
import math

import torch

from course.checks import check_tensor
from course.diffusion.edm import check_sigmas


def check_denoised(where: str, denoised, x):
    """The denoiser's output must be a finite tensor of the state's shape."""
    if not isinstance(denoised, torch.Tensor) or denoised.shape != x.shape:
        shape = tuple(denoised.shape) if isinstance(denoised, torch.Tensor) else type(denoised).__name__
        raise ValueError(f"{where}: the denoiser must return the state's shape {tuple(x.shape)}; "
                         f"got {shape}.")
    if not torch.isfinite(denoised).all():
        bad = int((~torch.isfinite(denoised)).sum())
        raise ValueError(f"{where}: the denoiser returned {bad} NaN or infinite value(s); a sampler "
                         "cannot step from them (check the network and the noise level).")
    return denoised


def _levels(x, sigma: torch.Tensor) -> torch.Tensor:
    return sigma.to(x.dtype).expand(x.shape[0])


def churn_gamma(sigma: float, steps: int, s_churn: float, s_tmin: float, s_tmax: float) -> float:
    """gamma_i of Algorithm 2: min(S_churn / N, sqrt(2) - 1) inside [S_tmin, S_tmax], else 0."""
    return min(s_churn / steps, math.sqrt(2) - 1) if s_tmin <= sigma <= s_tmax else 0.0


def sample_euler(denoiser, x, sigmas, *, callback=None):
    """First-order steps along the probability-flow ODE (Algorithm 1 without its correction)."""
    return sample_heun(denoiser, x, sigmas, second_order=False, callback=callback)


def sample_heun(denoiser, x, sigmas, *, s_churn: float = 0.0, s_tmin: float = 0.0,
                s_tmax: float = float("inf"), s_noise: float = 1.0, second_order: bool = True,
                generator: torch.Generator | None = None, callback=None):
    """Algorithm 2 (Algorithm 1 when s_churn = 0): Heun's steps, with churn. x [N, ...] -> [N, ...]"""
    where = "samplers.sample_heun"
    check_tensor(where, "x", x, kind="float")
    sigmas = check_sigmas(where, sigmas)
    if not s_churn >= 0 or not s_noise >= 0:
        raise ValueError(f"{where}: `s_churn` and `s_noise` must be >= 0; got {s_churn} and {s_noise}.")
    steps = sigmas.shape[0] - 1
    for i in range(steps):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        gamma = churn_gamma(float(sigma), steps, s_churn, s_tmin, s_tmax)
        sigma_hat = sigma * (1 + gamma)
        if gamma > 0:  # climb to sigma_hat: add noise of variance sigma_hat^2 - sigma^2
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype) * s_noise
            x = x + (sigma_hat ** 2 - sigma ** 2).sqrt() * noise
        denoised = check_denoised(where, denoiser(x, _levels(x, sigma_hat)), x)
        d = (x - denoised) / sigma_hat
        x_next = x + (sigma_next - sigma_hat) * d
        if second_order and sigma_next > 0:
            denoised_next = check_denoised(where, denoiser(x_next, _levels(x, sigma_next)), x)
            d_next = (x_next - denoised_next) / sigma_next
            x_next = x + (sigma_next - sigma_hat) * (d + d_next) / 2
        x = x_next
        if callback is not None:
            callback({"i": i, "x": x, "sigma": float(sigma), "sigma_hat": float(sigma_hat),
                      "sigma_next": float(sigma_next), "denoised": denoised})
    return x


def sample_general(denoiser, x, ts, sigma_of, sigma_deriv, scale_of, scale_deriv, *, callback=None):
    """Algorithm 1 for any noise schedule sigma(t) and scaling s(t) (their derivatives given), with
    x_0 ~ N(0, sigma(t_0)^2 s(t_0)^2 I) passed in; ts [N + 1] decreasing, sigma(t_N) = 0 ends with Euler:

        d_i = (sigma'/sigma + s'/s) x_i - sigma' s / sigma D(x_i / s; sigma)  at t_i     (eq. 4)
    """
    where = "samplers.sample_general"
    check_tensor(where, "x", x, kind="float")
    ts = check_sigmas(where, ts)

    def slope(x, t):
        sigma, s = sigma_of(t), scale_of(t)
        denoised = check_denoised(where, denoiser(x / s, _levels(x, sigma)), x)
        return (sigma_deriv(t) / sigma + scale_deriv(t) / s) * x - sigma_deriv(t) * s / sigma * denoised

    for i in range(ts.shape[0] - 1):
        t, t_next = ts[i], ts[i + 1]
        d = slope(x, t)
        x_next = x + (t_next - t) * d
        if sigma_of(t_next) > 0:
            x_next = x + (t_next - t) * (d + slope(x_next, t_next)) / 2
        x = x_next
        if callback is not None:
            callback({"i": i, "x": x, "sigma": float(sigma_of(t)), "sigma_next": float(sigma_of(t_next))})
    return x


def heun_step(x, denoised, denoised_next, noise, sigma, sigma_next, sigma_next_hat):
    """One step of Algorithm 2 from x at sigma (its sigma_hat_i) to sigma_next, then the next step's
    churn: the Euler slope from `denoised` = D(x; sigma), Heun's correction from `denoised_next` =
    D(x_euler; sigma_next) (unused where sigma_next = 0, the last step), then noise of variance
    sigma_next_hat^2 - sigma_next^2. x, denoised, denoised_next, noise [N, D]; sigma, sigma_next,
    sigma_next_hat [N] -> the next state [N, D] at sigma_next_hat."""
    check_heun_step_args("diffusion.heun_step", x, denoised, denoised_next, noise, sigma, sigma_next,
                         sigma_next_hat)
    acc = torch.promote_types(x.dtype, torch.float32)
    x, den, den2, eps = (t.to(acc) for t in (x, denoised, denoised_next, noise))
    s, sn, sh = (t.to(acc)[:, None] for t in (sigma, sigma_next, sigma_next_hat))
    d = (x - den) / s
    euler = x + (sn - s) * d
    safe = torch.where(sn > 0, sn, torch.ones_like(sn))
    d_next = (euler - den2) / safe
    heun = x + (sn - s) * (d + d_next) / 2
    x_next = torch.where(sn > 0, heun, euler)
    return (x_next + (sh ** 2 - sn ** 2).clamp(min=0).sqrt() * eps).to(denoised.dtype)


def check_heun_step_args(where, x, denoised, denoised_next, noise, sigma, sigma_next, sigma_next_hat):
    """Shapes [N, D] and [N], one dtype, sigma > 0, 0 <= sigma_next <= sigma_next_hat."""
    for name, t in (("x", x), ("denoised", denoised), ("denoised_next", denoised_next), ("noise", noise)):
        check_tensor(where, name, t, ndim=2, kind="float")
        if t.shape != x.shape:
            raise ValueError(f"{where}: `{name}` must have the state's shape {tuple(x.shape)}; got "
                             f"{tuple(t.shape)}.")
        if t.dtype != x.dtype:
            raise TypeError(f"{where}: `{name}` must have x's dtype {x.dtype}; got {t.dtype}.")
    for name, t in (("sigma", sigma), ("sigma_next", sigma_next), ("sigma_next_hat", sigma_next_hat)):
        check_tensor(where, name, t, ndim=1, kind="float")
        if t.shape[0] != x.shape[0]:
            raise ValueError(f"{where}: `{name}` must have one level per row, [N] = ({x.shape[0]},); got "
                             f"{tuple(t.shape)}.")
    bad = ~((sigma > 0) & (sigma_next >= 0) & (sigma_next_hat >= sigma_next) & (sigma_next < sigma))
    if bad.any():
        i = int(bad.nonzero()[0])
        raise ValueError(f"{where}: the levels must satisfy 0 <= sigma_next < sigma and sigma_next <= "
                         f"sigma_next_hat in every row (a step goes down in noise, churn only up); row {i} "
                         f"of {bad.shape[0]} has sigma {sigma[i].item():g}, sigma_next "
                         f"{sigma_next[i].item():g}, sigma_next_hat {sigma_next_hat[i].item():g} "
                         f"({int(bad.sum())} rows fail).")
