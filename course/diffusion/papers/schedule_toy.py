"""The toy the two noise-schedule papers share: the ring at several "resolutions", trained and measured.

Chen 2023 ("On the Importance of Noise Scheduling for Diffusion Models", arXiv:2301.10972, section
2) explains why a larger image wants a noisier schedule: its pixels are redundant, so noise of a
given level destroys less of the signal (averaging r neighbouring pixels divides the noise's variance
by r). The toy makes that exact. Its "image" at resolution r is a point of the 8-component ring
(`mixtures.ring`) upsampled to 2 r values, each coordinate repeated r times as nearest-neighbour
upsampling repeats a pixel, plus independent pixel noise of standard deviation PIXEL_STD in every value
(as `course.data.glyph_images` has): the mixture sum_k N(up(mu_k), PIXEL_STD^2 I) in 2 r dimensions.
The mean of a coordinate's r copies of x = y + sigma n is mu_k + (PIXEL_STD / sqrt(r)) e + (sigma /
sqrt(r)) n': which component, the image's global structure, is read at noise sigma / sqrt(r), a log-SNR
higher by log r, which a shift b = 1 / sqrt(r) (2 log b = -log r) undoes; the pixel noise is not
redundant.

Everything exact stays exact: the denoiser is `GaussianMixture.denoise` of that mixture, and the
probability-flow ODE splits into the 2-D ODE of the copies' means (a ring of std PIXEL_STD / sqrt(r),
in sigma / sqrt(r)) and the rest, which is Gaussian and shrinks as sqrt(PIXEL_STD^2 + sigma^2). Every
model is the same `networks.DenoiserMLP` under EDM's preconditioning (loss eq. 8, weight average as
`networks.train_denoiser`), trained for the same steps on the same batches, noise and uniform times t,
mapped to training levels by a schedule; the schedules compared are trained side by side, as one
batched network (`train_side_by_side`), which is what separate runs would give at the cost of one. A
sample's error is its distance to the exact ODE solution from the same start noise, divided by
sqrt(r) (the units of one 2-D point).
"""
import copy
import functools
import math

import torch

from course.checks import check_int
from course.diffusion import edm, mixtures, networks, ode, samplers
from course.train import fit, seeded

PIXEL_STD = 0.3  # independent noise in every value, at every resolution
POOL = 4096  # training points drawn per seed
TRAIN_STEPS = 200
PARTICLES = 1024
SIGMA_MAX, SIGMA_MIN = 80.0, 0.002
ODE_STEPS = 100  # RK4 steps of the exact solution: within 1e-4 of 400 steps
SEED_OFFSET = 1000  # the start noise's generator, apart from the training data's


def upsample(y, r: int):
    """Each coordinate repeated r times: resolution r. y [N, 2] -> [N, 2 r]"""
    check_int("schedule_toy.upsample", "r", r, low=1)
    return y.repeat_interleave(r, dim=1)


def downsample(x, r: int):
    """The mean of each coordinate's r copies. x [N, 2 r] -> [N, 2]"""
    check_int("schedule_toy.downsample", "r", r, low=1)
    if x.dim() != 2 or x.shape[1] != 2 * r:
        raise ValueError(f"schedule_toy.downsample: `x` must be [N, 2 r] = [N, {2 * r}]; got "
                         f"{tuple(x.shape)}.")
    return x.reshape(x.shape[0], 2, r).mean(dim=2)


def mixture_at(r: int) -> mixtures.GaussianMixture:
    """The data at resolution r: the ring's means upsampled, PIXEL_STD in every value. [K = 8, 2 r]"""
    ring = mixtures.ring(std=PIXEL_STD)
    return mixtures.GaussianMixture(upsample(ring.means, r), ring.stds, ring.weights)


@functools.lru_cache(maxsize=8)
def training_set(seed: int, r: int) -> torch.Tensor:
    """POOL images of resolution r. -> [POOL, 2 r] float32"""
    return mixture_at(r).sample(POOL, seed=seed)[0].float()


def stacked_forward(weights: list, frequencies, x_in, c_noise):
    """E copies of `networks.DenoiserMLP`'s forward at once, member e with its own weights: one batched
    matrix product per layer instead of E. weights: [(W [E, out, in], b [E, out])] per layer;
    x_in [E, B, size], c_noise [E, B] -> [E, B, size]"""
    E, B, _ = x_in.shape
    angle = x_in @ frequencies  # [E, B, features]
    noise = networks.noise_features(c_noise.reshape(-1)).reshape(E, B, -1)
    h = torch.cat([x_in, angle.sin(), angle.cos(), noise], dim=2)
    for i, (w, b) in enumerate(weights):
        h = torch.baddbmm(b[:, None, :], h, w.transpose(1, 2))
        if i < len(weights) - 1:
            h = torch.nn.functional.silu(h)
    return h


