"""Gaussian mixtures: data whose noisy density, score and ideal denoiser are known in closed form.

Karras, Aittala, Aila and Laine 2022, "Elucidating the Design Space of Diffusion-Based Generative
Models" (EDM, arXiv:2206.00364), section 2. Noise of level sigma turns the data density into
p(x; sigma) = p_data * N(0, sigma^2 I), and the ideal denoiser, the minimiser of
E_{y ~ p_data} E_n ||D(y + n; sigma) - y||^2 (eq. 2), is the posterior mean D(x; sigma) = E[y | x].
The score follows from it (eq. 3):

    grad_x log p(x; sigma) = (D(x; sigma) - x) / sigma^2.

For a mixture sum_k w_k N(mu_k, s_k^2 I) everything is Gaussian: p(x; sigma) = sum_k w_k N(x; mu_k,
(s_k^2 + sigma^2) I), the posterior of component k is r_k(x) proportional to w_k N(x; mu_k,
(s_k^2 + sigma^2) I), and

    D(x; sigma) = sum_k r_k(x) [mu_k + s_k^2 / (s_k^2 + sigma^2) (x - mu_k)].

A training set y_1..y_M is the mixture with s_k = 0 and w_k = 1/M: its ideal denoiser is
sum_i softmax_i(-|x - y_i|^2 / 2 sigma^2) y_i (`course.diffusion.ideal`), the one that memorises.
"""
import math
from dataclasses import dataclass

import torch

from course.checks import check_int, check_tensor


def check_sigma(where: str, sigma, n: int, dtype=None) -> torch.Tensor:
    """sigma as a tensor [n] of positive finite noise levels (a number is broadcast)."""
    if not isinstance(sigma, torch.Tensor):
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)):
            raise TypeError(f"{where}: `sigma` must be a number or a tensor [N]; got {type(sigma).__name__}.")
        sigma = torch.full((n,), float(sigma), dtype=dtype or torch.float32)
    check_tensor(where, "sigma", sigma, kind="float")
    if sigma.dim() == 0:
        sigma = sigma.expand(n)
    if tuple(sigma.shape) != (n,):
        raise ValueError(f"{where}: `sigma` must be a number or of shape [N] = ({n},); got shape "
                         f"{tuple(sigma.shape)}.")
    if sigma.numel() and not (torch.isfinite(sigma) & (sigma > 0)).all():
        raise ValueError(f"{where}: `sigma` must be positive and finite; got values from "
                         f"{sigma.min().item():g} to {sigma.max().item():g}.")
    return sigma


