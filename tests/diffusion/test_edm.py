"""EDM's preconditioning, noise levels and loss, and the noise schedules as EDM levels."""
import math

import pytest
import torch

from course.diffusion import edm, schedules


def test_preconditioning_gives_unit_variance_input_and_target():
    sigma_data = 0.5
    y = sigma_data * torch.randn(200_000, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    n = torch.randn(200_000, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for sigma in (0.01, 0.5, 20.0):
        c_skip, c_out, c_in, _ = edm.preconditioning(torch.tensor(sigma, dtype=torch.float64), sigma_data)
        x = y + sigma * n
        assert float((c_in * x).var()) == pytest.approx(1.0, rel=0.02)
        assert float(((y - c_skip * x) / c_out).var()) == pytest.approx(1.0, rel=0.02)  # F's target


def test_the_levels_of_eq5_span_the_range_and_rho_moves_them_down():
    s7, s1 = edm.edm_sigmas(10), edm.edm_sigmas(10, rho=1.0)
    for s in (s7, s1):
        assert s[0] == pytest.approx(80.0) and s[-2] == pytest.approx(0.002) and s[-1] == 0
        assert (s.diff() < 0).all()
    assert (s7[1:-2] < s1[1:-2]).all()  # rho = 7 spends its steps where sigma is small
    torch.testing.assert_close(s1[:-1].diff(), torch.full((9,), s1[1] - s1[0], dtype=torch.float64))


def test_the_output_op_is_the_preconditioned_wrapper():
    net = torch.nn.Linear(3, 3, dtype=torch.float64)
    wrapped = edm.Preconditioned(lambda x, c: net(x), sigma_data=0.7)
    x = torch.randn(5, 3, dtype=torch.float64)
    sigma = torch.rand(5, dtype=torch.float64) + 0.1
    c_in = edm.preconditioning(sigma, 0.7)[2][:, None]
    torch.testing.assert_close(wrapped(x, sigma), edm.edm_output(x, net(c_in * x), sigma, 0.7))


def test_the_loss_of_the_ideal_denoiser_is_its_floor():
    y = torch.randn(64, 2, dtype=torch.float64)
    assert float(edm.edm_loss(lambda x, s: y, y, generator=torch.Generator().manual_seed(0))) == 0.0


@pytest.mark.parametrize("name", schedules.SCHEDULES)
def test_every_schedule_gives_decreasing_levels_and_a_decreasing_log_snr_in_noise(name):
    t = torch.linspace(0.01, 0.99, 50, dtype=torch.float64)
    lam = schedules.log_snr(name, t)
    assert (lam.diff() <= 0).all()
    sigmas = schedules.sigmas_from_schedule(name, 12)
    assert (sigmas.diff() < 0).all() and sigmas[-1] == 0


def test_shifting_the_cosine_moves_the_log_snr_by_two_log_b():
    t = torch.linspace(0.1, 0.9, 9, dtype=torch.float64)
    shifted = schedules.log_snr("shifted_cosine", t, shift=0.5)
    torch.testing.assert_close(shifted, schedules.log_snr("cosine", t) + 2 * math.log(0.5))


def test_bad_input_is_refused_by_name():
    with pytest.raises(ValueError, match="need 0 < sigma_min < sigma_max"):
        edm.edm_sigmas(5, sigma_min=1.0, sigma_max=0.5)
    with pytest.raises(ValueError, match="`rho` must be > 0"):
        edm.edm_sigmas(5, rho=0.0)
    with pytest.raises(ValueError, match="`name` must be one of"):
        schedules.log_snr("sigmoid", [0.5])
    with pytest.raises(ValueError, match=r"`t` must lie in \[0, 1\]"):
        schedules.log_snr("cosine", [1.5])
    with pytest.raises(ValueError, match=r"the network's output `raw` must have the state's shape"):
        edm.edm_output(torch.zeros(3, 2), torch.zeros(3, 3), 1.0)