def member(base, stacked: list, e: int, sigma_data: float):
    """Member e of stacked weights [(W [E, out, in], b [E, out])] as a plain `networks.DenoiserMLP` (a copy
    of `base`, whose random features all members share), wrapped by EDM's preconditioning."""
    network = copy.deepcopy(base)
    with torch.no_grad():
        for layer, (w, b) in zip([m for m in network.net if isinstance(m, torch.nn.Linear)], stacked):
            layer.weight.copy_(w[e])
            layer.bias.copy_(b[e])
    return edm.Preconditioned(network, sigma_data).eval()


def train_side_by_side(data, table: dict, *, steps: int, seed: int, batch: int = networks.BATCH,
                       lr: float = networks.LR, ema: float = networks.EMA) -> dict:
    """`networks.train_denoiser` for several schedules at once: one network per schedule of `table`
    (label -> (name, options)), each from the same initialisation, on the same batches, noise and times
    t ~ U(0, 1), mapped to each schedule's level, with its own Adam state and weight average: what
    separate runs give (the same draws in the same order), at the cost of about one.
    data [M, size] -> {label: (denoiser, Fit of the summed loss)}"""
    where = "schedule_toy.train_side_by_side"
    data = networks.check_data(where, data)
    check_int(where, "steps", steps, low=0)
    check_int(where, "seed", seed, low=0)
    if data.dim() != 2 or not isinstance(table, dict) or not table:
        raise ValueError(f"{where}: needs `data` [M, size] and a non-empty dict `table` of schedules; got "
                         f"data of shape {tuple(data.shape)} and table {table!r}.")
    for name, options in table.values():
        networks.schedule_sampler(name, **options)  # refuses a bad schedule by name
    sigma_data = float(data.std())
    with seeded(seed):
        base = networks.DenoiserMLP((data.shape[1],))
    params = [torch.nn.Parameter(p.detach().expand(len(table), *p.shape).clone())
              for m in base.net if isinstance(m, torch.nn.Linear) for p in (m.weight, m.bias)]
    average = [p.detach().clone() for p in params]
    g = torch.Generator().manual_seed(seed)

    def update_average():
        with torch.no_grad():
            for kept, p in zip(average, params):
                kept.lerp_(p, 1 - ema)

    def loss():  # networks.train_denoiser's loss, for every member at once
        update_average()
        y = data[torch.randint(data.shape[0], (batch,), generator=g)]
        t = torch.rand(batch, generator=g, dtype=torch.float64)
        noise = torch.randn(y.shape, generator=g, dtype=y.dtype)
        sigma = torch.stack([networks.sigma_of_t(name, t, **options) for name, options in table.values()])
        sigma = sigma.to(y.dtype)  # [E, B]
        c_skip, c_out, c_in, c_noise = edm.preconditioning(sigma, sigma_data)
        x = y + sigma[..., None] * noise  # [E, B, size]
        raw = stacked_forward(list(zip(params[::2], params[1::2])), base.frequencies, c_in[..., None] * x,
                              c_noise)
        weight = (sigma ** 2 + sigma_data ** 2) / (sigma * sigma_data) ** 2
        denoised = c_skip[..., None] * x + c_out[..., None] * raw
        return (weight[..., None] * (denoised - y) ** 2).mean(dim=(1, 2)).sum()

    result = fit(params, loss, steps=steps, lr=lr, seed=seed, desc="denoisers")
    update_average()
    stacked = list(zip(average[::2], average[1::2]))
    return {label: (member(base, stacked, e, sigma_data), result) for e, label in enumerate(table)}


def trained(seed: int, r: int, table: dict) -> dict:
    """The networks trained side by side at resolution r, one per schedule of `table` (label -> (name,
    options)), cached by their schedules. -> {label: (denoiser, Fit)}"""
    key = tuple((label, name, tuple(sorted(options.items()))) for label, (name, options) in table.items())
    return _trained(seed, r, key)


@functools.lru_cache(maxsize=8)
def _trained(seed: int, r: int, key: tuple) -> dict:
    table = {label: (name, dict(options)) for label, name, options in key}
    return train_side_by_side(training_set(seed, r), table, steps=TRAIN_STEPS, seed=seed)


