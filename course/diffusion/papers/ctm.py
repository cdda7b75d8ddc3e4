"""Consistency Trajectory Models: one network that jumps along the probability-flow ODE from any noise
level t to any lower level s.

Kim, Lai, Liao, Murata, Takida, Uesaka, He, Mitsufuji and Ermon 2023, "Consistency Trajectory Models:
Learning Probability Flow ODE Trajectory of Diffusion" (ICLR 2024, arXiv:2310.02279), section 3. With
x_t on the PF-ODE dx/dsigma = (x - D(x; sigma)) / sigma (EDM's eq. 4, sigma = t), CTM learns the
solution map G(x_t, t, s) = x_s for every s <= t, parameterised (sec. 3, eq. 3) as

    G_theta(x_t, t, s) = (s / t) x_t + (1 - s / t) g_theta(x_t, t, s),

so that G(x_t, t, t) = x_t exactly, and g_theta(x_t, t, t) is the denoiser D(x_t; t) (the limit s -> t
of the ODE's exact g). g_theta is EDM's preconditioned network in t (c_skip, c_out, c_in, c_noise),
told s as well; here an MLP on the 2-D ring of Gaussians. Sampling jumps from sigma_max down a few
levels to 0 (CTM's gamma-sampling with gamma = 0: deterministic, so every sample has a teacher's twin
from the same noise).

The paper trains with soft consistency matching (the teacher solves from t to an intermediate u, the
model's own stop-gradient copy jumps from u to s) plus DSM and a GAN loss. At toy scale the teacher's
answer is exact and cheap, so this module regresses G on it directly: exact probability-flow ODE
trajectories (`ode.solve_pf_ode`, RK4 with the closed-form denoiser) from noise at sigma_max, states
on a grid of LEVELS noise levels, and every pair (t, s) on the grid is a training example.
"""
import functools

import torch
from torch import nn

from course.checks import check_int, check_tensor
from course.claims import REPRODUCTION, Claim
from course.diffusion import edm, mixtures, ode, samplers
from course.train import DecayingAdam, fit, seeded

SIGMA_MAX, SIGMA_LAST = 80.0, 2e-3  # the grid's last level stands in for s = 0 (x moves ~1e-4 below it)
LEVELS, TRAJECTORIES = 30, 4096  # teacher trajectories, their states at LEVELS + 1 levels
HIDDEN, LAYERS = 48, 4
BATCH, STEPS, LR = 256, 500, 3e-2
DATA_SHARE = 0.5  # share of training pairs whose target is the end of the trajectory (s = 0)
S_FLOOR = 2e-3  # s enters the network as ln(s + S_FLOOR) / 4: finite at s = 0
JUMPS, JUMP_SIGMA_MIN = (1, 2, 4), 0.5  # sampling: EDM's levels (rho = 7) from SIGMA_MAX to 0.5, then 0
PARTICLES, EXACT_STEPS = 512, 50
SOLVER_SIGMA_MINS = (0.002, 0.02, 0.2, 0.5, 1.0, 2.0)  # the ODE solvers get the best of these


def ring_sigma_data(mixture) -> float:
    """The data's standard deviation per coordinate (EDM's sigma_data) of a mixture."""
    second = (mixture.probabilities[:, None] * (mixture.means ** 2 + mixture.stds[:, None] ** 2)).sum(0)
    return float(second.mean().sqrt())


