"""Small trained denoisers: the learned case beside the exact ones of `mixtures` and `ideal`.

Karras, Aittala, Aila and Laine 2022, "Elucidating the Design Space of Diffusion-Based Generative
Models" (EDM, arXiv:2206.00364), eq. 7 and 8, Table 1. The network F is a multilayer perceptron on
the flattened state: its input is the preconditioned c_in(sigma) x and a few Fourier features of
c_noise(sigma) = ln(sigma) / 4, its output the same number of values, and `edm.Preconditioned`
wraps it as the denoiser D(x; sigma) = c_skip x + c_out F. One class serves 2-D points [N, 2] and
8x8 glyph images [N, 8, 8] (`course.data.glyph_images`, 64 values each).

Training minimises EDM's loss, E lambda(sigma) ||D(y + sigma n; sigma) - y||^2 with lambda(sigma) =
(sigma^2 + sigma_data^2) / (sigma sigma_data)^2, the weight that gives F's own error the weight 1 at
every level (eq. 8). The levels come from EDM's log-normal by default, or from any sampler of noise
levels (`sigma_sampler(n, generator) -> [n]`): how the schedule papers (`papers/noise_scheduling`,
`papers/improved_noise_schedule`) change what training sees. Mini-batches of the data and the noise
are drawn from one seeded generator inside the loss, through `course.train.fit`, and the denoiser
returned is the exponential moving average of the weights, as EDM samples with (its training keeps
one; the average smooths the last steps' noise, which a few hundred steps leave large). The
network's input also carries random Fourier features of the state, without which an MLP sits for
hundreds of steps on the plateau F = 0, the optimum for Gaussian data under this preconditioning.

`memorisation` compares the trained network with the ideal denoiser of the same small training set:
the ideal one is the exact minimiser of the loss on that set, and its samples land on training
points; the network's do not (`course.diffusion.ideal`).
"""
import copy
import math

import torch
from torch import nn

from course.checks import check_finite, check_int, check_tensor
from course.diffusion import edm, ideal, mixtures, samplers, schedules
from course.train import fit, seeded

FREQUENCIES = (1.0, 2.0, 4.0, 8.0)  # of the Fourier features of c_noise (which spans about [-1.7, 1.7])
HIDDEN, DEPTH, FEATURES = 64, 2, 16
FOURIER_SCALE = 3.0  # x . b_j has standard deviation 3 for an input of unit variance per value
BATCH, LR, EMA = 256, 1e-2, 0.95


def noise_features(c_noise: torch.Tensor) -> torch.Tensor:
    """[c_noise, sin(w c_noise), cos(w c_noise)] for w in FREQUENCIES: the network's view of the noise
    level. c_noise [N] -> [N, 1 + 2 len(FREQUENCIES)]"""
    check_tensor("networks.noise_features", "c_noise", c_noise, ndim=1, kind="float")
    w = torch.tensor(FREQUENCIES, dtype=c_noise.dtype)
    angle = c_noise[:, None] * w[None, :]  # [N, F]
    return torch.cat([c_noise[:, None], angle.sin(), angle.cos()], dim=1)


class DenoiserMLP(nn.Module):
    """F(c_in x, c_noise) of EDM eq. 7 as an MLP on the flattened state, its input the state, `features`
    random Fourier features of it (sin and cos of x . b_j, b_j ~ N(0, FOURIER_SCALE^2 / size), fixed at
    construction) and the features of c_noise. `shape` is one sample's shape ((2,) for points, (8, 8)
    for glyphs). x_in [N, *shape], c_noise [N] -> [N, *shape]"""

    def __init__(self, shape: tuple, hidden: int = HIDDEN, depth: int = DEPTH, features: int = FEATURES):
        super().__init__()
        where = "networks.DenoiserMLP"
        if not isinstance(shape, tuple) or not shape or not all(isinstance(s, int) and s > 0 for s in shape):
            raise ValueError(f"{where}: `shape` must be a non-empty tuple of positive ints (one sample's "
                             f"shape); got {shape!r}.")
        check_int(where, "hidden", hidden, low=1)
        check_int(where, "depth", depth, low=1)
        check_int(where, "features", features, low=0)
        self.shape, size = shape, math.prod(shape)
        # without these features the MLP sits for hundreds of steps on the plateau F = 0 (module docstring)
        self.register_buffer("frequencies", torch.randn(size, features) * (FOURIER_SCALE / math.sqrt(size)))
        layers, width = [], size + 2 * features + 1 + 2 * len(FREQUENCIES)
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        layers.append(nn.Linear(width, size))
        self.net = nn.Sequential(*layers)

    def forward(self, x_in, c_noise):
        flat = x_in.reshape(x_in.shape[0], -1)
        if flat.shape[1] != math.prod(self.shape):
            raise ValueError(f"DenoiserMLP: `x_in` must hold samples of shape {self.shape}; got "
                             f"{tuple(x_in.shape)}.")
        angle = flat @ self.frequencies.to(flat.dtype)  # [N, features]
        inputs = [flat, angle.sin(), angle.cos(), noise_features(c_noise.to(flat.dtype))]
        return self.net(torch.cat(inputs, dim=1)).reshape(x_in.shape)


