"""Noise schedules as log signal-to-noise ratios, and the sampling levels they give.

A variance-preserving schedule writes x_t = alpha_t y + sigma_t eps with alpha_t^2 + sigma_t^2 = 1,
t in [0, 1]; its log-SNR is lambda(t) = log(alpha_t^2 / sigma_t^2). The same noisy point, rescaled by
1 / alpha_t, is EDM's x = y + sigma n with sigma = exp(-lambda / 2) (Karras et al. 2022, section 4),
so every schedule is a set of EDM noise levels.

- linear (Ho et al. 2020): beta_t linear from 1e-4 to 0.02 over 1000 steps, alpha_t^2 = prod(1 - beta);
- cosine (Nichol and Dhariwal 2021): alpha_t^2 = cos^2(pi/2 (t + s) / (1 + s)) / cos^2(pi/2 s / (1 + s)),
  s = 0.008;
- shifted cosine (Chen 2023, "On the Importance of Noise Scheduling for Diffusion Models", section 2;
  Hoogeboom et al. 2023): scaling the input by b multiplies the SNR by b^2, so lambda(t) + 2 log b;
  larger inputs (more pixels, more redundancy) want b < 1, more noise at every t;
- Laplace (Hang et al. 2024, "Improved Noise Schedule for Diffusion Training", section 3): the
  log-SNR is sampled from a Laplace density centred at mu with scale b, p(lambda) proportional to
  exp(-|lambda - mu| / b), so that training spends its steps near lambda = 0, where the denoising task
  changes fastest; as a schedule, lambda(t) = mu - b sgn(0.5 - t) log(1 - 2 |t - 0.5|).

`log_snr(name, t)` evaluates each; `sigmas_from_schedule` turns one into decreasing sampling levels.
"""
import math

import numpy as np
import torch

from course.checks import check_int, check_tensor

SCHEDULES = ("linear", "cosine", "shifted_cosine", "laplace")
LOG_SNR_LIMIT = 15.0  # |lambda| clipped here: sigma between 5.5e-4 and 1.8e3


def _linear(t):
    """The DDPM schedule's log-SNR, interpolated from its 1000 discrete steps."""
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    log_alpha2 = torch.log1p(-betas).cumsum(0)  # [1000], log alpha^2 at t = (k + 1) / 1000
    grid = torch.linspace(1e-3, 1.0, 1000, dtype=torch.float64)
    a = torch.from_numpy(np.interp(t.double().numpy(), grid.numpy(), log_alpha2.numpy()))
    return a - torch.log(-torch.expm1(a))  # log(alpha^2 / (1 - alpha^2))


def _cosine(t, s: float = 0.008):
    f = torch.cos(math.pi / 2 * (t + s) / (1 + s)) ** 2 / math.cos(math.pi / 2 * s / (1 + s)) ** 2
    f = f.clamp(1e-12, 1 - 1e-12)
    return torch.log(f) - torch.log1p(-f)


def log_snr(name: str, t, shift: float = 1.0, mu: float = 0.0, scale: float = 0.5) -> torch.Tensor:
    """lambda(t) of schedule `name` at t [T] in [0, 1]; `shift` is Chen's input scale b (shifted
    cosine), `mu` and `scale` the Laplace's centre and scale. Clipped to +-LOG_SNR_LIMIT."""
    where = "schedules.log_snr"
    if name not in SCHEDULES:
        raise ValueError(f"{where}: `name` must be one of {SCHEDULES}; got {name!r}.")
    t = torch.as_tensor(t, dtype=torch.float64)
    check_tensor(where, "t", t, kind="float")
    if t.numel() and ((t < 0).any() or (t > 1).any()):
        raise ValueError(f"{where}: `t` must lie in [0, 1]; got values from {t.min().item():g} to "
                         f"{t.max().item():g}.")
    if not shift > 0 or not scale > 0:
        raise ValueError(f"{where}: `shift` and `scale` must be > 0; got {shift} and {scale}.")
    if name == "linear":
        lam = _linear(t)
    elif name == "laplace":
        centred = (0.5 - t).clamp(-0.5 + 1e-12, 0.5 - 1e-12)
        lam = mu - scale * torch.sign(centred) * torch.log1p(-2 * centred.abs())
    else:
        lam = _cosine(t) + (2 * math.log(shift) if name == "shifted_cosine" else 0.0)
    return lam.clamp(-LOG_SNR_LIMIT, LOG_SNR_LIMIT)


def sigma_of_log_snr(lam) -> torch.Tensor:
    """EDM's noise level of a log-SNR: sigma = exp(-lambda / 2)."""
    return torch.exp(-torch.as_tensor(lam, dtype=torch.float64) / 2)


def sigmas_from_schedule(name: str, steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0,
                         **options) -> torch.Tensor:
    """`steps` levels of schedule `name` at evenly spaced t, kept within [sigma_min, sigma_max]
    (repeats dropped), then 0: what a sampler takes. -> [<= steps + 1], decreasing"""
    check_int("schedules.sigmas_from_schedule", "steps", steps, low=1)
    t = torch.linspace(1.0, 0.0, steps + 2, dtype=torch.float64)[1:-1]  # the open interval, high noise first
    sigmas = sigma_of_log_snr(log_snr(name, t, **options)).clamp(sigma_min, sigma_max)
    sigmas = torch.unique_consecutive(sigmas)
    return torch.cat([sigmas, sigmas.new_zeros(1)])