class ConsistencyTrajectoryModel(nn.Module):
    """G_theta(x_t, t, s) = (s/t) x_t + (1 - s/t) g_theta(x_t, t, s) (sec. 3), g_theta EDM-preconditioned
    in t: c_skip(t) x_t + c_out(t) F(c_in(t) x_t, ln(t)/4, ln(s + S_FLOOR)/4), F an MLP.
    x [N, D], t [N] > 0, s [N] in [0, t] -> [N, D]"""

    def __init__(self, dim: int = 2, sigma_data: float = 0.5, hidden: int = HIDDEN, layers: int = LAYERS):
        super().__init__()
        check_int("ConsistencyTrajectoryModel", "dim", dim, low=1)
        check_int("ConsistencyTrajectoryModel", "layers", layers, low=1)
        widths = [dim + 2] + [hidden] * layers
        blocks = [m for a, b in zip(widths, widths[1:]) for m in (nn.Linear(a, b), nn.SiLU())]
        self.network = nn.Sequential(*blocks, nn.Linear(hidden, dim))
        self.dim, self.sigma_data = dim, sigma_data

    def g(self, x, t, s):
        """g_theta(x_t, t, s): where the jump heads, a data-like prediction. -> [N, D]"""
        c_skip, c_out, c_in, c_noise = edm.preconditioning(t, self.sigma_data)
        features = torch.cat([c_in[:, None] * x, c_noise[:, None], ((s + S_FLOOR).log() / 4)[:, None]], 1)
        return c_skip[:, None] * x + c_out[:, None] * self.network(features)

    def forward(self, x, t, s):
        check_jump("ConsistencyTrajectoryModel", x, t, s, self.dim)
        ratio = (s / t)[:, None]
        return ratio * x + (1 - ratio) * self.g(x, t, s)


def check_jump(where: str, x, t, s, dim: int):
    """x [N, dim] float; t, s [N] with t > 0 and 0 <= s <= t."""
    check_tensor(where, "x", x, ndim=2, kind="float")
    if x.shape[1] != dim:
        raise ValueError(f"{where}: `x` must have {dim} features, [N, D] = [N, {dim}]; got {tuple(x.shape)}.")
    for name, v in (("t", t), ("s", s)):
        check_tensor(where, name, v, ndim=1, kind="float")
        if v.shape[0] != x.shape[0]:
            raise ValueError(f"{where}: `{name}` must give one level per row, [N] = ({x.shape[0]},); got "
                             f"{tuple(v.shape)}.")
    if x.shape[0] and not ((t > 0).all() and (s >= 0).all() and (s <= t).all()):
        raise ValueError(f"{where}: the levels must satisfy t > 0 and 0 <= s <= t (a jump goes down); got t "
                         f"from {t.min().item():g}, s up to {(s - t).max().item():g} above t.")


def sample_ctm(model: ConsistencyTrajectoryModel, x, sigmas, *, callback=None):
    """Jumps x_(i+1) = G(x_i, sigma_i, sigma_(i+1)) down `sigmas` (CTM's gamma = 0 sampling).
    x [N, D] (noise at sigmas[0]), sigmas [J + 1] decreasing -> [N, D], J network evaluations."""
    where = "ctm.sample_ctm"
    check_tensor(where, "x", x, ndim=2, kind="float")
    sigmas = edm.check_sigmas(where, sigmas)
    dtype = next(model.parameters()).dtype
    state = x.to(dtype)
    with torch.no_grad():
        for i in range(sigmas.shape[0] - 1):
            t, s = (torch.full((x.shape[0],), float(v), dtype=dtype) for v in sigmas[i:i + 2])
            state = model(state, t, s)
            if callback is not None:
                callback({"i": i, "x": state.to(x.dtype), "sigma": float(sigmas[i]),
                          "sigma_next": float(sigmas[i + 1])})
    return state.to(x.dtype)


def ctm_sampler(model: ConsistencyTrajectoryModel, jumps: int | None = None):
    """CTM as a sampler fn(denoiser, x, sigmas, callback=None) -> x for the trajectory widget: it
    ignores the denoiser and jumps along `sigmas` (all of them, or `jumps` jumps through levels picked
    evenly from them, the first and last kept)."""
    if not isinstance(model, ConsistencyTrajectoryModel):
        raise TypeError(f"ctm.ctm_sampler: `model` must be a ConsistencyTrajectoryModel; got "
                        f"{type(model).__name__}.")
    check_int("ctm.ctm_sampler", "jumps", jumps, low=1, allow_none=True)

    def sampler(denoiser, x, sigmas, callback=None):
        sigmas = edm.check_sigmas("ctm.ctm_sampler", sigmas)
        if jumps is not None:
            if jumps > sigmas.shape[0] - 1:
                raise ValueError(f"ctm.ctm_sampler: `jumps` = {jumps} needs at least {jumps + 1} levels; got "
                                 f"{sigmas.shape[0]}.")
            sigmas = sigmas[torch.linspace(0, sigmas.shape[0] - 1, jumps + 1).round().long()]
        return sample_ctm(model, x, sigmas, callback=callback)

    return sampler


