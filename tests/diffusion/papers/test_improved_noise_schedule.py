"""Hang et al. 2024: the Laplace schedule's training levels have the Laplace density of log-SNR."""
import torch

from course.diffusion import networks
from course.diffusion.papers import improved_noise_schedule as ins


def test_the_laplace_schedule_draws_log_snr_from_laplace_mu_b():
    name, options = ins.SCHEDULES["laplace"]
    sigma = networks.schedule_sampler(name, **options)(200_000, torch.Generator().manual_seed(0))
    lam = -2 * sigma.log()
    assert abs(float(lam.median()) - ins.MU) < 0.01
    assert abs(float((lam - ins.MU).abs().mean()) - ins.SCALE) < 0.01  # E|lambda - mu| = b
    assert abs(float((lam.abs() < 2 * ins.SCALE).double().mean()) - (1 - torch.e ** -2)) < 0.005


def test_the_cosine_schedule_spreads_its_levels_wider_than_the_laplace():
    g = torch.Generator().manual_seed(1)
    spread = {label: float((-2 * networks.schedule_sampler(name, **options)(50_000, g).log()).std())
              for label, (name, options) in ins.SCHEDULES.items()}
    assert spread["cosine"] > 3 * spread["laplace"]
