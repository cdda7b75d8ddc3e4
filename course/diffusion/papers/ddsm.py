"""Denoising Diffusion Step-aware Models: a denoiser whose size depends on the step, found by search.

Yang, Chen, Wang, Liu and Chen 2024, "Denoising Diffusion Step-aware Models" (DDSM, ICLR 2024,
arXiv:2310.03337). A sampler calls the same full-size network at every step, yet the steps are not
equally hard. DDSM trains one slimmable network (sub-networks of several widths sharing weights) and
searches, by an evolutionary algorithm, for the width to use at each step that keeps the sample
quality (FID) while minimising the FLOPs: 49-76% fewer on its image datasets.

The toy keeps the search and the measurement, and replaces the slimmable network by a ladder of exact
denoisers of decreasing capacity: the data is a random 8-component Gaussian mixture in 2-D, and its
coarser models merge the closest pair of components, moment-matched, down to 4, 2 and 1 components.
The denoiser of a K'-component mixture costs K' units (its posterior over K' components), so the rungs
are "networks" of relative cost 8, 4, 2 and 1, each the best a model of that capacity can do, with no
training noise in between. (Trained MLP denoisers of widths 8 and 64 were tried first: at a budget of
about a second of training their errors differed less than their training noise, and some mixed
schedules beat both.) A schedule assigns a rung to each of Heun's steps (EDM's Algorithm 1, rho = 7);
its error is the RMS distance of its samples to the exact probability-flow ODE solution of the full
mixture from the same noise (`ode.solve_pf_ode`). A (1 + lambda) evolutionary search, DDSM's kind,
minimises the cost while the error on a search set of noises stays within TOLERANCE of the full
model's; the schedule found is then measured on fresh noises, against the full model and against the
largest uniform schedule (one rung at every step) that costs no more.
"""
import functools
import random

import torch

from course.checks import check_int
from course.claims import REPRODUCTION, Claim
from course.diffusion import edm, mixtures, ode, samplers
from course.diffusion.mixtures import GaussianMixture

COMPONENTS, SPREAD, STD = 8, 1.5, 0.2
SIGMA_MAX, STEPS, PARTICLES = 80.0, 12, 512
TOLERANCE = 1.0  # the search accepts a schedule whose error is at most this times the full model's
GENERATIONS, CHILDREN = 10, 8


def merge(mixture: GaussianMixture, i: int, j: int) -> GaussianMixture:
    """Components i and j replaced by one with their weight, mean and (isotropic) second moment."""
    K, D = mixture.means.shape
    if not (0 <= i < K and 0 <= j < K and i != j):
        raise ValueError(f"ddsm.merge: `i` and `j` must be two different components in [0, {K}); "
                         f"got {i}, {j}.")
    w, mu, s = mixture.weights, mixture.means, mixture.stds
    weight = w[i] + w[j]
    mean = (w[i] * mu[i] + w[j] * mu[j]) / weight
    var = (w[i] * (s[i] ** 2 + ((mu[i] - mean) ** 2).sum() / D)
           + w[j] * (s[j] ** 2 + ((mu[j] - mean) ** 2).sum() / D)) / weight
    keep = [k for k in range(K) if k not in (i, j)]
    return GaussianMixture(torch.cat([mu[keep], mean[None]]), torch.cat([s[keep], var.sqrt()[None]]),
                           torch.cat([w[keep], weight[None]]))


def coarsening_ladder(mixture: GaussianMixture) -> list:
    """The mixture and its coarser models, merging the closest pair of means each time, kept at
    K, K/2, ..., 1 components: the rungs, largest first."""
    ladder, current = [mixture], mixture
    while current.means.shape[0] > 1:
        d = torch.cdist(current.means, current.means) + torch.eye(current.means.shape[0]) * float("inf")
        i, j = divmod(int(d.argmin()), current.means.shape[0])
        current = merge(current, i, j)
        if current.means.shape[0] * 2 == ladder[-1].means.shape[0] or current.means.shape[0] == 1:
            ladder.append(current)
    return ladder


def schedule_cost(ladder: list, schedule, sigmas) -> int:
    """Cost of a schedule: the sum over denoiser calls of the rung's components (Heun calls twice per
    step, once on the last step to sigma = 0)."""
    calls = [2 if float(sigmas[i + 1]) > 0 else 1 for i in range(len(schedule))]
    return sum(c * ladder[r].means.shape[0] for c, r in zip(calls, schedule))


def sample_step_aware(ladder: list, schedule, x, sigmas):
    """Heun's sampler (EDM Algorithm 1) with rung schedule[i]'s exact denoiser at step i.
    x [N, D] at sigmas[0] -> [N, D]"""
    if len(schedule) != sigmas.shape[0] - 1 or not all(0 <= r < len(ladder) for r in schedule):
        raise ValueError(f"ddsm.sample_step_aware: `schedule` must give a rung in [0, {len(ladder)}) for "
                         f"each of the {sigmas.shape[0] - 1} steps; got {list(schedule)}.")
    for i, rung in enumerate(schedule):
        x = samplers.sample_heun(ladder[rung].denoise, x, sigmas[i:i + 2])
    return x


