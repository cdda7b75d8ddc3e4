"""Sample the training log-SNR from a Laplace density around 0: the same network trains faster.

Hang, Gu, Geng and Guo 2024, "Improved Noise Schedule for Diffusion Training" (arXiv:2407.03297),
sections 2 and 3. Training draws t ~ U(0, 1) and noises at the schedule's log-SNR lambda(t); the
schedule is thus a density p(lambda) of training levels, and choosing it is importance sampling: the
same objective, with its effort spent where p(lambda) is high. The paper's schedule is the Laplace
density p(lambda) = exp(-|lambda - mu| / b) / 2b with mu = 0 and b = 0.5, i.e. lambda(t) = mu -
b sgn(0.5 - t) log(1 - 2 |t - 0.5|) (`schedules.log_snr("laplace", t)`), which spends training near
lambda = 0, where signal and noise are equal and the denoising task changes fastest; on ImageNet
256x256 it reaches a better FID than the cosine schedule at the same number of training iterations
(section 3).

The toy (`schedule_toy` at resolution 1: the 2-D ring of std 0.3): the same network
(`networks.DenoiserMLP` under EDM's preconditioning) trained side by side for the same steps on the
same batches, noise and times t, mapped to levels by the cosine schedule or by the Laplace one. Both
are sampled by the same sampler, Heun's method on EDM's levels (rho = 7), from the same noise, and
measured against the exact probability-flow ODE solution: the schedule is a training choice here, as
in the paper. The paper measures FID; the error here is exact. Also measured, with no threshold: the
network's error against the exact denoiser on a fixed grid of levels (`schedule_toy.denoising_error`).
"""
from course.claims import REPRODUCTION, Claim
from course.diffusion import edm
from course.diffusion.papers import schedule_toy

MU, SCALE = 0.0, 0.5  # the paper's Laplace: centre 0, scale 0.5
SAMPLING_STEPS = 16  # Heun on EDM's levels: 31 evaluations
SCHEDULES = {"cosine": ("cosine", {}), "laplace": ("laplace", {"mu": MU, "scale": SCALE})}


def improved_noise_schedule_experiment(seed: int) -> dict:
    """The sample error (against the exact ODE solution), the samples' log-likelihood under the ring and
    the denoising error of the network trained with each schedule, and the cosine-to-Laplace ratio."""
    m = {}
    sigmas = edm.edm_sigmas(SAMPLING_STEPS, sigma_max=schedule_toy.SIGMA_MAX)
    models = schedule_toy.trained(seed, 1, SCHEDULES)
    for label in SCHEDULES:
        network, _ = models[label]
        result = schedule_toy.endpoint_error(network, seed, 1, sigmas)
        m[f"{label}_error"] = result["error"]
        m[f"{label}_log_likelihood"] = result["log_likelihood"]
        m[f"{label}_denoising_error"] = schedule_toy.denoising_error(network, seed)
    m["nfe"] = float(result["nfe"])
    m["cosine_over_laplace"] = m["cosine_error"] / m["laplace_error"]
    m["denoising_cosine_over_laplace"] = m["cosine_denoising_error"] / m["laplace_denoising_error"]
    return m


CLAIM = Claim(
    paper="Hang et al. 2024",
    citation="Improved Noise Schedule for Diffusion Training (arXiv:2407.03297), sections 2 (the "
             "schedule as a density of log-SNR, the Laplace schedule) and 3 (ImageNet 256x256)",
    statement="sampling the training log-SNR from a Laplace density centred at 0 (mu = 0, b = 0.5) gives "
              "a better model than the cosine schedule at an equal number of training steps",
    kind=REPRODUCTION,
    experiment=improved_noise_schedule_experiment,
    thresholds=("cosine_over_laplace >= 1.1",),
    held_on=(),
    note="Not reproduced: at 200 training steps the cosine-to-Laplace ratio of the sample errors is "
         "0.72, 1.099 (just short of 1.1) and 0.89 on seeds 0, 1, 2, and against the exact denoiser on a "
         "fixed grid of levels from 0.02 to 20 the Laplace network is 3.4-4.5x worse. Laplace(0, 0.5) "
         "puts 98% of training at sigma in [0.37, 2.7] (|lambda| < 2) and almost none below 0.2 or above "
         "7, where this ring's within-component structure (std 0.3) and the sampler's first steps (from "
         "sigma = 80) lie; the cosine schedule spends 12% below 0.2 and 9% above 7. The paper's images "
         "(latents, a large network, hundreds of thousands of steps) need the middle levels most; this "
         "toy's two-layer network needs all of them.",
    summary=lambda m: (
        f"2-D ring of std {schedule_toy.PIXEL_STD:g}, {schedule_toy.TRAIN_STEPS} training steps, Heun at "
        f"{m['nfe']:.0f} evaluations, error "
        f"against the exact ODE solution: cosine {m['cosine_error']:.3f}, Laplace {m['laplace_error']:.3f} "
        f"({m['cosine_over_laplace']:.2f}x); error against the exact denoiser on a fixed grid: cosine "
        f"{m['cosine_denoising_error']:.3f}, Laplace {m['laplace_denoising_error']:.3f}"),
)