def teacher_trajectories(mixture, seed: int, count: int = TRAJECTORIES, levels: int = LEVELS):
    """Exact PF-ODE trajectories from noise at SIGMA_MAX (the seed's draw), their states at levels
    spaced evenly in ln sigma down to SIGMA_LAST, which stands in for 0.
    -> sigmas [levels + 1] (last 0), states [levels + 1, count, D] float32"""
    g = torch.Generator().manual_seed(seed)
    noise = SIGMA_MAX * torch.randn(count, mixture.dim, generator=g, dtype=torch.float64)
    _, path = ode.solve_pf_ode(mixture.denoise, noise, SIGMA_MAX, SIGMA_LAST, steps=levels, return_path=True)
    sigmas = SIGMA_MAX * (SIGMA_LAST / SIGMA_MAX) ** (torch.arange(levels + 1, dtype=torch.float64) / levels)
    sigmas[-1] = 0.0
    return sigmas.float(), path.float()


def pair_loss(model, sigmas, states, generator, batch: int = BATCH):
    """E ||g_theta(x_t, t, s) - g*||^2 over random pairs t > s of the grid, g* = (x_s - (s/t) x_t) /
    (1 - s/t) the exact ODE's g: the same as ||G_theta - x_s||^2 / (1 - s/t)^2."""
    top, count = sigmas.shape[0] - 1, states.shape[1]
    row = torch.randint(0, count, (batch,), generator=generator)
    i = torch.randint(0, top, (batch,), generator=generator)
    j = i + 1 + (torch.rand(batch, generator=generator) * (top - i)).long().clamp(max=top - i - 1)
    j = torch.where(torch.rand(batch, generator=generator) < DATA_SHARE, torch.full_like(j, top), j)
    t, s, x_t, x_s = sigmas[i], sigmas[j], states[i, row], states[j, row]
    ratio = (s / t)[:, None]
    target = (x_s - ratio * x_t) / (1 - ratio)
    return (model.g(x_t, t, s) - target).pow(2).sum(1).mean()


@functools.lru_cache(maxsize=3)
def trained_model(seed: int = 0):
    """CTM trained on the ring's teacher trajectories of the seed. -> (model, its Fit)"""
    mixture = mixtures.ring()
    sigmas, states = teacher_trajectories(mixture, seed)
    with seeded(seed):
        model = ConsistencyTrajectoryModel(mixture.dim, ring_sigma_data(mixture))
    g = torch.Generator().manual_seed(seed)
    result = fit(model.parameters(), lambda: pair_loss(model, sigmas, states, g), steps=STEPS, lr=LR,
                 seed=seed, optimizer=DecayingAdam, total=STEPS, desc="CTM")
    return model.eval(), result


def best_solver(mixture, x, exact, nfe: int):
    """The ODE solvers with the exact denoiser at no more than `nfe` evaluations (Euler with nfe
    steps, Heun with (nfe + 1) // 2, on EDM's levels with each of SOLVER_SIGMA_MINS): the smallest RMS
    error to the exact solution and the largest mean log-likelihood. -> (rms, log-likelihood)"""
    runs = []
    for sigma_min in SOLVER_SIGMA_MINS:
        runs.append(samplers.sample_euler(mixture.denoise, x, edm.edm_sigmas(nfe, sigma_min, SIGMA_MAX)))
        if nfe >= 3:
            steps = (nfe + 1) // 2
            runs.append(samplers.sample_heun(mixture.denoise, x, edm.edm_sigmas(steps, sigma_min, SIGMA_MAX)))
    return min(ode.rms_error(r, exact) for r in runs), max(log_likelihood(mixture, r) for r in runs)