def evolutionary_search(error_of, cost_of, steps: int, rungs: int, limit: float,
                        generations: int = GENERATIONS, children: int = CHILDREN, seed: int = 0) -> list:
    """A (1 + lambda) evolution: each child changes one or two steps of the parent to a random rung;
    the cheapest child whose error_of(schedule) <= limit replaces the parent. Starts from the full
    model (rung 0 everywhere). -> the schedule found [steps]"""
    check_int("ddsm.evolutionary_search", "steps", steps, low=1)
    check_int("ddsm.evolutionary_search", "rungs", rungs, low=1)
    rng = random.Random(seed)
    parent = [0] * steps
    for _ in range(generations):
        best, best_cost = parent, cost_of(parent)
        for _ in range(children):
            child = list(parent)
            for i in rng.sample(range(steps), rng.choice((1, 2))):
                child[i] = rng.randrange(rungs)
            if cost_of(child) < best_cost and error_of(child) <= limit:
                best, best_cost = child, cost_of(child)
        parent = best
    return parent


@functools.lru_cache(maxsize=4)
def problem(seed: int):
    """The seed's mixture and its ladder, the levels, and two sets of noises with their exact
    solutions: one for the search, one held out."""
    mixture = mixtures.random_mixture(COMPONENTS, 2, spread=SPREAD, std=STD, seed=seed)
    g = torch.Generator().manual_seed(seed)
    sets = []
    for _ in range(2):
        x = SIGMA_MAX * torch.randn(PARTICLES, 2, generator=g, dtype=torch.float64)
        sets.append((x, ode.solve_pf_ode(mixture.denoise, x, SIGMA_MAX, steps=100)))
    return coarsening_ladder(mixture), edm.edm_sigmas(STEPS, sigma_max=SIGMA_MAX), sets


def ddsm_experiment(seed: int) -> dict:
    """Search a schedule on one set of noises; measure it, the full model and the best uniform
    schedule of no greater cost on the other."""
    ladder, sigmas, ((x_search, exact_search), (x_test, exact_test)) = problem(seed)

    def error(schedule, x, exact):
        return ode.rms_error(sample_step_aware(ladder, schedule, x, sigmas), exact)

    def cost(schedule):
        return schedule_cost(ladder, schedule, sigmas)

    full = [0] * STEPS
    limit = TOLERANCE * error(full, x_search, exact_search)
    found = evolutionary_search(lambda s: error(s, x_search, exact_search), cost, STEPS, len(ladder), limit,
                                seed=seed)
    uniform = next(s for s in ([r] * STEPS for r in range(len(ladder))) if cost(s) <= cost(found))
    m = {"full_error": error(full, x_test, exact_test), "aware_error": error(found, x_test, exact_test),
         "uniform_error": error(uniform, x_test, exact_test),
         "uniform_components": ladder[uniform[0]].means.shape[0],
         "cost_saved": 1 - cost(found) / cost(full), "uniform_cost_saved": 1 - cost(uniform) / cost(full)}
    m["aware_error_ratio"] = m["aware_error"] / m["full_error"]
    m["uniform_error_ratio"] = m["uniform_error"] / m["full_error"]
    for i, rung in enumerate(found):  # the schedule, step by step (components of the rung used)
        m[f"components_at_step_{i}"] = ladder[rung].means.shape[0]
    return m


CLAIM = Claim(
    paper="Yang et al. 2024 (DDSM)",
    citation="Denoising Diffusion Step-aware Models (ICLR 2024, arXiv:2310.03337): the step-aware "
             "network and its evolutionary search; savings of 49-76% in the abstract",
    statement="the steps of a diffusion sampler are not equally important: a denoiser whose size is "
              "chosen per step by evolutionary search keeps the full model's quality with a large "
              "share of its computation saved, where one smaller model at every step cannot",
    kind=REPRODUCTION,
    experiment=ddsm_experiment,
    thresholds=("cost_saved >= 0.4", "aware_error_ratio <= 1.2", "uniform_error_ratio >= 2"),
    note="The toy's 'networks' are exact denoisers of coarsened mixtures, not a trained slimmable "
         "network. The error is noisy: it is dominated by the few particles that land on another "
         "component, so the schedule found can even beat the full model on fresh noises (0.88-0.94x on "
         "seeds 0, 1, 2); on three development seeds (100-102, used to size the search before these "
         "runs) it ranged 0.80-1.20x, with savings of 40-48%. The schedules use the full mixture from "
         "sigma about 4 down to 0.07 and one or two components at both ends: at high noise every "
         "model's denoiser is nearly the data mean, at low noise nearly the identity.",
    summary=lambda m: (
        f"Heun with {STEPS} steps on a random {COMPONENTS}-component mixture, RMS error against the exact "
        f"ODE on held-out noises: full model {m['full_error']:.3g}; the step-aware schedule found saves "
        f"{m['cost_saved']:.0%} of the cost at error {m['aware_error']:.3g} ({m['aware_error_ratio']:.2f}x); "
        f"{m['uniform_components']} components at every step (saving {m['uniform_cost_saved']:.0%}) "
        f"{m['uniform_error']:.3g} ({m['uniform_error_ratio']:.1f}x); components per step "
        + " ".join(str(m[f'components_at_step_{i}']) for i in range(STEPS))),
)
