"""Chen 2023: the shift that undoes a resolution's redundancy, and the claim's equal footing."""
import math

import torch

from course.diffusion import networks, schedules
from course.diffusion.papers import noise_scheduling as ns
from course.diffusion.papers import schedule_toy as st


def test_the_shift_lowers_the_log_snr_by_log_r():
    t = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
    for r in ns.RESOLUTIONS:
        name, options = ns.schedules_at(r)["shifted"]
        shifted = schedules.log_snr(name, t, **options)
        torch.testing.assert_close(shifted - schedules.log_snr("cosine", t), torch.full_like(t, -math.log(r)))


def test_the_shift_undoes_the_redundancy_of_the_global_structure():
    # the copies' mean at noise sigma and resolution r is the 2-D ring at noise sigma / sqrt(r): the
    # shifted schedule at resolution r gives it the levels the cosine schedule gives at resolution 1
    t = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
    for r in ns.RESOLUTIONS:
        name, options = ns.schedules_at(r)["shifted"]
        effective = networks.sigma_of_t(name, t, **options) / math.sqrt(r)
        torch.testing.assert_close(effective, networks.sigma_of_t("cosine", t))


def test_both_schedules_sample_with_the_same_number_of_evaluations():
    for r in ns.RESOLUTIONS:
        lengths = {label: st.schedule_levels(name, ns.SAMPLING_STEPS, **options).shape[0]
                   for label, (name, options) in ns.schedules_at(r).items()}
        assert lengths["cosine"] == lengths["shifted"] == ns.SAMPLING_STEPS + 2
