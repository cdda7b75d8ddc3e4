"""Diffusion and iterative generative models (family `diffusion-models`).

The library: `mixtures` (Gaussian mixtures and training sets, whose ideal denoiser and score are
known in closed form), `ideal` (the ideal denoiser of a training set as attention), `edm` (EDM's
preconditioning, noise levels and loss), `samplers` (Euler, Heun and churn, as pure functions),
`ode` (the probability-flow ODE solved to high accuracy: the ground truth), `schedules` (noise
schedules as log-SNR), `guidance` (classifier-free guidance with exact denoisers), `networks` (small
trained denoisers) and `discrete` (strings with exact probabilities, absorbing diffusion's pieces);
the registry's ops in `ops`; the notebook's exercises in `exercises`; one module per paper, with its
toy and its claim, in `papers/`.
"""
FAMILY = "diffusion-models"
WIDGET = "course.widgets.trajectories:gallery"

from course.diffusion import (discrete, edm, guidance, ideal, mixtures, networks, ode, samplers,  # noqa: E402
                              schedules)  # the modules, by name
from course.diffusion.edm import Preconditioned, edm_loss, edm_sigmas, preconditioning  # noqa: E402
from course.diffusion.ideal import ideal_denoiser  # noqa: E402
from course.diffusion.mixtures import GaussianMixture  # noqa: E402
from course.diffusion.samplers import sample_euler, sample_general, sample_heun  # noqa: E402

__all__ = ["GaussianMixture", "Preconditioned", "discrete", "edm", "edm_loss", "edm_sigmas", "guidance",
           "ideal", "ideal_denoiser", "mixtures", "networks", "ode", "preconditioning", "sample_euler",
           "sample_general", "sample_heun", "samplers", "schedules"]