def point_denoiser(dim: int = 2, sigma_data: float = 1.0, **network):
    """EDM's D(x; sigma) around a `DenoiserMLP` (options `network`) for points in `dim` dimensions.
    x [N, dim], sigma [N] -> [N, dim]"""
    check_int("networks.point_denoiser", "dim", dim, low=1)
    return edm.Preconditioned(DenoiserMLP((dim,), **network), sigma_data)


def glyph_denoiser(sigma_data: float = 0.5, hidden: int = 128, **network):
    """EDM's D(x; sigma) around a `DenoiserMLP` for 8x8 glyph images (`course.data.glyph_images`).
    x [N, 8, 8], sigma [N] -> [N, 8, 8]"""
    return edm.Preconditioned(DenoiserMLP((8, 8), hidden=hidden, **network), sigma_data)


def log_normal_sigmas(n: int, generator: torch.Generator, p_mean: float = edm.P_MEAN,
                      p_std: float = edm.P_STD) -> torch.Tensor:
    """EDM's training levels, ln(sigma) ~ N(P_mean, P_std^2) (Table 1). -> [n] float64"""
    return (p_mean + p_std * torch.randn(n, generator=generator, dtype=torch.float64)).exp()


def denoising_loss(denoiser, y, sigma, noise, sigma_data: float):
    """EDM's weighted loss at given levels: mean of lambda(sigma) ||D(y + sigma n; sigma) - y||^2 with
    lambda = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2 (eq. 8). y, noise [B, ...], sigma [B]"""
    shape = (-1,) + (1,) * (y.dim() - 1)
    weight = (sigma ** 2 + sigma_data ** 2) / (sigma * sigma_data) ** 2
    return (weight.view(shape) * (denoiser(y + sigma.view(shape) * noise, sigma) - y) ** 2).mean()


def check_data(where: str, data) -> torch.Tensor:
    """A training set: a float tensor [M, ...] of M >= 1 finite samples."""
    check_tensor(where, "data", data, kind="float")
    if data.dim() < 2 or data.shape[0] == 0:
        raise ValueError(f"{where}: `data` must be [M, ...] with M >= 1 samples of at least one value; got "
                         f"shape {tuple(data.shape)}.")
    check_finite(where, "data", data)
    return data


def train_denoiser(data, denoiser=None, *, steps: int, seed: int, sigma_sampler=None, batch: int = BATCH,
                   lr: float = LR, ema: float | None = EMA, sigma_data: float | None = None):
    """Train D on `data` [M, ...] with EDM's loss (eq. 8) for `steps` Adam steps on mini-batches of
    `batch` samples, the levels from `sigma_sampler(n, generator) -> [n]` (EDM's log-normal if None),
    and keep an exponential moving average of the weights (decay `ema` per step; None: none), as EDM
    samples with. Without a `denoiser`, one is built for the data's shape under
    `seeded(seed)`, with sigma_data the data's standard deviation. -> (the averaged denoiser, or the
    trained one without `ema`; the `Fit`)"""
    where = "networks.train_denoiser"
    data = check_data(where, data)
    check_int(where, "steps", steps, low=0)
    check_int(where, "seed", seed, low=0)
    check_int(where, "batch", batch, low=1)
    if ema is not None and not 0 <= ema < 1:
        raise ValueError(f"{where}: `ema` must be a decay in [0, 1) or None; got {ema}.")
    if denoiser is None:
        sigma_data = float(data.std()) if sigma_data is None else sigma_data
        with seeded(seed):
            denoiser = edm.Preconditioned(DenoiserMLP(tuple(data.shape[1:])), sigma_data)
    elif not isinstance(denoiser, edm.Preconditioned):
        raise TypeError(f"{where}: `denoiser` must be an edm.Preconditioned (or None to build one); got "
                        f"{type(denoiser).__name__}.")
    sampler = sigma_sampler or log_normal_sigmas
    average = copy.deepcopy(denoiser).requires_grad_(False) if ema is not None else None
    g = torch.Generator().manual_seed(seed)

    def update_average():  # after each optimizer step: the loss is called next, then once at the end
        if average is not None:
            with torch.no_grad():
                for kept, p in zip(average.parameters(), denoiser.parameters()):
                    kept.lerp_(p, 1 - ema)

    def loss():
        update_average()
        y = data[torch.randint(data.shape[0], (batch,), generator=g)]
        sigma = sampler(batch, g)
        if not isinstance(sigma, torch.Tensor) or sigma.shape != (batch,) or not (sigma > 0).all():
            raise ValueError(f"{where}: `sigma_sampler` must return [n] = ({batch},) positive levels; got "
                             f"{getattr(sigma, 'shape', type(sigma).__name__)}.")
        noise = torch.randn(y.shape, generator=g, dtype=y.dtype)
        return denoising_loss(denoiser, y, sigma.to(y.dtype), noise, denoiser.sigma_data)

    with torch.enable_grad():  # also when the caller samples under no_grad
        result = fit(denoiser.parameters(), loss, steps=steps, lr=lr, seed=seed, desc="denoiser")
    update_average()
    return (denoiser if average is None else average).eval(), result


