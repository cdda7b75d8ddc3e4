"""The pieces of EDM's sampler claim: the NFE interpolation and the error curves."""
import math

import torch

from course.diffusion import mixtures, ode
from course.diffusion.papers import edm


def test_nfe_to_reach_interpolates_in_log_log_and_says_never():
    curve = [(10, 1.0), (100, 0.01)]  # error ~ NFE^-2
    assert math.isclose(edm.nfe_to_reach(curve, 0.1), 10 ** 1.5)
    assert edm.nfe_to_reach(curve, 2.0) == 10
    assert edm.nfe_to_reach(curve, 0.001) == float("inf")


def test_error_curves_count_evaluations_and_fall_with_them():
    g = mixtures.ring()
    x = 80 * torch.randn(32, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = ode.solve_pf_ode(g.denoise, x, 80.0, steps=100)
    heun = edm.error_curve(g, x, exact, (8, 16, 32), second_order=True)
    assert [n for n, _ in heun] == [15, 31, 63]
    assert heun[0][1] > heun[1][1] > heun[2][1]
