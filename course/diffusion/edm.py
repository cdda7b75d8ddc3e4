"""EDM's design choices: the preconditioning of the network, the noise levels, and the training loss.

Karras, Aittala, Aila and Laine 2022, "Elucidating the Design Space of Diffusion-Based Generative
Models" (arXiv:2206.00364), Table 1 and sections 3 and 5:

- preconditioning (eq. 7, Table 1): D(x; sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x;
  c_noise(sigma)) with c_skip = sigma_data^2 / (sigma^2 + sigma_data^2), c_out = sigma sigma_data /
  sqrt(sigma^2 + sigma_data^2), c_in = 1 / sqrt(sigma^2 + sigma_data^2), c_noise = ln(sigma) / 4: the
  network's input and training target have unit variance at every noise level;
- the noise levels of sampling (eq. 5): sigma_i = (sigma_max^(1/rho) + i / (N - 1) (sigma_min^(1/rho)
  - sigma_max^(1/rho)))^rho for i < N, and sigma_N = 0; rho = 7 spends the steps where sigma is small,
  rho = 1 spaces them uniformly in sigma;
- training (eq. 8, Table 1): ln(sigma) ~ N(P_mean, P_std^2), loss weight lambda(sigma) = (sigma^2 +
  sigma_data^2) / (sigma sigma_data)^2, which makes the effective weight of F's loss 1.
"""
import math

import torch
from torch import nn

from course.checks import check_int, check_tensor
from course.diffusion.mixtures import check_sigma

SIGMA_DATA = 0.5  # EDM's default for images in [-1, 1]; the toys set their own
P_MEAN, P_STD = -1.2, 1.2


def preconditioning(sigma: torch.Tensor, sigma_data: float = SIGMA_DATA):
    """(c_skip, c_out, c_in, c_noise) of Table 1, each of sigma's shape."""
    total = sigma ** 2 + sigma_data ** 2
    return sigma_data ** 2 / total, sigma * sigma_data / total.sqrt(), 1 / total.sqrt(), sigma.log() / 4


def check_edm_output_args(where: str, x, raw, sigma, sigma_data) -> torch.Tensor:
    """The checks of `edm_output`, shared by every backend: x and raw [N, D] of one shape and dtype,
    sigma [N] positive, sigma_data a positive number. Returns sigma as a tensor [N]."""
    check_tensor(where, "x", x, ndim=2, kind="float")
    check_tensor(where, "raw", raw, ndim=2, kind="float")
    if raw.shape != x.shape:
        raise ValueError(f"{where}: the network's output `raw` must have the state's shape "
                         f"{tuple(x.shape)}; got {tuple(raw.shape)}.")
    if raw.dtype != x.dtype:
        raise TypeError(f"{where}: `raw` must have x's dtype {x.dtype}; got {raw.dtype}.")
    if isinstance(sigma_data, bool) or not isinstance(sigma_data, (int, float)) \
            or not 0 < sigma_data < math.inf:
        raise ValueError(f"{where}: `sigma_data` must be a positive finite number; got {sigma_data!r}.")
    return check_sigma(where, sigma, x.shape[0], x.dtype)


def edm_output(x, raw, sigma, sigma_data: float = SIGMA_DATA):
    """D = c_skip x + c_out F, the preconditioning after the network (eq. 7). x, raw [N, D], sigma [N]
    -> [N, D]"""
    sigma = check_edm_output_args("diffusion.edm_output", x, raw, sigma, sigma_data)
    c_skip, c_out, _, _ = preconditioning(sigma.to(torch.promote_types(x.dtype, torch.float32)), sigma_data)
    return (c_skip[:, None] * x + c_out[:, None] * raw).to(x.dtype)


class Preconditioned(nn.Module):
    """A raw network F(x_in, c_noise) wrapped as the denoiser D(x; sigma) of eq. 7. x [N, ...] -> same"""

    def __init__(self, network: nn.Module, sigma_data: float = SIGMA_DATA):
        super().__init__()
        self.network, self.sigma_data = network, sigma_data

    def forward(self, x, sigma):
        sigma = check_sigma("Preconditioned", sigma, x.shape[0], x.dtype)
        c_skip, c_out, c_in, c_noise = preconditioning(sigma, self.sigma_data)
        shape = (-1,) + (1,) * (x.dim() - 1)
        raw = self.network(c_in.view(shape) * x, c_noise)
        if raw.shape != x.shape:
            raise ValueError(f"Preconditioned: the network must return the state's shape {tuple(x.shape)}; "
                             f"got {tuple(raw.shape)}.")
        return c_skip.view(shape) * x + c_out.view(shape) * raw


def edm_sigmas(steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0,
               dtype=torch.float64) -> torch.Tensor:
    """The N = `steps` noise levels of eq. 5, then sigma_N = 0. -> [steps + 1], decreasing"""
    check_int("edm.edm_sigmas", "steps", steps, low=1)
    if not 0 < sigma_min < sigma_max or not math.isfinite(sigma_max):
        raise ValueError(f"edm.edm_sigmas: need 0 < sigma_min < sigma_max < inf; got sigma_min = "
                         f"{sigma_min}, sigma_max = {sigma_max}.")
    if not rho > 0:
        raise ValueError(f"edm.edm_sigmas: `rho` must be > 0; got {rho}.")
    i = torch.arange(steps, dtype=dtype)
    ramp = i / max(steps - 1, 1)
    sigmas = (sigma_max ** (1 / rho) + ramp * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def check_sigmas(where: str, sigmas) -> torch.Tensor:
    """A sampling schedule: a 1-D float tensor of at least 2 levels, finite, >= 0, strictly decreasing."""
    check_tensor(where, "sigmas", sigmas, ndim=1, kind="float")
    if sigmas.shape[0] < 2:
        raise ValueError(f"{where}: `sigmas` must hold at least 2 noise levels (one step); got "
                         f"{sigmas.shape[0]}.")
    if not torch.isfinite(sigmas).all() or (sigmas < 0).any():
        raise ValueError(f"{where}: `sigmas` must be finite and >= 0; got values from "
                         f"{sigmas.min().item():g} to {sigmas.max().item():g}.")
    if (sigmas.diff() >= 0).any():
        at = int((sigmas.diff() >= 0).nonzero()[0])
        raise ValueError(f"{where}: `sigmas` must decrease strictly; got sigmas[{at}] = "
                         f"{sigmas[at].item():g} then {sigmas[at + 1].item():g}.")
    return sigmas


def edm_loss(denoiser, y, sigma_data: float = SIGMA_DATA, p_mean: float = P_MEAN, p_std: float = P_STD,
             generator: torch.Generator | None = None):
    """E lambda(sigma) ||D(y + n; sigma) - y||^2 with ln sigma ~ N(P_mean, P_std^2) (eq. 8). y [N, ...]"""
    shape = (-1,) + (1,) * (y.dim() - 1)
    sigma = (p_mean + p_std * torch.randn(y.shape[0], generator=generator, dtype=y.dtype)).exp()
    noise = torch.randn(y.shape, generator=generator, dtype=y.dtype) * sigma.view(shape)
    weight = (sigma ** 2 + sigma_data ** 2) / (sigma * sigma_data) ** 2
    return (weight.view(shape) * (denoiser(y + noise, sigma) - y) ** 2).mean()