def log_likelihood(mixture, x) -> float:
    """Mean log-density of samples under the true mixture (at sigma = 1e-4, i.e. the data). [N, D]"""
    return float(mixture.log_prob(x.double(), 1e-4).mean())


def ctm_experiment(seed: int) -> dict:
    """CTM with 1, 2, 4 jumps against the exact teacher from held-out noise, and the best ODE solver
    with the exact denoiser at the same evaluations: RMS to the teacher, mean log-likelihood."""
    mixture = mixtures.ring()
    model, result = trained_model(seed)
    g = torch.Generator().manual_seed(seed + 1000)  # held out: not the teacher's training noise
    x = SIGMA_MAX * torch.randn(PARTICLES, mixture.dim, generator=g, dtype=torch.float64)
    exact = ode.solve_pf_ode(mixture.denoise, x, SIGMA_MAX, steps=EXACT_STEPS)
    m = {"teacher_ll": log_likelihood(mixture, exact), "final_loss": sum(result.losses[-50:]) / 50}
    for k in JUMPS:
        out = sample_ctm(model, x, edm.edm_sigmas(k, JUMP_SIGMA_MIN, SIGMA_MAX))
        m[f"ctm_rms_{k}"], m[f"ctm_ll_{k}"] = ode.rms_error(out, exact), log_likelihood(mixture, out)
        m[f"solver_rms_{k}"], m[f"solver_ll_{k}"] = best_solver(mixture, x, exact, k)
        m[f"rms_ratio_{k}"] = m[f"solver_rms_{k}"] / m[f"ctm_rms_{k}"]
    m["min_rms_ratio"] = min(m[f"rms_ratio_{k}"] for k in JUMPS)
    m["max_ctm_rms"] = max(m[f"ctm_rms_{k}"] for k in JUMPS)
    m["min_ll_gain"] = min(m[f"ctm_ll_{k}"] - m[f"solver_ll_{k}"] for k in JUMPS)
    return m


CLAIM = Claim(
    paper="Kim et al. 2023 (CTM)",
    citation="Consistency Trajectory Models: Learning Probability Flow ODE Trajectory of Diffusion (ICLR "
             "2024, arXiv:2310.02279), sections 3-4, Tables 2-3",
    statement="a network that learns the probability-flow ODE's jumps from its teacher samples in one or "
              "a few steps close to the teacher, far better than an ODE solver at the same number of "
              "evaluations",
    kind=REPRODUCTION,
    experiment=ctm_experiment,
    thresholds=("rms_ratio_1 >= 5", "min_rms_ratio >= 1.2", "max_ctm_rms <= 0.3", "min_ll_gain > 0"),
    note="CTM's soft consistency matching, DSM and GAN losses are replaced by regression on the exact "
         "teacher's jumps (500 Adam steps, about 1.5 s). The solver baseline is given its best lowest level "
         "per NFE. CTM's RMS is dominated by the few particles near the borders between components' "
         "basins, where the teacher's map is steep: its lead narrows to about 2x at 4 evaluations, and "
         "its log-likelihood stays about 1 nat below the teacher's.",
    summary=lambda m: (
        f"{PARTICLES} held-out particles on the ring, RMS distance to the exact ODE's endpoint from the same "
        f"noise, CTM against the best Euler/Heun run with the exact denoiser at the same evaluations: " +
        "; ".join(f"{k} evaluation{'s' * (k > 1)}: {m[f'ctm_rms_{k}']:.3g} against "
                  f"{m[f'solver_rms_{k}']:.3g} ({m[f'rms_ratio_{k}']:.1f}x)" for k in JUMPS) +
        f"; mean log-likelihood under the true mixture: teacher {m['teacher_ll']:.2f}, CTM " +
        "/".join(f"{m[f'ctm_ll_{k}']:.2f}" for k in JUMPS) + ", solver " +
        "/".join(f"{m[f'solver_ll_{k}']:.1f}" for k in JUMPS)),
)
