"""EDM's sampler claims, measured against the exact probability-flow ODE.

Karras, Aittala, Aila and Laine 2022, "Elucidating the Design Space of Diffusion-Based Generative
Models" (arXiv:2206.00364), section 3: Heun's second-order method (Algorithm 1) reaches a given
accuracy with fewer network evaluations (NFE) than Euler's, and the noise levels of eq. 5 with rho = 7
(steps concentrated where sigma is small) beat uniform spacing in sigma (rho = 1) at an equal NFE
(Figure 2 and 3). The paper judges by FID; here the data is a mixture of Gaussians whose denoiser is
exact (`GaussianMixture.denoise`), so the error of a sampler is its distance to the probability-flow
ODE's own solution from the same noise (`ode.solve_pf_ode`, accurate to 1e-6 here), with no network
and no metric in between: the error is the sampler's alone.
"""
import functools
import math

import torch

from course.claims import REPRODUCTION, Claim
from course.diffusion import edm, mixtures, ode, samplers

SIGMA_MAX = 80.0
PARTICLES = 512
TARGET_ERROR = 0.02  # in the units of the ring (radius 2, components of std 0.15)
EULER_STEPS = (8, 16, 32, 64, 128, 256)
HEUN_STEPS = (4, 8, 16, 32, 64, 128)  # 2 n - 1 evaluations each
RHO_STEPS = 16  # the rho comparison, at 31 evaluations


def counted(denoise):
    """The denoiser, and a list whose length is the number of calls (NFE) it has answered."""
    calls = []

    def wrapped(x, sigma):
        calls.append(1)
        return denoise(x, sigma)

    return wrapped, calls


def error_curve(mixture, x, exact, steps, second_order: bool, rho: float = 7.0) -> list:
    """[(NFE, RMS error against the exact solution)] of Euler or Heun on EDM's levels."""
    curve = []
    for n in steps:
        denoise, calls = counted(mixture.denoise)
        sigmas = edm.edm_sigmas(n, sigma_max=SIGMA_MAX, rho=rho)
        out = samplers.sample_heun(denoise, x, sigmas, second_order=second_order)
        curve.append((len(calls), ode.rms_error(out, exact)))
    return curve


def nfe_to_reach(curve, target: float) -> float:
    """The NFE at which the error falls to `target`, interpolated in log-log between measured points
    (inf if it never does on the curve)."""
    for (n0, e0), (n1, e1) in zip(curve, curve[1:]):
        if e1 <= target < e0:
            slope = (math.log(e1) - math.log(e0)) / (math.log(n1) - math.log(n0))
            return math.exp(math.log(n0) + (math.log(target) - math.log(e0)) / slope)
        if e0 <= target:
            return float(n0)
    return float("inf")


@functools.lru_cache(maxsize=4)
def problem(seed: int):
    """The ring mixture, the start noise of the seed, and the exact solution from it."""
    mixture = mixtures.ring()
    g = torch.Generator().manual_seed(seed)
    x = SIGMA_MAX * torch.randn(PARTICLES, 2, generator=g, dtype=torch.float64)
    return mixture, x, ode.solve_pf_ode(mixture.denoise, x, SIGMA_MAX, steps=200)


def edm_experiment(seed: int) -> dict:
    """NFE to reach TARGET_ERROR for Euler and Heun, and Heun's error at rho = 7 against rho = 1."""
    mixture, x, exact = problem(seed)
    euler = error_curve(mixture, x, exact, EULER_STEPS, second_order=False)
    heun = error_curve(mixture, x, exact, HEUN_STEPS, second_order=True)
    m = {"euler_nfe": nfe_to_reach(euler, TARGET_ERROR), "heun_nfe": nfe_to_reach(heun, TARGET_ERROR)}
    m["nfe_ratio"] = m["euler_nfe"] / m["heun_nfe"]
    for name, rho in (("rho7", 7.0), ("uniform", 1.0)):
        (nfe, err), = error_curve(mixture, x, exact, (RHO_STEPS,), second_order=True, rho=rho)
        m[f"{name}_error"] = err
    m["rho_nfe"] = float(nfe)
    m["uniform_over_rho7"] = m["uniform_error"] / m["rho7_error"]
    for name, curve in (("euler", euler), ("heun", heun)):
        for nfe, err in curve:
            m[f"{name}_error_at_{nfe}"] = err
    # measured after the claim's result, outside its thresholds: the most evaluations on both curves
    m["euler_over_heun_at_most_nfe"] = euler[-1][1] / heun[-1][1]
    return m


CLAIM = Claim(
    paper="Karras et al. 2022 (EDM)",
    citation="Elucidating the Design Space of Diffusion-Based Generative Models (NeurIPS 2022, "
             "arXiv:2206.00364), section 3, Algorithm 1, eq. 5, Figures 2-3",
    statement="Heun's second-order sampler reaches a given accuracy with fewer network evaluations "
              "than Euler's, and noise levels spaced with rho = 7 beat uniform spacing at an equal "
              "number of evaluations",
    kind=REPRODUCTION,
    experiment=edm_experiment,
    thresholds=("nfe_ratio >= 2", "uniform_over_rho7 >= 3"),
    held_on=(),
    note="Not reproduced as stated: to reach the error 0.02, Heun needs 41-42 evaluations and Euler "
         "75-77 on seeds 0, 1, 2, 1.8x fewer, short of the 2x asked. The gap widens as the error "
         "shrinks, as a second-order method's should: at 255 evaluations Heun's error is 11-14x "
         "smaller than Euler's at 256 (measured after that result, outside the thresholds). Below "
         "about 20 evaluations Heun is the worse of the two (at 7 evaluations: 7.0 against Euler's 0.23 "
         "at 8): its few, long steps overshoot. The rho half holds on every seed, by 67-68x.",
    summary=lambda m: (
        f"{PARTICLES} particles from sigma = {SIGMA_MAX:g} on the 8-component ring, RMS error against "
        f"the exact ODE solution: to reach {TARGET_ERROR:g}, Euler needs {m['euler_nfe']:.0f} "
        f"evaluations and Heun {m['heun_nfe']:.0f} ({m['nfe_ratio']:.1f}x fewer); at "
        f"{m['rho_nfe']:.0f} evaluations Heun's error is {m['rho7_error']:.3g} with rho = 7 and "
        f"{m['uniform_error']:.3g} with uniform spacing ({m['uniform_over_rho7']:.0f}x)"),
)