def sigma_of_t(name: str, t, **options) -> torch.Tensor:
    """A schedule's noise level at time t: sigma(t) = exp(-lambda(t) / 2), lambda the log-SNR of
    `schedules.log_snr(name, t, **options)`; it rises with t, from clean data at t = 0 to pure noise at t = 1.
    t [T] in [0, 1] -> [T] float64"""
    return schedules.sigma_of_log_snr(schedules.log_snr(name, t, **options))


def schedule_sampler(name: str, **options):
    """Training levels from a noise schedule: t ~ U(0, 1), sigma = sigma_of_t(name, t): what uniform
    time means for a schedule (Chen 2023 section 2; Hang et al. 2024 section 3), as a sampler for
    `train_denoiser`. -> sampler(n, generator) -> [n] float64"""
    sigma_of_t(name, torch.zeros(1), **options)  # refuses a bad name or option now, by name

    def sampler(n: int, generator: torch.Generator) -> torch.Tensor:
        return sigma_of_t(name, torch.rand(n, generator=generator, dtype=torch.float64), **options)

    return sampler


def nearest_distance(x, points) -> torch.Tensor:
    """Each sample's distance to its nearest training point. x [N, D], points [M, D] -> [N]"""
    check_tensor("networks.nearest_distance", "x", x, ndim=2, kind="float")
    check_tensor("networks.nearest_distance", "points", points, ndim=2, kind="float")
    if points.shape[0] == 0 or points.shape[1] != x.shape[1]:
        raise ValueError(f"networks.nearest_distance: `points` must be [M >= 1, D] with x's D = "
                         f"{x.shape[1]}; got shape {tuple(points.shape)}.")
    return torch.cdist(x.double(), points.double()).min(dim=1).values


def memorisation(points, mixture, *, steps: int = 300, seed: int = 0, samples: int = 512,
                 sampling_steps: int = 16, sigma_max: float = 80.0, copy_radius: float = 0.01) -> dict:
    """The ideal denoiser of a training set (`ideal.ideal_denoiser`, the exact minimiser of the loss on
    it) against a network trained on the same points, sampled by the same Heun sampler (EDM's levels)
    from the same noise; fresh samples of the true `mixture` as the reference. For each: its samples
    [samples, D], the mean distance to the nearest training point, the share of samples within
    `copy_radius` of one (copies), and the mean log-likelihood under the true mixture. points [M, D]"""
    where = "networks.memorisation"
    if not isinstance(mixture, mixtures.GaussianMixture):
        raise TypeError(f"{where}: `mixture` must be a mixtures.GaussianMixture (the true data); got "
                        f"{type(mixture).__name__}.")
    points = check_data(where, points)
    if points.dim() != 2 or points.shape[1] != mixture.dim:
        raise ValueError(f"{where}: `points` must be [M, D] with the mixture's D = {mixture.dim}; got shape "
                         f"{tuple(points.shape)}.")
    check_int(where, "samples", samples, low=1)
    y = points.double()
    network, fit_result = train_denoiser(points.float(), steps=steps, seed=seed)
    sigmas = edm.edm_sigmas(sampling_steps, sigma_max=sigma_max)
    noise = sigma_max * torch.randn(samples, mixture.dim, generator=torch.Generator().manual_seed(seed),
                                    dtype=torch.float64)
    with torch.no_grad():
        drawn = {"ideal": samplers.sample_heun(lambda x, s: ideal.ideal_denoiser(x, y, s), noise, sigmas),
                 "network": samplers.sample_heun(network, noise.float(), sigmas.float()).double(),
                 "fresh": mixture.sample(samples, seed=seed + 1)[0].double()}
    rows = {}
    for name, x in drawn.items():
        d = nearest_distance(x, y)
        rows[name] = {"samples": x, "nearest": float(d.mean()),
                      "copies": float((d < copy_radius).double().mean()),
                      "log_likelihood": float(mixture.log_prob(x, 1e-3).mean())}
    rows["network"]["fit"] = fit_result
    return rows