def exact_solution(x, r: int, sigma_max: float = SIGMA_MAX):
    """The exact probability-flow ODE solution at sigma -> 0 from x at sigma_max, split as in the module
    docstring: the means of the copies by RK4 on the 2-D ring of std PIXEL_STD / sqrt(r) in sigma /
    sqrt(r) (`ode.solve_pf_ode`), the rest scaled by PIXEL_STD / sqrt(PIXEL_STD^2 + sigma_max^2).
    x [N, 2 r] -> [N, 2 r] float64"""
    x = x.double()
    mean = downsample(x, r)
    rest = x - upsample(mean, r)
    ring = mixtures.ring(std=PIXEL_STD / math.sqrt(r))
    end = ode.solve_pf_ode(ring.denoise, mean, sigma_max / math.sqrt(r), steps=ODE_STEPS)
    return upsample(end, r) + rest * (PIXEL_STD / math.sqrt(PIXEL_STD ** 2 + sigma_max ** 2))


@functools.lru_cache(maxsize=8)
def start_and_exact(seed: int, r: int):
    """The seed's start noise at SIGMA_MAX and the exact ODE solution from it. -> two [PARTICLES, 2 r]"""
    g = torch.Generator().manual_seed(seed + SEED_OFFSET)
    x = SIGMA_MAX * torch.randn(PARTICLES, 2 * r, generator=g, dtype=torch.float64)
    return x, exact_solution(x, r)


def schedule_levels(name: str, steps: int, **options) -> torch.Tensor:
    """Sampling levels of a schedule at t = 1, 1 - 1/steps, ..., 0 (uniform steps in t, as Chen 2023
    samples), kept within [SIGMA_MIN, SIGMA_MAX] (repeats dropped), then 0. -> [<= steps + 2], decreasing"""
    check_int("schedule_toy.schedule_levels", "steps", steps, low=1)
    t = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    sigmas = networks.sigma_of_t(name, t, **options).clamp(SIGMA_MIN, SIGMA_MAX)
    return torch.cat([torch.unique_consecutive(sigmas), torch.zeros(1, dtype=torch.float64)])


@torch.no_grad()
def endpoint_error(denoiser, seed: int, r: int, sigmas) -> dict:
    """Heun's sampler (EDM Algorithm 1) with `denoiser` on `sigmas` from the seed's start noise: the RMS
    distance to the exact ODE solution, divided by sqrt(r), the samples' mean log-likelihood under the
    data's mixture per value, and the NFE."""
    x, exact = start_and_exact(seed, r)
    dtype = next(denoiser.parameters()).dtype if isinstance(denoiser, torch.nn.Module) else torch.float64
    calls = []

    def counted(x, sigma):
        calls.append(1)
        return denoiser(x, sigma)

    out = samplers.sample_heun(counted, x.to(dtype), sigmas.to(dtype)).double()
    return {"error": ode.rms_error(out, exact) / math.sqrt(r), "nfe": len(calls),
            "log_likelihood": float(mixture_at(r).log_prob(out, 1e-3).mean()) / (2 * r)}


@torch.no_grad()
def denoising_error(denoiser, seed: int, r: int = 1, levels: int = 12, low: float = 0.02,
                    high: float = 20.0) -> float:
    """The network's error against the exact denoiser, in the units of its own output F (EDM eq. 8's
    weight lambda(sigma) = 1 / c_out^2): the mean over `levels` noise levels, log-spaced from `low` to
    `high`, of lambda(sigma) E ||D(x; sigma) - D_exact(x; sigma)||^2 on fresh noisy images."""
    data = mixture_at(r)
    g = torch.Generator().manual_seed(seed + 2 * SEED_OFFSET)
    y = data.sample(1024, seed=seed + 2 * SEED_OFFSET)[0]
    noise = torch.randn(y.shape, generator=g, dtype=torch.float64)
    sigma_data = denoiser.sigma_data
    errors = []
    for sigma in torch.logspace(math.log10(low), math.log10(high), levels, dtype=torch.float64):
        s = sigma.expand(y.shape[0])
        x = y + sigma * noise
        difference = denoiser(x.float(), s.float()).double() - data.denoise(x, s)
        weight = (sigma ** 2 + sigma_data ** 2) / (sigma * sigma_data) ** 2
        errors.append(float(weight * (difference ** 2).sum(1).mean()))
    return sum(errors) / len(errors)