@dataclass(frozen=True)
class GaussianMixture:
    """sum_k weights_k N(means_k, stds_k^2 I) in D dimensions. means [K, D], stds [K], weights [K]."""

    means: torch.Tensor
    stds: torch.Tensor
    weights: torch.Tensor

    def __post_init__(self):
        where = "GaussianMixture"
        check_tensor(where, "means", self.means, ndim=2, kind="float")
        K = self.means.shape[0]
        for name in ("stds", "weights"):
            t = getattr(self, name)
            check_tensor(where, name, t, ndim=1, kind="float")
            if t.shape[0] != K:
                raise ValueError(f"{where}: `{name}` must have one entry per component, K = {K}; got "
                                 f"{t.shape[0]}.")
        if K == 0 or (self.stds < 0).any() or (self.weights < 0).any() or self.weights.sum() <= 0:
            raise ValueError(f"{where}: needs K >= 1 components, stds >= 0 and non-negative weights with a "
                             f"positive sum; got K = {K}.")

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def probabilities(self) -> torch.Tensor:
        return self.weights / self.weights.sum()

    def sample(self, n: int, seed: int = 0):
        """n samples and the component of each: -> x [n, D], component [n]."""
        check_int("GaussianMixture.sample", "n", n, low=0)
        g = torch.Generator().manual_seed(seed)
        component = torch.multinomial(self.probabilities, n, replacement=True, generator=g)
        noise = torch.randn(n, self.dim, generator=g, dtype=self.means.dtype)
        return self.means[component] + self.stds[component, None] * noise, component

    def posterior(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """r_k(x), the probability that x [N, D] at noise sigma came from component k. -> [N, K]"""
        check_tensor("GaussianMixture.posterior", "x", x, ndim=2, kind="float")
        sigma = check_sigma("GaussianMixture.posterior", sigma, x.shape[0], x.dtype)
        var = self.stds[None, :] ** 2 + sigma[:, None] ** 2  # [N, K]
        d2 = torch.cdist(x, self.means) ** 2  # [N, K]
        logits = self.probabilities.log()[None] - d2 / (2 * var) - 0.5 * self.dim * var.log()
        return logits.softmax(dim=1)

    def log_prob(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """log p(x; sigma) of x [N, D]. -> [N]"""
        sigma = check_sigma("GaussianMixture.log_prob", sigma, x.shape[0], x.dtype)
        var = self.stds[None, :] ** 2 + sigma[:, None] ** 2
        d2 = torch.cdist(x, self.means) ** 2
        logits = (self.probabilities.log()[None] - d2 / (2 * var)
                  - 0.5 * self.dim * (2 * math.pi * var).log())
        return logits.logsumexp(dim=1)

    def denoise(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """The ideal denoiser D(x; sigma) = E[y | x] (EDM eq. 2). x [N, D] -> [N, D]"""
        sigma = check_sigma("GaussianMixture.denoise", sigma, x.shape[0], x.dtype)
        r = self.posterior(x, sigma)  # [N, K]
        shrink = self.stds[None] ** 2 / (self.stds[None] ** 2 + sigma[:, None] ** 2)  # [N, K]
        # E[y | x, k] = mu_k + shrink_k (x - mu_k), summed over k with the posterior
        centred = (r * (1 - shrink)) @ self.means  # [N, D]
        return centred + (r * shrink).sum(1, keepdim=True) * x

    def score(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """grad_x log p(x; sigma) = (D(x; sigma) - x) / sigma^2 (EDM eq. 3). [N, D] -> [N, D]"""
        sigma = check_sigma("GaussianMixture.score", sigma, x.shape[0], x.dtype)
        return (self.denoise(x, sigma) - x) / sigma[:, None] ** 2


def ring(components: int = 8, radius: float = 2.0, std: float = 0.15, dtype=torch.float64) -> GaussianMixture:
    """The 2-D toy: `components` equal Gaussians on a circle of `radius`."""
    check_int("mixtures.ring", "components", components, low=1)
    angle = torch.arange(components, dtype=dtype) * (2 * math.pi / components)
    means = radius * torch.stack([angle.cos(), angle.sin()], dim=1)
    return GaussianMixture(means, torch.full((components,), std, dtype=dtype),
                           torch.ones(components, dtype=dtype))


def random_mixture(components: int, dim: int, spread: float = 1.0, std: float = 0.2, seed: int = 0,
                   dtype=torch.float64) -> GaussianMixture:
    """`components` Gaussians in `dim` dimensions, means drawn N(0, spread^2 I), unequal weights."""
    check_int("mixtures.random_mixture", "components", components, low=1)
    check_int("mixtures.random_mixture", "dim", dim, low=1)
    g = torch.Generator().manual_seed(seed)
    means = spread * torch.randn(components, dim, generator=g, dtype=dtype)
    weights = 0.5 + torch.rand(components, generator=g, dtype=dtype)
    return GaussianMixture(means, torch.full((components,), std, dtype=dtype), weights)


def empirical(points: torch.Tensor) -> GaussianMixture:
    """A training set y [M, D] as the mixture of its points (stds 0, equal weights)."""
    check_tensor("mixtures.empirical", "points", points, ndim=2, kind="float")
    M = points.shape[0]
    return GaussianMixture(points, torch.zeros(M, dtype=points.dtype), torch.ones(M, dtype=points.dtype))
